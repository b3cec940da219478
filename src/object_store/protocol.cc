#include "src/object_store/protocol.h"

#include <sys/socket.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shoal::store_protocol {
namespace {

static_assert(std::endian::native == std::endian::little, "the wire format is the host's");

// Appends little-endian fixed-width values.
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  template <typename T>
  void Int(T v) {
    out_->append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void Id(const ObjectId& id) { out_->append(reinterpret_cast<const char*>(id.data()), ObjectId::kSize); }
  void Bytes(std::string_view b) {
    Int<uint32_t>(static_cast<uint32_t>(b.size()));
    out_->append(b);
  }
  void Status(const absl::Status& s, size_t max_message) {
    Int<uint32_t>(static_cast<uint32_t>(s.code()));
    Bytes(std::string_view(s.message().data(), std::min(s.message().size(), max_message)));
  }
  void Location(const ObjectLocation& l) {
    Int(l.offset);
    Int(l.data_size);
    Int(l.metadata_size);
  }

 private:
  std::string* out_;
};

// Reads little-endian fixed-width values; every read checks the remaining length first.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool Int(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Bool(bool* v) {
    uint8_t b;
    if (!Int(&b) || b > 1) return false;
    *v = b == 1;
    return true;
  }
  bool Id(ObjectId* id) {
    if (in_.size() - pos_ < ObjectId::kSize) return false;
    *id = *ObjectId::FromBinary(in_.substr(pos_, ObjectId::kSize));
    pos_ += ObjectId::kSize;
    return true;
  }
  bool Bytes(std::string_view* b, size_t max) {
    uint32_t n;
    if (!Int(&n) || n > max || in_.size() - pos_ < n) return false;
    *b = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Status(absl::Status* s, size_t max_message) {
    uint32_t code;
    std::string_view message;
    if (!Int(&code) || code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated) ||
        !Bytes(&message, max_message)) {
      return false;
    }
    *s = absl::Status(static_cast<absl::StatusCode>(code), absl::string_view(message.data(), message.size()));
    return true;
  }
  bool Location(ObjectLocation* l) { return Int(&l->offset) && Int(&l->data_size) && Int(&l->metadata_size); }
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

bool KnownType(uint32_t type) { return type <= static_cast<uint32_t>(MessageType::kStats); }

// Reserves the header, lets `body` write, then fills the header in.
template <typename Fn>
void EncodeFrame(MessageType type, uint64_t request_id, std::string* out, Fn&& body) {
  const size_t start = out->size();
  out->append(kHeaderSize, '\0');
  Writer w(out);
  body(w);
  const auto body_size = static_cast<uint32_t>(out->size() - start - kHeaderSize);
  const auto type_value = static_cast<uint32_t>(type);
  std::memcpy(out->data() + start, &body_size, 4);
  std::memcpy(out->data() + start + 4, &type_value, 4);
  std::memcpy(out->data() + start + 8, &request_id, 8);
}

absl::Status Malformed(const FrameHeader& h, const char* what) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed ", MessageTypeName(h.type), " frame (", h.body_size, " bytes): ", what));
}

}  // namespace

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kError:
      return "Error";
    case MessageType::kConnect:
      return "Connect";
    case MessageType::kCreate:
      return "Create";
    case MessageType::kSeal:
      return "Seal";
    case MessageType::kAbort:
      return "Abort";
    case MessageType::kGet:
      return "Get";
    case MessageType::kRelease:
      return "Release";
    case MessageType::kDelete:
      return "Delete";
    case MessageType::kContains:
      return "Contains";
    case MessageType::kStats:
      return "Stats";
  }
  return "Unknown";
}

void EncodeRequest(const Request& r, std::string* out) {
  EncodeFrame(r.type, r.request_id, out, [&](Writer& w) {
    switch (r.type) {
      case MessageType::kCreate:
        w.Id(r.id);
        w.Int(r.data_size);
        w.Int(r.metadata_size);
        w.Int<uint8_t>(r.primary ? 1 : 0);
        break;
      case MessageType::kSeal:
      case MessageType::kAbort:
      case MessageType::kRelease:
      case MessageType::kDelete:
      case MessageType::kContains:
        w.Id(r.id);
        break;
      case MessageType::kGet:
        w.Int(r.timeout_ms);
        w.Int<uint32_t>(static_cast<uint32_t>(r.ids.size()));
        for (const ObjectId& id : r.ids) w.Id(id);
        break;
      case MessageType::kError:
      case MessageType::kConnect:
      case MessageType::kStats:
        break;
    }
  });
}

