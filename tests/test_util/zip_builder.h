// Builds small zip archives byte by byte (stored, not compressed), including the hostile ones a
// zip tool will not write: "../" names, absolute names, symbolic links.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shoal::test_util {

struct ZipMember {
  std::string name;
  std::string data;
  uint32_t mode = 0100644;  // Unix mode; 0120777 makes a symbolic link to `data`
};

inline uint32_t Crc32(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline std::string BuildZip(const std::vector<ZipMember>& members) {
  auto put16 = [](std::string& out, uint32_t v) {
    out.push_back(static_cast<char>(v & 0xFF));
    out.push_back(static_cast<char>((v >> 8) & 0xFF));
  };
  auto put32 = [&](std::string& out, uint32_t v) {
    put16(out, v & 0xFFFF);
    put16(out, v >> 16);
  };
  std::string body, directory;
  for (const ZipMember& m : members) {
    const uint32_t offset = static_cast<uint32_t>(body.size());
    const uint32_t crc = Crc32(m.data);
    const uint32_t size = static_cast<uint32_t>(m.data.size());
    put32(body, 0x04034b50);
    put16(body, 20), put16(body, 0), put16(body, 0), put16(body, 0), put16(body, 0x21);
    put32(body, crc), put32(body, size), put32(body, size);
    put16(body, static_cast<uint32_t>(m.name.size())), put16(body, 0);
    body += m.name + m.data;
    put32(directory, 0x02014b50);
    put16(directory, (3 << 8) | 20), put16(directory, 20), put16(directory, 0), put16(directory, 0);
    put16(directory, 0), put16(directory, 0x21);
    put32(directory, crc), put32(directory, size), put32(directory, size);
    put16(directory, static_cast<uint32_t>(m.name.size())), put16(directory, 0), put16(directory, 0);
    put16(directory, 0), put16(directory, 0);
    put32(directory, m.mode << 16), put32(directory, offset);
    directory += m.name;
  }
  std::string out = body + directory;
  put32(out, 0x06054b50);
  put16(out, 0), put16(out, 0);
  put16(out, static_cast<uint32_t>(members.size())), put16(out, static_cast<uint32_t>(members.size()));
  put32(out, static_cast<uint32_t>(directory.size())), put32(out, static_cast<uint32_t>(body.size()));
  put16(out, 0);
  return out;
}

}  // namespace shoal::test_util
