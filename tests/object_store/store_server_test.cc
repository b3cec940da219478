// The store's wire protocol, and a StoreServer serving real clients over its Unix socket:
// zero-copy gets across clients (and processes), waiting gets, disconnects, garbage, spilling.
#include "src/object_store/store_server.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "src/object_store/client.h"
#include "src/object_store/protocol.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

namespace proto = store_protocol;
constexpr uint64_t kMiB = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Protocol

ObjectId RandomObject() { return ObjectId::FromRandom(); }

// Encodes `frame`'s header and body and hands back the decoded parts.
std::pair<proto::FrameHeader, std::string> Split(const std::string& frame) {
  auto header = proto::DecodeHeader(frame);
  REQUIRE_OK(header);
  REQUIRE(frame.size() == proto::kHeaderSize + header->body_size);
  return {*header, frame.substr(proto::kHeaderSize)};
}

proto::Request RoundTrip(const proto::Request& request) {
  std::string frame;
  proto::EncodeRequest(request, &frame);
  auto [header, body] = Split(frame);
  auto decoded = proto::DecodeRequest(header, body);
  REQUIRE_OK(decoded);
  return *decoded;
}

proto::Reply RoundTrip(const proto::Reply& reply) {
  std::string frame;
  proto::EncodeReply(reply, &frame);
  auto [header, body] = Split(frame);
  auto decoded = proto::DecodeReply(header, body);
  REQUIRE_OK(decoded);
  return *decoded;
}

TEST_CASE("protocol: requests round trip", "[store_protocol]") {
  proto::Request create;
  create.type = proto::MessageType::kCreate;
  create.request_id = 77;
  create.id = RandomObject();
  create.data_size = 5ull << 32;
  create.metadata_size = 9;
  create.primary = false;
  proto::Request got = RoundTrip(create);
  CHECK(got.type == proto::MessageType::kCreate);
  CHECK(got.request_id == 77);
  CHECK(got.id == create.id);
  CHECK(got.data_size == create.data_size);
  CHECK(got.metadata_size == 9);
  CHECK_FALSE(got.primary);

  proto::Request get;
  get.type = proto::MessageType::kGet;
  get.request_id = ~uint64_t{0};
  get.timeout_ms = -1;
  for (int i = 0; i < 5; ++i) get.ids.push_back(RandomObject());
  got = RoundTrip(get);
  CHECK(got.request_id == ~uint64_t{0});
  CHECK(got.timeout_ms == -1);
  CHECK(got.ids == get.ids);

  for (auto type : {proto::MessageType::kSeal, proto::MessageType::kAbort, proto::MessageType::kRelease,
                    proto::MessageType::kDelete, proto::MessageType::kContains}) {
    proto::Request one;
    one.type = type;
    one.id = RandomObject();
    got = RoundTrip(one);
    CHECK(got.type == type);
    CHECK(got.id == one.id);
  }
  for (auto type : {proto::MessageType::kConnect, proto::MessageType::kStats}) {
    proto::Request none;
    none.type = type;
    CHECK(RoundTrip(none).type == type);
  }
}