void EncodeReply(const Reply& r, std::string* out) {
  EncodeFrame(r.type, r.request_id, out, [&](Writer& w) {
    w.Status(r.status, kMaxStatusMessage);
    if (!r.status.ok()) return;
    switch (r.type) {
      case MessageType::kConnect:
        w.Int(r.capacity);
        w.Int<uint8_t>(r.prefaulted ? 1 : 0);
        break;
      case MessageType::kCreate:
        w.Location(r.location);
        break;
      case MessageType::kContains:
        w.Int<uint8_t>(r.found ? 1 : 0);
        break;
      case MessageType::kGet:
        w.Int<uint32_t>(static_cast<uint32_t>(r.entries.size()));
        for (const GetEntry& e : r.entries) {
          if (e.status.ok()) {
            w.Int<uint32_t>(0);
            w.Location(e.location);
          } else {
            w.Status(e.status, kMaxEntryMessage);
          }
        }
        break;
      case MessageType::kStats:
        for (uint64_t v : {r.stats.capacity, r.stats.bytes_used, r.stats.num_objects, r.stats.bytes_spilled,
                           r.stats.num_spilled, r.stats.num_evicted, r.stats.num_restored}) {
          w.Int(v);
        }
        break;
      case MessageType::kError:
      case MessageType::kSeal:
      case MessageType::kAbort:
      case MessageType::kRelease:
      case MessageType::kDelete:
        break;
    }
  });
}

absl::StatusOr<FrameHeader> DecodeHeader(std::string_view bytes) {
  if (bytes.size() < kHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat("frame header needs ", kHeaderSize, " bytes, got ", bytes.size()));
  }
  FrameHeader h;
  uint32_t type;
  std::memcpy(&h.body_size, bytes.data(), 4);
  std::memcpy(&type, bytes.data() + 4, 4);
  std::memcpy(&h.request_id, bytes.data() + 8, 8);
  if (!KnownType(type)) return absl::InvalidArgumentError(absl::StrCat("unknown message type ", type));
  if (h.body_size > kMaxBodySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame body of ", h.body_size, " bytes exceeds the limit of ", kMaxBodySize));
  }
  h.type = static_cast<MessageType>(type);
  return h;
}

absl::StatusOr<Request> DecodeRequest(const FrameHeader& h, std::string_view body) {
  if (body.size() != h.body_size) return Malformed(h, "body size differs from the header's");
  Request r;
  r.type = h.type;
  r.request_id = h.request_id;
  Reader in(body);
  switch (h.type) {
    case MessageType::kError:
      return Malformed(h, "not a request type");
    case MessageType::kConnect:
    case MessageType::kStats:
      break;
    case MessageType::kCreate:
      if (!in.Id(&r.id) || !in.Int(&r.data_size) || !in.Int(&r.metadata_size) || !in.Bool(&r.primary)) {
        return Malformed(h, "truncated");
      }
      break;
    case MessageType::kSeal:
    case MessageType::kAbort:
    case MessageType::kRelease:
    case MessageType::kDelete:
    case MessageType::kContains:
      if (!in.Id(&r.id)) return Malformed(h, "truncated");
      break;
    case MessageType::kGet: {
      uint32_t count;
      if (!in.Int(&r.timeout_ms) || !in.Int(&count)) return Malformed(h, "truncated");
      if (r.timeout_ms < -1) return Malformed(h, "timeout below -1");
      if (count > kMaxGetIds) return Malformed(h, "too many ids");
      if (in.remaining() != uint64_t{count} * ObjectId::kSize) return Malformed(h, "id count differs from the body");
      r.ids.resize(count);
      for (ObjectId& id : r.ids) in.Id(&id);
      break;
    }
  }
  if (!in.done()) return Malformed(h, "trailing bytes");
  return r;
}

