// Fuzzes the object store's frame decoders (src/object_store/protocol.h): DecodeHeader,
// DecodeRequest and DecodeReply, which the store server and the client run on bytes read from
// the Unix socket.
//
// Input: one frame, a 16-byte header and its body. The header's body_size is checked as sent
// (a mismatch must be refused) and then replaced by the real body length, so the fuzzer reaches
// the body decoders without having to guess it.
// Invariants: a refusal is InvalidArgument; whatever decodes encodes back to a frame that
// decodes to the same value, and to the very same bytes for every request (the request
// encoding is canonical) and for every reply but one whose OK status carries a message (the
// message of an OK absl::Status is dropped).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/object_store/protocol.h"

namespace sp = shoal::store_protocol;

namespace {

bool SameLocation(const shoal::ObjectLocation& a, const shoal::ObjectLocation& b) {
  return a.offset == b.offset && a.data_size == b.data_size && a.metadata_size == b.metadata_size;
}

bool SameRequest(const sp::Request& a, const sp::Request& b) {
  return a.type == b.type && a.request_id == b.request_id && a.id == b.id && a.ids == b.ids &&
         a.data_size == b.data_size && a.metadata_size == b.metadata_size && a.primary == b.primary &&
         a.timeout_ms == b.timeout_ms;
}

bool SameReply(const sp::Reply& a, const sp::Reply& b) {
  if (a.type != b.type || a.request_id != b.request_id || a.status != b.status || a.capacity != b.capacity ||
      a.prefaulted != b.prefaulted || !SameLocation(a.location, b.location) || a.found != b.found ||
      a.entries.size() != b.entries.size()) {
    return false;
  }
  for (size_t i = 0; i < a.entries.size(); ++i) {
    if (a.entries[i].status != b.entries[i].status || !SameLocation(a.entries[i].location, b.entries[i].location)) {
      return false;
    }
  }
  const shoal::StoreStats &x = a.stats, &y = b.stats;
  return x.capacity == y.capacity && x.bytes_used == y.bytes_used && x.num_objects == y.num_objects &&
         x.bytes_spilled == y.bytes_spilled && x.num_spilled == y.num_spilled && x.num_evicted == y.num_evicted &&
         x.num_restored == y.num_restored;
}

// Splits an encoded frame into its decoded header and its body.
std::pair<sp::FrameHeader, std::string_view> Split(const std::string& frame) {
  absl::StatusOr<sp::FrameHeader> header = sp::DecodeHeader(frame);
  FUZZ_CHECK(header.ok());
  FUZZ_CHECK(header->body_size == frame.size() - sp::kHeaderSize);
  return {*header, std::string_view(frame).substr(sp::kHeaderSize)};
}

void CheckRequest(const sp::FrameHeader& header, std::string_view body, std::string_view frame) {
  absl::StatusOr<sp::Request> request = sp::DecodeRequest(header, body);
  if (!request.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(request.status()));
    return;
  }
  FUZZ_CHECK(request->type == header.type && request->request_id == header.request_id);
  FUZZ_CHECK(request->ids.size() <= sp::kMaxGetIds);
  FUZZ_CHECK(request->timeout_ms >= -1);
  std::string encoded;
  sp::EncodeRequest(*request, &encoded);
  FUZZ_CHECK(encoded == frame);
  auto [again_header, again_body] = Split(encoded);
  absl::StatusOr<sp::Request> again = sp::DecodeRequest(again_header, again_body);
  FUZZ_CHECK(again.ok() && SameRequest(*request, *again));
}

void CheckReply(const sp::FrameHeader& header, std::string_view body, std::string_view frame) {
  absl::StatusOr<sp::Reply> reply = sp::DecodeReply(header, body);
  if (!reply.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(reply.status()));
    return;
  }
  FUZZ_CHECK(reply->type == header.type && reply->request_id == header.request_id);
  FUZZ_CHECK(reply->entries.size() <= sp::kMaxGetIds);
  FUZZ_CHECK(reply->status.message().size() <= sp::kMaxStatusMessage);
  for (const sp::GetEntry& e : reply->entries) FUZZ_CHECK(e.status.message().size() <= sp::kMaxEntryMessage);
  std::string encoded;
  sp::EncodeReply(*reply, &encoded);
  FUZZ_CHECK(encoded.size() - sp::kHeaderSize <= sp::kMaxBodySize);
  uint32_t code, message_size;
  std::memcpy(&code, body.data(), 4);  // a decoded reply has at least its status's 8 bytes
  std::memcpy(&message_size, body.data() + 4, 4);
  const bool ok_with_message = code == 0 && message_size > 0;
  FUZZ_CHECK(ok_with_message ? encoded.size() == frame.size() - message_size : encoded == frame);
  auto [again_header, again_body] = Split(encoded);
  absl::StatusOr<sp::Reply> again = sp::DecodeReply(again_header, again_body);
  FUZZ_CHECK(again.ok() && SameReply(*reply, *again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string frame(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<sp::FrameHeader> header = sp::DecodeHeader(frame);
  if (!header.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(header.status()));
    return 0;
  }
  FUZZ_CHECK(size >= sp::kHeaderSize && header->body_size <= sp::kMaxBodySize);
  (void)sp::MessageTypeName(header->type);
  std::string_view body = std::string_view(frame).substr(sp::kHeaderSize);
  if (header->body_size != body.size()) {
    // The header's size is checked against the body it came with ...
    FUZZ_CHECK(absl::IsInvalidArgument(sp::DecodeRequest(*header, body).status()));
    FUZZ_CHECK(absl::IsInvalidArgument(sp::DecodeReply(*header, body).status()));
    if (body.size() > sp::kMaxBodySize) return 0;
    // ... and then made to fit, to reach the body decoders.
    header->body_size = static_cast<uint32_t>(body.size());
    std::memcpy(frame.data(), &header->body_size, 4);
  }
  CheckRequest(*header, body, frame);
  CheckReply(*header, body, frame);
  return 0;
}
