// net::Listener and the frame helpers (src/common/socket.h) on real loopback sockets.
#include "src/common/socket.h"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util/status_matchers.h"

namespace shoal::net {
namespace {

TEST_CASE("Listener hands each connection over and takes none after Stop", "[socket]") {
  std::atomic<int> taken{0};
  Listener listener;
  absl::StatusOr<int> port = listener.Start("127.0.0.1", "test-accept", "test", [&](int fd) {
    REQUIRE_OK(WriteFrame(fd, "hello"));
    ::close(fd);
    ++taken;
  });
  REQUIRE_OK(port);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<int> fd = Connect("127.0.0.1", *port, absl::Seconds(5));
    REQUIRE_OK(fd);
    absl::StatusOr<std::string> frame = ReadFrame(*fd, 64);
    REQUIRE_OK(frame);
    CHECK(*frame == "hello");
    ::close(*fd);
  }
  CHECK(taken == 3);
  listener.Stop();
  listener.Stop();  // idempotent
  CHECK_FALSE(Connect("127.0.0.1", *port, absl::Seconds(1)).ok());
  CHECK(taken == 3);
  // Not an address: a clear error naming what it was for.
  Listener other;
  absl::StatusOr<int> bad = other.Start("not-an-ip", "test-accept", "test", [](int fd) { ::close(fd); });
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("test: 'not-an-ip' is not an IPv4 address"));
}

TEST_CASE("ReadFrame refuses oversized frames and stops at its deadline", "[socket]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  REQUIRE_OK(WriteFrame(pair[0], std::string(100, 'x')));
  absl::StatusOr<std::string> big = ReadFrame(pair[1], 10);
  CHECK(absl::IsInvalidArgument(big.status()));
  ::close(pair[0]);
  ::close(pair[1]);
  // A frame whose bytes never come: the deadline ends the read, however it trickles.
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  const char partial[2] = {5, 0};
  REQUIRE(::write(pair[0], partial, sizeof(partial)) == 2);
  absl::StatusOr<std::string> late = ReadFrame(pair[1], 10, absl::Now() + absl::Milliseconds(100));
  CHECK(absl::IsDeadlineExceeded(late.status()));
  ::close(pair[0]);
  ::close(pair[1]);
}

// Frames of every size around the buffer's, written back to back by a thread in pieces of odd
// sizes, come out whole and in order: small ones from one read, large ones past the buffer.
TEST_CASE("FrameReader reads back-to-back frames of any size, written in pieces", "[socket]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  std::vector<std::string> sent;
  for (size_t size : {size_t{0}, size_t{1}, size_t{3}, size_t{100}, FrameReader::kBufferBytes - 4,
                      FrameReader::kBufferBytes - 3, FrameReader::kBufferBytes, FrameReader::kBufferBytes + 1,
                      size_t{1} << 20, size_t{5}, size_t{70000}, size_t{2}}) {
    std::string frame(size, '\0');
    for (size_t i = 0; i < size; ++i) frame[i] = static_cast<char>('a' + (i * 7 + size) % 26);
    sent.push_back(frame);
  }
  std::thread writer([&] {
    std::string stream;
    for (const std::string& frame : sent) {
      const uint32_t n = static_cast<uint32_t>(frame.size());
      stream.append({static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 24)});
      stream += frame;
    }
    for (size_t at = 0, piece = 1; at < stream.size(); piece = piece * 3 % 9973 + 1) {
      const size_t n = std::min(piece, stream.size() - at);
      REQUIRE_OK(WriteAll(pair[0], std::string_view(stream).substr(at, n)));
      at += n;
    }
    ::shutdown(pair[0], SHUT_WR);
  });
  FrameReader reader(pair[1], size_t{2} << 20);
  for (const std::string& expected : sent) {
    absl::StatusOr<std::string> frame = reader.Next();
    REQUIRE_OK(frame);
    CHECK(frame->size() == expected.size());
    CHECK(*frame == expected);
  }
  CHECK(absl::IsUnavailable(reader.Next().status()));  // the writer closed: the end, said so
  writer.join();
  ::close(pair[0]);
  ::close(pair[1]);
  // A frame over the limit is refused, as by ReadFrame.
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  REQUIRE_OK(WriteFrame(pair[0], std::string(100, 'x')));
  FrameReader small(pair[1], 10);
  CHECK(absl::IsInvalidArgument(small.Next().status()));
  ::close(pair[0]);
  ::close(pair[1]);
}

}  // namespace
}  // namespace shoal::net