absl::StatusOr<Reply> DecodeReply(const FrameHeader& h, std::string_view body) {
  if (body.size() != h.body_size) return Malformed(h, "body size differs from the header's");
  Reply r;
  r.type = h.type;
  r.request_id = h.request_id;
  Reader in(body);
  if (!in.Status(&r.status, kMaxStatusMessage)) return Malformed(h, "bad status");
  if (r.status.ok()) {
    bool ok = true;
    switch (h.type) {
      case MessageType::kConnect:
        ok = in.Int(&r.capacity) && in.Bool(&r.prefaulted);
        break;
      case MessageType::kCreate:
        ok = in.Location(&r.location);
        break;
      case MessageType::kContains:
        ok = in.Bool(&r.found);
        break;
      case MessageType::kGet: {
        uint32_t count;
        if (!in.Int(&count) || count > kMaxGetIds) return Malformed(h, "bad entry count");
        r.entries.resize(count);
        for (GetEntry& e : r.entries) {
          uint32_t code;
          if (!in.Int(&code)) return Malformed(h, "truncated");
          if (code == 0) {
            ok = in.Location(&e.location);
          } else {
            std::string_view message;
            ok = code <= static_cast<uint32_t>(absl::StatusCode::kUnauthenticated) &&
                 in.Bytes(&message, kMaxEntryMessage);
            e.status =
                absl::Status(static_cast<absl::StatusCode>(code), absl::string_view(message.data(), message.size()));
          }
          if (!ok) break;
        }
        break;
      }
      case MessageType::kStats:
        ok = in.Int(&r.stats.capacity) && in.Int(&r.stats.bytes_used) && in.Int(&r.stats.num_objects) &&
             in.Int(&r.stats.bytes_spilled) && in.Int(&r.stats.num_spilled) && in.Int(&r.stats.num_evicted) &&
             in.Int(&r.stats.num_restored);
        break;
      case MessageType::kError:
        return Malformed(h, "an error frame must carry an error");
      case MessageType::kSeal:
      case MessageType::kAbort:
      case MessageType::kRelease:
      case MessageType::kDelete:
        break;
    }
    if (!ok) return Malformed(h, "truncated");
  }
  if (!in.done()) return Malformed(h, "trailing bytes");
  return r;
}

std::pair<char*, size_t> FrameBuffer::WritableSpace() {
  size_t want = 64 << 10;
  if (buffered() >= kHeaderSize) {
    uint32_t body_size;
    std::memcpy(&body_size, data_.get() + begin_, 4);
    // An oversized header is rejected by Next(); do not grow for it.
    if (body_size <= kMaxBodySize) want = std::max(want, kHeaderSize + body_size - buffered());
  }
  if (capacity_ - end_ < want) {
    if (begin_ > 0) {  // move the partial frame to the front
      std::memmove(data_.get(), data_.get() + begin_, buffered());
      end_ -= begin_;
      begin_ = 0;
    }
    if (capacity_ - end_ < want) {
      const size_t capacity = end_ + want;
      auto data = std::make_unique_for_overwrite<char[]>(capacity);
      if (end_ > 0) std::memcpy(data.get(), data_.get(), end_);
      data_ = std::move(data);
      capacity_ = capacity;
    }
  }
  return {data_.get() + end_, capacity_ - end_};
}

void FrameBuffer::Commit(size_t n) { end_ += std::min(n, capacity_ - end_); }

absl::StatusOr<std::optional<FrameBuffer::Frame>> FrameBuffer::Next() {
  if (buffered() < kHeaderSize) return std::nullopt;
  const char* front = data_.get() + begin_;
  auto header = DecodeHeader(std::string_view(front, kHeaderSize));
  if (!header.ok()) return header.status();
  if (buffered() - kHeaderSize < header->body_size) return std::nullopt;
  Frame frame{*header, std::string_view(front + kHeaderSize, header->body_size)};
  begin_ += kHeaderSize + header->body_size;
  if (begin_ == end_) begin_ = end_ = 0;  // nothing left: reuse the buffer from the start
  return frame;
}

absl::StatusOr<sockaddr_un> UnixSocketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path '", path, "' must have 1 to ", sizeof addr.sun_path - 1, " characters"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

absl::Status ErrnoStatus(absl::StatusCode code, const std::string& what, int err) {
  return absl::Status(code, absl::StrCat(what, ": ", std::strerror(err)));
}

}  // namespace shoal::store_protocol