TEST_CASE("protocol: replies round trip", "[store_protocol]") {
  proto::Reply connect;
  connect.type = proto::MessageType::kConnect;
  connect.request_id = 3;
  connect.capacity = 64 * kMiB;
  connect.prefaulted = true;
  proto::Reply got = RoundTrip(connect);
  CHECK(got.request_id == 3);
  CHECK_OK(got.status);
  CHECK(got.capacity == 64 * kMiB);
  CHECK(got.prefaulted);

  proto::Reply create;
  create.type = proto::MessageType::kCreate;
  create.location = {.offset = 4096, .data_size = 100, .metadata_size = 7};
  got = RoundTrip(create);
  CHECK(got.location.offset == 4096);
  CHECK(got.location.data_size == 100);
  CHECK(got.location.metadata_size == 7);

  proto::Reply get;
  get.type = proto::MessageType::kGet;
  get.entries.resize(3);
  get.entries[0].location = {.offset = 64, .data_size = 1, .metadata_size = 0};
  get.entries[1].status = absl::NotFoundError("not sealed");
  get.entries[2].status = absl::ResourceExhaustedError(std::string(1000, 'x'));  // cut to kMaxEntryMessage
  got = RoundTrip(get);
  REQUIRE(got.entries.size() == 3);
  CHECK_OK(got.entries[0].status);
  CHECK(got.entries[0].location.offset == 64);
  CHECK(got.entries[1].status == absl::NotFoundError("not sealed"));
  CHECK(got.entries[2].status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(got.entries[2].status.message().size() == proto::kMaxEntryMessage);

  proto::Reply contains;
  contains.type = proto::MessageType::kContains;
  contains.found = true;
  CHECK(RoundTrip(contains).found);

  proto::Reply stats;
  stats.type = proto::MessageType::kStats;
  stats.stats = {.capacity = 1,
                 .bytes_used = 2,
                 .num_objects = 3,
                 .bytes_spilled = 4,
                 .num_spilled = 5,
                 .num_evicted = 6,
                 .num_restored = 7};
  got = RoundTrip(stats);
  CHECK(got.stats.capacity == 1);
  CHECK(got.stats.num_evicted == 6);
  CHECK(got.stats.num_restored == 7);

  proto::Reply failed;  // an error carries only its status
  failed.type = proto::MessageType::kCreate;
  failed.status = absl::ResourceExhaustedError("ObjectStoreFull: no room");
  failed.location.offset = 99;
  got = RoundTrip(failed);
  CHECK(got.status == failed.status);
  CHECK(got.location.offset == 0);

  // The largest Get reply, all entries failed with long messages, still fits one frame.
  proto::Reply largest;
  largest.type = proto::MessageType::kGet;
  largest.entries.assign(proto::kMaxGetIds, {absl::InternalError(std::string(5000, 'm')), {}});
  CHECK(RoundTrip(largest).entries.size() == proto::kMaxGetIds);
}

TEST_CASE("protocol: malformed frames answer InvalidArgument", "[store_protocol]") {
  proto::Request seal;
  seal.type = proto::MessageType::kSeal;
  seal.id = RandomObject();
  std::string frame;
  proto::EncodeRequest(seal, &frame);
  auto [header, body] = Split(frame);

  SECTION("truncated header") {
    CHECK_CODE(proto::DecodeHeader(frame.substr(0, proto::kHeaderSize - 1)), kInvalidArgument);
  }
  SECTION("unknown type") {
    std::string bad = frame;
    bad[4] = 42;
    CHECK_CODE(proto::DecodeHeader(bad), kInvalidArgument);
  }
  SECTION("oversized body") {
    std::string bad = frame;
    const uint32_t huge = proto::kMaxBodySize + 1;
    std::memcpy(bad.data(), &huge, 4);
    CHECK_CODE(proto::DecodeHeader(bad), kInvalidArgument);
  }
  SECTION("truncated or padded bodies") {
    for (size_t n = 0; n < body.size(); ++n) {
      proto::FrameHeader h = header;
      h.body_size = static_cast<uint32_t>(n);
      CHECK_CODE(proto::DecodeRequest(h, body.substr(0, n)), kInvalidArgument);
    }
    proto::FrameHeader h = header;
    h.body_size++;
    CHECK_CODE(proto::DecodeRequest(h, body + "x"), kInvalidArgument);
    CHECK_CODE(proto::DecodeRequest(header, body.substr(1)), kInvalidArgument);  // sizes disagree
  }
  SECTION("a Get with more ids than allowed or than sent") {
    proto::Request get;
    get.type = proto::MessageType::kGet;
    get.ids = {RandomObject()};
    std::string get_frame;
    proto::EncodeRequest(get, &get_frame);
    auto [get_header, get_body] = Split(get_frame);
    for (uint32_t count : {uint32_t{2}, proto::kMaxGetIds + 1, ~uint32_t{0}}) {
      std::memcpy(get_body.data() + 8, &count, 4);
      CHECK_CODE(proto::DecodeRequest(get_header, get_body), kInvalidArgument);
    }
  }
  SECTION("a reply with an impossible status code or boolean") {
    proto::Reply contains;
    contains.type = proto::MessageType::kContains;
    contains.found = true;
    std::string reply_frame;
    proto::EncodeReply(contains, &reply_frame);
    auto [reply_header, reply_body] = Split(reply_frame);
    std::string bad = reply_body;
    bad.back() = 2;
    CHECK_CODE(proto::DecodeReply(reply_header, bad), kInvalidArgument);
    bad = reply_body;
    bad[0] = 17;
    CHECK_CODE(proto::DecodeReply(reply_header, bad), kInvalidArgument);
  }
}

TEST_CASE("protocol: random bytes never crash the decoders", "[store_protocol]") {
  std::mt19937_64 rng(12345);
  std::string frame;
  // Valid frames of every kind, to mutate.
  for (int t = 1; t <= 9; ++t) {
    proto::Request request;
    request.type = static_cast<proto::MessageType>(t);
    request.ids = {RandomObject(), RandomObject()};
    proto::EncodeRequest(request, &frame);
    proto::Reply reply;
    reply.type = static_cast<proto::MessageType>(t);
    reply.entries.resize(2);
    reply.entries[1].status = absl::NotFoundError("gone");
    proto::EncodeReply(reply, &frame);
  }
  const std::string seeds = frame;
  int decoded = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string bytes;
    if (round % 2 == 0) {  // pure noise, of a believable length
      bytes.resize(proto::kHeaderSize + rng() % 200);
      for (char& b : bytes) b = static_cast<char>(rng());
      const uint32_t type = rng() % 12, size = static_cast<uint32_t>(bytes.size() - proto::kHeaderSize);
      std::memcpy(bytes.data(), &size, 4);
      std::memcpy(bytes.data() + 4, &type, 4);
    } else {  // a valid stream with a few bytes flipped
      bytes = seeds;
      for (int k = 0; k < 3; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    // Decode through a FrameBuffer fed in random chunks, as a server would.
    proto::FrameBuffer in;
    size_t pos = 0;
    bool stream_broken = false;
    while (pos < bytes.size() && !stream_broken) {
      auto [buf, len] = in.WritableSpace();
      const size_t n = std::min<size_t>({len, bytes.size() - pos, 1 + rng() % 64});
      std::memcpy(buf, bytes.data() + pos, n);
      in.Commit(n);
      pos += n;
      while (true) {
        auto next = in.Next();
        if (!next.ok()) {
          CHECK(next.status().code() == absl::StatusCode::kInvalidArgument);
          stream_broken = true;
          break;
        }
        if (!next->has_value()) break;
        const proto::FrameBuffer::Frame& f = **next;
        auto request = proto::DecodeRequest(f.header, f.body);
        auto reply = proto::DecodeReply(f.header, f.body);
        if (!request.ok()) CHECK(request.status().code() == absl::StatusCode::kInvalidArgument);
        if (!reply.ok()) CHECK(reply.status().code() == absl::StatusCode::kInvalidArgument);
        decoded += request.ok() + reply.ok();
      }
    }
  }
  CHECK(decoded > 0);  // the mutated streams still hold valid frames
}

TEST_CASE("protocol: a frame buffer reassembles frames split anywhere", "[store_protocol]") {
  std::string stream;
  std::vector<proto::Request> sent;
  for (int i = 0; i < 50; ++i) {
    proto::Request get;
    get.type = proto::MessageType::kGet;
    get.request_id = i;
    get.timeout_ms = i;
    get.ids.resize(i * 37 % 200, RandomObject());  // up to ~5.6 KB bodies
    proto::EncodeRequest(get, &stream);
    sent.push_back(get);
  }
  std::mt19937 rng(7);
  proto::FrameBuffer in;
  size_t pos = 0, received = 0;
  while (pos < stream.size()) {
    auto [buf, len] = in.WritableSpace();
    REQUIRE(len >= (64u << 10));
    const size_t n = std::min<size_t>({len, stream.size() - pos, 1 + rng() % 3000});
    std::memcpy(buf, stream.data() + pos, n);
    in.Commit(n);
    pos += n;
    while (true) {
      auto next = in.Next();
      REQUIRE_OK(next);
      if (!next->has_value()) break;
      auto request = proto::DecodeRequest((*next)->header, (*next)->body);
      REQUIRE_OK(request);
      CHECK(request->request_id == sent[received].request_id);
      CHECK(request->ids == sent[received].ids);
      received++;
    }
  }
  CHECK(received == sent.size());
  CHECK(in.buffered() == 0);
}

// ---------------------------------------------------------------------------------------------
// Server and clients

using test_util::TempDir;

// A running store on a temporary socket.
struct StoreFixture {
  explicit StoreFixture(uint64_t capacity = 64 * kMiB, bool spill = false)
      : server({.socket_path = dir.path + "/sockets/store.sock",
                .capacity = capacity,
                .spill_dir = spill ? dir.path + "/spill" : ""}) {
    REQUIRE_OK(server.Start());
  }
  std::unique_ptr<ObjectStoreClient> Connect() {
    auto client = ObjectStoreClient::Connect(server.socket_path());
    REQUIRE_OK(client);
    return *std::move(client);
  }
  TempDir dir;
  StoreServer server;
};

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (size_t i = n / 8 * 8; i < n; ++i) out[i] = static_cast<char>(rng());
  return out;
}

uint64_t Checksum(const uint8_t* data, size_t n) {  // FNV-1a
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ data[i]) * 1099511628211ull;
  return h;
}

bool InArena(const ObjectStoreClient& client, const ObjectView& view) {
  return view.data >= client.arena_base() &&
         view.data + view.data_size + view.metadata_size <= client.arena_base() + client.arena_size();
}

// Waits until `done` holds, for what the server does after a connection closes. Fails after a
// generous limit rather than asserting how long it took.
bool Eventually(const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

ObjectView GetOne(ObjectStoreClient& client, const ObjectId& id) {
  auto views = client.Get({id}, absl::ZeroDuration());
  REQUIRE_OK(views);
  REQUIRE(views->size() == 1);
  REQUIRE_OK((*views)[0]);
  return *(*views)[0];
}

TEST_CASE("store server: put in one client, zero-copy get in another", "[store_server]") {
  StoreFixture store;
  auto alice = store.Connect();
  auto bob = store.Connect();
  CHECK(alice->arena_size() == 64 * kMiB);
  const ObjectId id = RandomObject();
  const std::string data = RandomBytes(1 * kMiB + 3, 1), meta = "pickle5";
  REQUIRE_OK(alice->Put(id, data.data(), data.size(), meta.data(), meta.size()));
  CHECK(*bob->Contains(id));

  ObjectView view = GetOne(*bob, id);
  CHECK(InArena(*bob, view));
  CHECK(std::string(reinterpret_cast<const char*>(view.data), view.data_size) == data);
  CHECK(std::string(reinterpret_cast<const char*>(view.metadata), view.metadata_size) == meta);
  CHECK(view.metadata == view.data + view.data_size);
  CHECK(reinterpret_cast<uintptr_t>(view.data) % 64 == 0);

  // Both mappings show the same shared bytes at the same offset.
  ObjectView mine = GetOne(*alice, id);
  CHECK(mine.data - alice->arena_base() == view.data - bob->arena_base());

  auto stats = bob->Stats();
  REQUIRE_OK(stats);
  CHECK(stats->num_objects == 1);
  CHECK(stats->bytes_used >= data.size() + meta.size());
  CHECK(stats->capacity == 64 * kMiB);

  REQUIRE_OK(bob->Release(id));
  CHECK_CODE(bob->Release(id), kFailedPrecondition);  // holds none any more
  REQUIRE_OK(alice->Release(id));                     // Put's reference
  REQUIRE_OK(alice->Release(id));                     // Get's
  REQUIRE_OK(alice->Delete(id));
  CHECK_FALSE(*bob->Contains(id));
  CHECK_CODE(bob->Delete(id), kNotFound);
}

TEST_CASE("store server: a large put, copied on several threads, arrives intact", "[store_server]") {
  StoreFixture store;
  auto alice = store.Connect();
  auto bob = store.Connect();
  const ObjectId id = RandomObject();
  const std::string data = RandomBytes(40 * kMiB + 123, 4);
  REQUIRE_OK(alice->Put(id, data.data(), data.size()));
  ObjectView view = GetOne(*bob, id);
  CHECK(InArena(*bob, view));
  REQUIRE(view.data_size == data.size());
  CHECK(Checksum(view.data, view.data_size) == Checksum(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

TEST_CASE("store server: create, write, seal and abort", "[store_server]") {
  StoreFixture store;
  auto client = store.Connect();
  const ObjectId id = RandomObject();
  auto object = client->Create(id, 100, 4);
  REQUIRE_OK(object);
  CHECK(object->data_size == 100);
  CHECK(object->metadata == object->data + 100);
  std::memset(object->data, 0xab, 100);
  CHECK_FALSE(*client->Contains(id));  // not sealed yet
  CHECK_CODE(client->Create(id, 1, 0), kAlreadyExists);
  REQUIRE_OK(client->Seal(id));
  CHECK_CODE(client->Seal(id), kFailedPrecondition);   // duplicate seal
  CHECK_CODE(client->Abort(id), kFailedPrecondition);  // sealed
  CHECK(GetOne(*client, id).data[99] == 0xab);

  const ObjectId other = RandomObject();
  REQUIRE_OK(client->Create(other, 10, 0));
  REQUIRE_OK(client->Abort(other));
  CHECK_CODE(client->Seal(other), kNotFound);
  REQUIRE_OK(client->Create(other, 10, 0));  // the id is free again

  CHECK_CODE(client->Seal(RandomObject()), kNotFound);
  CHECK_CODE(client->Release(RandomObject()), kNotFound);
  CHECK_CODE(client->Put(RandomObject(), nullptr, 5), kInvalidArgument);
}

TEST_CASE("store server: only the creator may seal", "[store_server]") {
  StoreFixture store;
  auto alice = store.Connect();
  auto bob = store.Connect();
  const ObjectId id = RandomObject();
  REQUIRE_OK(alice->Create(id, 8, 0));
  CHECK_CODE(bob->Seal(id), kFailedPrecondition);
  CHECK_CODE(bob->Abort(id), kFailedPrecondition);
  REQUIRE_OK(alice->Seal(id));
}

TEST_CASE("store server: oversized create answers ObjectStoreFull", "[store_server]") {
  StoreFixture store(16 * kMiB);
  auto client = store.Connect();
  auto object = client->Create(RandomObject(), 16 * kMiB + 1, 0);
  REQUIRE_CODE(object, kResourceExhausted);
  CHECK_THAT(std::string(object.status().message()), Catch::Contains("ObjectStoreFull"));
  // Without a spill directory, primary copies in use fill the store for good.
  const ObjectId big = RandomObject();
  REQUIRE_OK(client->Create(big, 12 * kMiB, 0));
  CHECK_CODE(client->Create(RandomObject(), 8 * kMiB, 0), kResourceExhausted);
  REQUIRE_OK(client->Create(RandomObject(), 2 * kMiB, 0));  // the store keeps serving
}

TEST_CASE("store server: get of a missing object times out with NotFound", "[store_server]") {
  StoreFixture store;
  auto client = store.Connect();
  const ObjectId present = RandomObject(), missing = RandomObject();
  REQUIRE_OK(client->Put(present, "abc", 3));
  for (absl::Duration timeout : {absl::ZeroDuration(), absl::Milliseconds(30)}) {
    auto views = client->Get({missing, present, missing}, timeout);
    REQUIRE_OK(views);
    REQUIRE(views->size() == 3);
    CHECK_CODE((*views)[0], kNotFound);
    CHECK_OK((*views)[1]);
    CHECK_CODE((*views)[2], kNotFound);
  }
  auto none = client->Get({}, absl::InfiniteDuration());
  REQUIRE_OK(none);
  CHECK(none->empty());
}

TEST_CASE("store server: a get of more ids than one request holds", "[store_server]") {
  StoreFixture store;
  auto client = store.Connect();
  std::vector<ObjectId> ids;
  for (uint32_t i = 0; i < proto::kMaxGetIds + 10; ++i) {
    ids.push_back(RandomObject());
    if (i % 1000 == 0) REQUIRE_OK(client->Put(ids.back(), &i, sizeof i));
  }
  auto views = client->Get(ids, absl::ZeroDuration());
  REQUIRE_OK(views);
  REQUIRE(views->size() == ids.size());
  for (uint32_t i = 0; i < ids.size(); ++i) {
    INFO("id " << i);
    CHECK((*views)[i].ok() == (i % 1000 == 0));
  }
}

TEST_CASE("store server: a waiting get is answered when another client seals", "[store_server]") {
  StoreFixture store;
  auto producer = store.Connect();
  auto consumer = store.Connect();
  const ObjectId id = RandomObject();
  const std::string data = RandomBytes(4096, 2);

  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> result;
  std::thread waiter([&] { result = consumer->Get({id}, absl::InfiniteDuration()); });
  REQUIRE_OK(producer->Put(id, data.data(), data.size()));
  waiter.join();
  REQUIRE_OK(result);
  REQUIRE_OK((*result)[0]);
  const ObjectView& view = *(*result)[0];
  CHECK(InArena(*consumer, view));
  CHECK(std::memcmp(view.data, data.data(), data.size()) == 0);
}

TEST_CASE("store server: a waiting get does not hold up other calls on its client", "[store_server]") {
  StoreFixture store;
  auto client = store.Connect();
  const ObjectId id = RandomObject();
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> result;
  std::thread waiter([&] { result = client->Get({id}, absl::InfiniteDuration()); });
  // Whether or not the Get is already waiting, these calls on the same client go through.
  REQUIRE_OK(client->Stats());
  REQUIRE_OK(client->Put(id, "late", 4));
  waiter.join();
  REQUIRE_OK(result);
  REQUIRE_OK((*result)[0]);
  CHECK(std::string(reinterpret_cast<const char*>((*result)[0]->data), 4) == "late");
}

// Speaks the protocol directly, to control exactly what the server sees.
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto addr = proto::UnixSocketAddress(path);
    REQUIRE_OK(addr);
    REQUIRE(connect(fd_, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0);
  }
  ~RawConnection() { close(fd_); }
  void Write(const std::string& bytes) {
    REQUIRE(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  }
  void Send(const proto::Request& request) {
    std::string frame;
    proto::EncodeRequest(request, &frame);
    Write(frame);
  }
  // The next reply, or nullopt when the server closed the connection.
  std::optional<proto::Reply> Read() {
    while (true) {
      auto next = in_.Next();
      REQUIRE_OK(next);
      if (next->has_value()) {
        auto reply = proto::DecodeReply((*next)->header, (*next)->body);
        REQUIRE_OK(reply);
        return *reply;
      }
      auto [buf, len] = in_.WritableSpace();
      const ssize_t n = recv(fd_, buf, len, 0);
      if (n <= 0) return std::nullopt;
      in_.Commit(n);
    }
  }

 private:
  int fd_ = -1;
  proto::FrameBuffer in_;
};

TEST_CASE("store server: a parked get is answered after later requests, then on seal", "[store_server]") {
  StoreFixture store;
  auto producer = store.Connect();
  const ObjectId id = RandomObject(), missing = RandomObject();
  REQUIRE_OK(producer->Create(id, 16, 0));  // exists, not sealed

  RawConnection raw(store.server.socket_path());
  proto::Request get;
  get.type = proto::MessageType::kGet;
  get.request_id = 1;
  get.timeout_ms = -1;
  get.ids = {id};
  raw.Send(get);
  proto::Request contains;
  contains.type = proto::MessageType::kContains;
  contains.request_id = 2;
  contains.id = id;
  raw.Send(contains);
  // The server answers in order unless a request waits: the Contains reply comes first, so the
  // Get is parked.
  auto first = raw.Read();
  REQUIRE(first.has_value());
  CHECK(first->request_id == 2);
  CHECK_FALSE(first->found);

  // A short Get for another object expires on its own while the first still waits.
  get.request_id = 3;
  get.timeout_ms = 20;
  get.ids = {missing};
  raw.Send(get);
  auto expired = raw.Read();
  REQUIRE(expired.has_value());
  CHECK(expired->request_id == 3);
  REQUIRE(expired->entries.size() == 1);
  CHECK_CODE(expired->entries[0].status, kNotFound);

  REQUIRE_OK(producer->Seal(id));
  auto woken = raw.Read();
  REQUIRE(woken.has_value());
  CHECK(woken->request_id == 1);
  REQUIRE(woken->entries.size() == 1);
  CHECK_OK(woken->entries[0].status);
  CHECK(woken->entries[0].location.data_size == 16);
}

TEST_CASE("store server: a client that sends garbage is cut off, others keep working", "[store_server]") {
  StoreFixture store;
  auto alice = store.Connect();
  const ObjectId id = RandomObject();
  REQUIRE_OK(alice->Put(id, "precious", 8));

  std::string garbage;
  SECTION("unknown message type") { garbage = std::string(16, '\x7f'); }
  SECTION("oversized frame") {
    garbage = std::string(16, '\0');
    const uint32_t huge = 0xffffffff, type = 2;
    std::memcpy(garbage.data(), &huge, 4);
    std::memcpy(garbage.data() + 4, &type, 4);
  }
  SECTION("truncated body of a known type") {
    proto::Request seal;
    seal.type = proto::MessageType::kSeal;
    seal.request_id = 9;
    proto::EncodeRequest(seal, &garbage);
    const uint32_t short_size = 5;
    std::memcpy(garbage.data(), &short_size, 4);
    garbage.resize(proto::kHeaderSize + short_size);
  }
  SECTION("text") { garbage = "GET / HTTP/1.1\r\nHost: store\r\n\r\n"; }

  RawConnection raw(store.server.socket_path());
  raw.Write(garbage);
  auto reply = raw.Read();
  REQUIRE(reply.has_value());
  CHECK(reply->type == proto::MessageType::kError);
  CHECK_CODE(reply->status, kInvalidArgument);
  CHECK_FALSE(raw.Read().has_value());  // then the server hangs up

  ObjectView view = GetOne(*alice, id);
  CHECK(std::string(reinterpret_cast<const char*>(view.data), 8) == "precious");
  auto bob = store.Connect();
  CHECK(*bob->Contains(id));
  REQUIRE_OK(bob->Put(RandomObject(), "x", 1));
}

TEST_CASE("store server: references die with their client", "[store_server]") {
  StoreFixture store;
  auto alice = store.Connect();
  auto bob = store.Connect();
  auto observer = store.Connect();
  const ObjectId id = RandomObject();
  REQUIRE_OK(alice->Put(id, "shared", 6));  // alice holds a reference
  GetOne(*bob, id);                         // and so does bob
  REQUIRE_OK(observer->Delete(id));         // deferred while referenced
  CHECK(*observer->Contains(id));
  alice.reset();
  bob.reset();
  CHECK(Eventually([&] { return !*observer->Contains(id); }));
  CHECK(Eventually([&] { return observer->Stats()->num_objects == 0; }));
}

TEST_CASE("store server: a client that disconnects mid-create leaves nothing behind", "[store_server]") {
  StoreFixture store;
  auto creator = store.Connect();
  auto other = store.Connect();
  const ObjectId id = RandomObject();
  auto object = creator->Create(id, 1 * kMiB, 0);
  REQUIRE_OK(object);
  std::memset(object->data, 1, 1000);
  CHECK_CODE(other->Create(id, 10, 0), kAlreadyExists);
  creator.reset();  // never seals
  CHECK(Eventually([&] { return other->Stats()->bytes_used == 0; }));
  REQUIRE_OK(other->Create(id, 10, 0));
  REQUIRE_OK(other->Seal(id));
}

// Runs `child` in a forked process and answers its exit status (or the signal that ended it).
int RunInChild(const std::function<int()>& child) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(child());
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_CASE("store server: objects pass between processes, and a killed process lets go", "[store_server]") {
  StoreFixture store;
  const std::string path = store.server.socket_path();
  const ObjectId id = RandomObject();
  const std::string data = RandomBytes(3 * kMiB, 3);
  const uint64_t checksum = Checksum(reinterpret_cast<const uint8_t*>(data.data()), data.size());

  // The child puts and is killed while it still holds its reference.
  const int child = RunInChild([&] {
    auto client = ObjectStoreClient::Connect(path);
    if (!client.ok() || !(*client)->Put(id, data.data(), data.size()).ok()) return 1;
    kill(getpid(), SIGKILL);
    return 2;
  });
  REQUIRE(child == 128 + SIGKILL);

  auto reader = store.Connect();
  ObjectView view = GetOne(*reader, id);
  CHECK(InArena(*reader, view));
  CHECK(Checksum(view.data, view.data_size) == checksum);
  // A second process reads it zero-copy too.
  CHECK(RunInChild([&] {
          auto client = ObjectStoreClient::Connect(path);
          if (!client.ok()) return 1;
          auto views = (*client)->Get({id}, absl::Seconds(10));
          if (!views.ok() || !(*views)[0].ok()) return 2;
          const ObjectView& v = *(*views)[0];
          if (v.data < (*client)->arena_base() ||
              v.data + v.data_size > (*client)->arena_base() + (*client)->arena_size())
            return 3;
          return Checksum(v.data, v.data_size) == checksum ? 0 : 4;
        }) == 0);

  REQUIRE_OK(reader->Release(id));
  REQUIRE_OK(reader->Delete(id));  // nobody else holds it: the killed child's reference is gone
  CHECK(Eventually([&] { return !*reader->Contains(id); }));
}

TEST_CASE("store server: filling past capacity spills, and every object comes back", "[store_server]") {
  StoreFixture store(32 * kMiB, /*spill=*/true);
  auto client = store.Connect();
  constexpr int kObjects = 24;
  constexpr uint64_t kSize = 3 * kMiB + 100;  // 72 MiB in all, in a 32 MiB store
  std::vector<ObjectId> ids;
  std::vector<uint64_t> sums;
  for (int i = 0; i < kObjects; ++i) {
    const std::string data = RandomBytes(kSize, 100 + i);
    ids.push_back(RandomObject());
    sums.push_back(Checksum(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
    const std::string meta = "m" + std::to_string(i);
    REQUIRE_OK(client->Put(ids.back(), data.data(), data.size(), meta.data(), meta.size()));
    REQUIRE_OK(client->Release(ids.back()));
  }
  auto stats = client->Stats();
  REQUIRE_OK(stats);
  CHECK(stats->num_objects == kObjects);
  CHECK(stats->num_spilled > 0);
  CHECK(stats->bytes_used <= 32 * kMiB);

  // Read them all back (oldest first, so restores spill others), twice.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kObjects; ++i) {
      INFO("object " << i << " round " << round);
      ObjectView view = GetOne(*client, ids[i]);
      CHECK(view.data_size == kSize);
      CHECK(Checksum(view.data, view.data_size) == sums[i]);
      CHECK(std::string(reinterpret_cast<const char*>(view.metadata), view.metadata_size) == "m" + std::to_string(i));
      REQUIRE_OK(client->Release(ids[i]));
    }
  }
  stats = client->Stats();
  REQUIRE_OK(stats);
  CHECK(stats->num_restored > 0);
  CHECK(stats->num_objects == kObjects);
  CHECK(std::filesystem::exists(store.dir.path + "/spill"));
}

TEST_CASE("store server: stopping the server answers Unavailable, also to a waiting get", "[store_server]") {
  StoreFixture store;
  auto client = store.Connect();
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> result;
  std::thread waiter([&] { result = client->Get({RandomObject()}, absl::InfiniteDuration()); });
  REQUIRE_OK(client->Stats());  // the connection is up
  store.server.Stop();
  waiter.join();
  CHECK_CODE(result, kUnavailable);
  CHECK_CODE(client->Put(RandomObject(), "x", 1), kUnavailable);
  CHECK_FALSE(std::filesystem::exists(store.server.socket_path()));
  store.server.Stop();  // idempotent
  CHECK_CODE(ObjectStoreClient::Connect(store.server.socket_path()), kUnavailable);
}

StoreServerOptions Options(const std::string& path, uint64_t capacity) {
  StoreServerOptions options;
  options.socket_path = path;
  options.capacity = capacity;
  return options;
}

TEST_CASE("store server: socket path handling", "[store_server]") {
  TempDir dir;
  const std::string path = dir.path + "/nested/dir/store.sock";
  std::filesystem::create_directories(dir.path + "/nested/dir");
  std::ofstream(path) << "stale";  // a leftover file is replaced
  StoreServer first(Options(path, 1 * kMiB));
  REQUIRE_OK(first.Start());
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  CHECK_CODE(first.Start(), kFailedPrecondition);

  StoreServer second(Options(path, 1 * kMiB));
  CHECK_CODE(second.Start(), kAlreadyExists);    // a live store is not stale
  REQUIRE_OK(ObjectStoreClient::Connect(path));  // and the first one still serves

  StoreServer too_long(Options(dir.path + "/" + std::string(200, 'x'), 1 * kMiB));
  CHECK_CODE(too_long.Start(), kInvalidArgument);
  StoreServer empty(Options(dir.path + "/empty.sock", 0));
  CHECK_CODE(empty.Start(), kInvalidArgument);
  CHECK_CODE(ObjectStoreClient::Connect(dir.path + "/nobody.sock"), kUnavailable);
}

}  // namespace
}  // namespace shoal
