// ObjectManager: fetching objects from other nodes into this node's store, with a fake transfer
// client (holders that fail mid-stream, lie about offsets, stop early, or hold fetches in flight)
// and, at the end, two managers talking over real gRPC on loopback.
#include "src/raylet/object_manager.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/common/socket.h"
#include "src/object_store/store_server.h"
#include "src/raylet/fake_object_transfer_client.h"
#include "src/raylet/object_socket.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// A store on a temporary socket and a client of it.
struct Store {
  Store() : server({.socket_path = dir.path + "/store.sock", .capacity = 16 * kMiB, .spill_dir = ""}) {
    REQUIRE_OK(server.Start());
    auto c = ObjectStoreClient::Connect(server.socket_path());
    REQUIRE_OK(c);
    client = *std::move(c);
  }
  // The object's data and metadata, or "<absent>".
  std::string Read(const ObjectId& id) {
    auto views = client->Get({id}, absl::ZeroDuration());
    REQUIRE_OK(views);
    if (!(*views)[0].ok()) return "<absent>";
    const ObjectView& v = *(*views)[0];
    std::string out(reinterpret_cast<const char*>(v.data), v.data_size);
    out += "|";
    out.append(reinterpret_cast<const char*>(v.metadata), v.metadata_size);
    REQUIRE_OK(client->Release(id));
    return out;
  }
  bool Contains(const ObjectId& id) {
    auto here = client->Contains(id);
    REQUIRE_OK(here);
    return *here;
  }
  test_util::TempDir dir;
  StoreServer server;
  std::unique_ptr<ObjectStoreClient> client;
};

struct Fixture {
  explicit Fixture(ObjectManagerOptions options = {}) {
    auto t = std::make_unique<FakeObjectTransferClient>();
    transfer = t.get();
    manager = std::make_unique<ObjectManager>(*store.client, std::move(t), options);
  }
  Store store;
  FakeObjectTransferClient* transfer;
  std::unique_ptr<ObjectManager> manager;
};

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

TEST_CASE("ObjectManager fetches an object in many chunks, data and metadata intact", "[raylet][object_manager]") {
  Fixture f;
  const std::string data = Bytes(10'000, 'a'), metadata = "meta";
  f.transfer->AddHolder("10.0.0.1:1", FakeHolder(data, 999, metadata));
  const ObjectId id = ObjectId::FromRandom();
  auto from = f.manager->Fetch(id, {"10.0.0.1:1"});
  REQUIRE_OK(from);
  CHECK(*from == "10.0.0.1:1");
  CHECK(f.store.Read(id) == data + "|" + metadata);
}

TEST_CASE("ObjectManager fetches an empty object", "[raylet][object_manager]") {
  Fixture f;
  f.transfer->AddHolder("h:1", FakeHolder("", 1024));
  const ObjectId id = ObjectId::FromRandom();
  REQUIRE_OK(f.manager->Fetch(id, {"h:1"}));
  CHECK(f.store.Read(id) == "|");
}

TEST_CASE("ObjectManager does not pull an object that is already here", "[raylet][object_manager]") {
  Fixture f;
  const ObjectId id = ObjectId::FromRandom();
  REQUIRE_OK(f.store.client->Put(id, "x", 1));
  REQUIRE_OK(f.store.client->Release(id));
  auto from = f.manager->Fetch(id, {"h:1"});
  REQUIRE_OK(from);
  CHECK(from->empty());
  CHECK(f.transfer->pulls().empty());
}

TEST_CASE("ObjectManager pulls the rest from the next holder when one dies mid-stream", "[raylet][object_manager]") {
  Fixture f;
  const std::string data = Bytes(5000, 'q');
  f.transfer->AddHolder("dying:1", FakeHolder(data, 1000).FailAfter(2));
  f.transfer->AddHolder("good:2", FakeHolder(data, 1000));
  const ObjectId id = ObjectId::FromRandom();
  auto from = f.manager->Fetch(id, {"dying:1", "good:2"});
  REQUIRE_OK(from);
  CHECK(*from == "dying:1");  // the first bytes came from it
  CHECK(f.store.Read(id) == data + "|");
  auto pulls = f.transfer->pulls();
  REQUIRE(pulls.size() == 2);
  CHECK(pulls[0].holder == "dying:1");
  CHECK(pulls[0].offset == 0);
  // Only what the dying holder had not sent is pulled again.
  CHECK(pulls[1].holder == "good:2");
  CHECK(pulls[1].offset == 2000);
  CHECK(pulls[1].length == 3000);
}

TEST_CASE("ObjectManager leaves no partial copy when every holder fails, and names each", "[raylet][object_manager]") {
  Fixture f;
  const std::string data = Bytes(5000, 'z');
  f.transfer->AddHolder("a:1", FakeHolder(data, 1000).FailAfter(3));     // sends 0..3000
  f.transfer->AddHolder("b:2", FakeHolder(data, 1000).TruncateAfter(1)); // sends 3000..4000
  f.transfer->AddHolder("c:3", FakeHolder(data, 1000).BadOffsetAt(0));   // lies about 4000
  const ObjectId id = ObjectId::FromRandom();
  auto from = f.manager->Fetch(id, {"a:1", "b:2", "c:3", "unknown:4"});
  REQUIRE(absl::IsUnavailable(from.status()));
  const std::string message(from.status().message());
  CHECK_THAT(message, Catch::Contains("a:1: holder went away"));
  CHECK_THAT(message, Catch::Contains("b:2: stream from b:2 ended after 1000 of 2000 bytes"));
  CHECK_THAT(message, Catch::Contains("c:3: bad chunk at offset 4001"));
  CHECK_THAT(message, Catch::Contains("unknown:4: no such holder"));
  CHECK_FALSE(f.store.Contains(id));
  CHECK(f.transfer->cancels() == 1);  // the liar was told to stop
  // A later fetch from a good holder still works: the aborted copies left nothing behind.
  f.transfer->AddHolder("good:5", FakeHolder(data, 1000));
  REQUIRE_OK(f.manager->Fetch(id, {"good:5"}));
  CHECK(f.store.Read(id) == data + "|");
}

TEST_CASE("ObjectManager pulls a large object's ranges in parallel from several holders", "[raylet][object_manager]") {
  Fixture f({.chunk_size = 300, .range_size = 1000, .streams_per_fetch = 3});
  const std::string data = Bytes(10'000, 'p'), metadata = "md!";
  f.transfer->AddHolder("a:1", FakeHolder(data, 300, metadata));
  f.transfer->AddHolder("b:2", FakeHolder(data, 300, metadata));
  const ObjectId id = ObjectId::FromRandom();
  REQUIRE_OK(f.manager->Fetch(id, {"a:1", "b:2"}));
  CHECK(f.store.Read(id) == data + "|" + metadata);
  auto pulls = f.transfer->pulls();
  // Eleven ranges of at most 1000 bytes (data and metadata are one range of 10,003 bytes).
  REQUIRE(pulls.size() == 11);
  std::set<uint64_t> offsets;
  std::set<std::string> holders;
  std::set<int> lanes;
  for (const auto& p : pulls) {
    offsets.insert(p.offset);
    holders.insert(p.holder);
    lanes.insert(p.lane);
    CHECK(p.length <= 1000);
  }
  CHECK(offsets.size() == 11);
  CHECK(*offsets.rbegin() == 10'000);
  CHECK(holders == std::set<std::string>{"a:1", "b:2"});
  // Lanes 0..2: the calling thread and two helpers (how many ranges each got is up to timing).
  CHECK(*lanes.begin() == 0);
  CHECK(*lanes.rbegin() <= 2);
}

TEST_CASE("ObjectManager re-pulls the ranges of a holder that fails during a parallel fetch",
          "[raylet][object_manager]") {
  Fixture f({.chunk_size = 200, .range_size = 1000, .streams_per_fetch = 4});
  const std::string data = Bytes(8000, 'r');
  f.transfer->AddHolder("flaky:1", FakeHolder(data, 200).FailAfter(2));
  f.transfer->AddHolder("good:2", FakeHolder(data, 200));
  const ObjectId id = ObjectId::FromRandom();
  REQUIRE_OK(f.manager->Fetch(id, {"flaky:1", "good:2"}));
  CHECK(f.store.Read(id) == data + "|");
}

TEST_CASE("ObjectManager refuses a fetch with no holder", "[raylet][object_manager]") {
  Fixture f;
  auto from = f.manager->Fetch(ObjectId::FromRandom(), {});
  CHECK(absl::IsInvalidArgument(from.status()));
}

TEST_CASE("ObjectManager fails a fetch that does not fit in the store, without a partial copy",
          "[raylet][object_manager]") {
  Fixture f;
  f.transfer->AddHolder("big:1", FakeHolder(std::string(64 * kMiB, 'x'), kMiB));
  const ObjectId id = ObjectId::FromRandom();
  auto from = f.manager->Fetch(id, {"big:1"});
  CHECK(absl::IsResourceExhausted(from.status()));  // the store's own error, not "try elsewhere"
  CHECK_FALSE(f.store.Contains(id));
}

TEST_CASE("ObjectManager runs at most max_concurrent_fetches at once", "[raylet][object_manager]") {
  Fixture f({.max_concurrent_fetches = 2});
  constexpr int kFetches = 6;
  std::vector<ObjectId> ids;
  for (int i = 0; i < kFetches; ++i) {
    ids.push_back(ObjectId::FromRandom());
  }
  f.transfer->AddHolder("h:1", FakeHolder(Bytes(3000, 'c'), 1000));
  f.transfer->CloseGate();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kFetches; ++i) {
    threads.emplace_back([&, i] {
      if (f.manager->Fetch(ids[i], {"h:1"}).ok()) ok++;
    });
  }
  // Wait until the limit is reached; the rest must queue behind it, not pull.
  while (f.transfer->waiting() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(f.transfer->pulls().size() == 2);
  f.transfer->OpenGate();
  for (auto& t : threads) t.join();
  CHECK(ok == kFetches);
  CHECK(f.transfer->max_waiting() == 2);
  CHECK(f.transfer->pulls().size() == kFetches);
  for (const auto& id : ids) CHECK(f.store.Read(id) == Bytes(3000, 'c') + "|");
}

TEST_CASE("Two object managers move an object over gRPC on loopback", "[raylet][object_manager][grpc]") {
  Store holder_store, fetcher_store;
  ObjectManager holder(*holder_store.client, MakeGrpcObjectTransferClient(), {.chunk_size = 4096});
  ObjectManager fetcher(*fetcher_store.client, MakeGrpcObjectTransferClient(),
                        {.chunk_size = 4096, .range_size = 10'000, .streams_per_fetch = 3});
  grpc::ServerBuilder builder;
  builder.RegisterService(&holder);
  int port = 0;
  auto server = StartServer(builder, "127.0.0.1", 0, &port);
  REQUIRE_OK(server);
  const std::string address = "127.0.0.1:" + std::to_string(port);

  const ObjectId id = ObjectId::FromRandom();
  const std::string data = Bytes(100'000, 'g');
  REQUIRE_OK(holder_store.client->Put(id, data.data(), data.size(), "md", 2));
  REQUIRE_OK(holder_store.client->Release(id));

  auto from = fetcher.Fetch(id, {address});
  REQUIRE_OK(from);
  CHECK(*from == address);
  CHECK(fetcher_store.Read(id) == data + "|md");

  // An object the holder does not have: NotFound from the holder, named in the error.
  auto missing = fetcher.Fetch(ObjectId::FromRandom(), {address});
  REQUIRE(absl::IsUnavailable(missing.status()));
  CHECK_THAT(std::string(missing.status().message()), Catch::Contains("is not here"));

  // A range: exactly its bytes, in chunks of the holder's size, each carrying the sizes.
  auto client = MakeGrpcObjectTransferClient();
  auto stream = client->Pull(address, id, 99'000, 2000, 0, absl::Seconds(30));
  ReceivedChunk chunk;
  std::string got;
  while (stream->Read(&chunk)) {
    CHECK(chunk.data_size == 100'000);
    CHECK(chunk.metadata_size == 2);
    CHECK(chunk.offset == 99'000 + got.size());
    for (auto piece : chunk.pieces) got.append(piece.data(), piece.size());
  }
  REQUIRE_OK(stream->Finish());
  CHECK(got == data.substr(99'000) + "md");
  // Past the end: OUT_OF_RANGE, and the holder keeps serving.
  auto past = client->Pull(address, id, 100'003, 0, 1, absl::Seconds(30));
  while (past->Read(&chunk)) {
  }
  CHECK(absl::IsOutOfRange(past->Finish()));
  (*server)->Shutdown();
}

// A holder serving pulls over a plain socket (and TransferPort over gRPC), and a fetcher whose
// socket client falls back to a fake that records what reached it.
struct SocketPair {
  SocketPair() : holder(*holder_store.client, MakeGrpcObjectTransferClient(), {}), sockets(*holder_store.client) {
    auto port = sockets.Start("127.0.0.1");
    REQUIRE_OK(port);
    socket_port = *port;
    holder.set_socket_port(socket_port);
    grpc::ServerBuilder builder;
    builder.RegisterService(&holder);
    int grpc_port = 0;
    auto started = StartServer(builder, "127.0.0.1", 0, &grpc_port);
    REQUIRE_OK(started);
    server = *std::move(started);
    address = "127.0.0.1:" + std::to_string(grpc_port);
    auto fake = std::make_unique<FakeObjectTransferClient>();
    fallback = fake.get();
    auto lookup = GrpcTransferPortLookup();
    client = MakeSocketObjectTransferClient(
        [this, lookup](const std::string& h) {
          ++lookups;
          return lookup(h);
        },
        std::move(fake));
  }
  ~SocketPair() {
    server->Shutdown();
    sockets.Stop();
  }
  ObjectId PutOnHolder(const std::string& data, const std::string& metadata = "") {
    const ObjectId id = ObjectId::FromRandom();
    REQUIRE_OK(holder_store.client->Put(id, data.data(), data.size(), metadata.data(), metadata.size()));
    REQUIRE_OK(holder_store.client->Release(id));
    return id;
  }
  // Reads a stream to its end the way the object manager does: a Read, then its payload.
  absl::Status ReadAll(ObjectChunkStream& stream, std::string* got, uint64_t first_offset) {
    ReceivedChunk chunk;
    while (stream.Read(&chunk)) {
      CHECK(chunk.offset == first_offset + got->size());
      std::string payload(chunk.size, '\0');
      if (!stream.ReadPayload(chunk, reinterpret_cast<uint8_t*>(payload.data()))) break;
      *got += payload;
    }
    return stream.Finish();
  }

  Store holder_store, fetcher_store;
  ObjectManager holder;
  ObjectSocketServer sockets;
  int socket_port = 0;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  FakeObjectTransferClient* fallback = nullptr;
  std::atomic<int> lookups{0};
  std::unique_ptr<ObjectTransferClient> client;
};

TEST_CASE("Object pulls over a plain socket deliver exact ranges, errors named, the port asked once",
          "[raylet][object_manager][socket]") {
  SocketPair p;
  std::string data(10 * kMiB + 123, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + i / 4099);
  const ObjectId id = p.PutOnHolder(data, "meta");
  const std::string whole = data + "meta";

  // The whole object, then ranges crossing chunk borders and the data/metadata border.
  for (auto [offset, length] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 0}, {1, 4 * kMiB + 7}, {data.size() - 5, 0}, {data.size() - 5, 7}, {whole.size(), 0}}) {
    auto stream = p.client->Pull(p.address, id, offset, length, 0, absl::Seconds(30));
    std::string got;
    REQUIRE_OK(p.ReadAll(*stream, &got, offset));
    CHECK(got == whole.substr(offset, length == 0 ? std::string::npos : length));
  }
  CHECK(p.lookups == 1);
  CHECK(p.fallback->pulls().empty());

  // Past the end: OUT_OF_RANGE; an object the holder lacks: NOT_FOUND; the server goes on.
  std::string got;
  auto past = p.client->Pull(p.address, id, whole.size() + 1, 0, 0, absl::Seconds(30));
  CHECK(absl::IsOutOfRange(p.ReadAll(*past, &got, whole.size() + 1)));
  auto missing = p.client->Pull(p.address, ObjectId::FromRandom(), 0, 0, 0, absl::Seconds(30));
  absl::Status s = p.ReadAll(*missing, &got, 0);
  CHECK(absl::IsNotFound(s));
  CHECK_THAT(std::string(s.message()), Catch::Contains("is not here"));

  // A fetch through an object manager: the copy is exact and sealed.
  ObjectManager fetcher(*p.fetcher_store.client, std::move(p.client), {.range_size = 3 * kMiB});
  auto from = fetcher.Fetch(id, {p.address});
  REQUIRE_OK(from);
  CHECK(p.fetcher_store.Read(id) == data + "|meta");
}

TEST_CASE("Object pulls over a plain socket check the cluster token first",
          "[raylet][object_manager][socket]") {
  SocketPair p;
  const ObjectId id = p.PutOnHolder("secret bytes");
  SetClusterToken("the-right-token-0123456789");
  // A puller with another token is refused before its request is looked at.
  auto fd = net::Connect("127.0.0.1", p.socket_port, absl::Seconds(5));
  REQUIRE_OK(fd);
  REQUIRE_OK(net::WriteFrame(*fd, "a-wrong-token-0123456789"));
  rpc::PullRequest request;
  request.set_object_id(id.Binary());
  (void)net::WriteFrame(*fd, request.SerializeAsString());
  auto frame = net::ReadFrame(*fd, 4096);
  REQUIRE_OK(frame);
  rpc::SocketPullStart start;
  REQUIRE(start.ParseFromString(*frame));
  CHECK(start.code() == static_cast<int>(absl::StatusCode::kUnauthenticated));
  CHECK(start.length() == 0);
  char byte;
  CHECK(::read(*fd, &byte, 1) <= 0);  // closed (or reset: the request was left unread), nothing sent
  ::close(*fd);
  // Connections that never send a token do not hold up pullers that do.
  std::vector<int> silent;
  for (int i = 0; i < 8; ++i) {
    auto idle = net::Connect("127.0.0.1", p.socket_port, absl::Seconds(5));
    REQUIRE_OK(idle);
    silent.push_back(*idle);
  }
  // The right token with a request that is not one: refused by name, and the server goes on.
  {
    auto garbled = net::Connect("127.0.0.1", p.socket_port, absl::Seconds(5));
    REQUIRE_OK(garbled);
    REQUIRE_OK(net::WriteFrame(*garbled, "the-right-token-0123456789"));
    REQUIRE_OK(net::WriteFrame(*garbled, "\xff\xff not a PullRequest"));
    auto answer = net::ReadFrame(*garbled, 4096);
    REQUIRE_OK(answer);
    rpc::SocketPullStart refused;
    REQUIRE(refused.ParseFromString(*answer));
    CHECK(refused.code() == static_cast<int>(absl::StatusCode::kInvalidArgument));
    CHECK_THAT(refused.message(), Catch::Contains("not a PullRequest"));
    ::close(*garbled);
  }
  // The right token (this process's, as pullers send it) is served.
  auto stream = p.client->Pull(p.address, id, 0, 0, 0, absl::Seconds(30));
  std::string got;
  CHECK(p.ReadAll(*stream, &got, 0).ok());
  SetClusterToken("");
  CHECK(got == "secret bytes");
  for (int fd : silent) ::close(fd);
}

TEST_CASE("Object pulls fall back to gRPC where the holder serves no sockets, and fail when it stops",
          "[raylet][object_manager][socket]") {
  SocketPair p;
  const ObjectId id = p.PutOnHolder(std::string(2 * kMiB, 'x'));
  // A pull in progress when the server stops fails; the object stays pinned no longer.
  auto stream = p.client->Pull(p.address, id, 0, 0, 0, absl::Seconds(30));
  ReceivedChunk chunk;
  REQUIRE(stream->Read(&chunk));
  p.sockets.Stop();
  std::string sink(chunk.size, '\0');
  bool ok = stream->ReadPayload(chunk, reinterpret_cast<uint8_t*>(sink.data()));
  while (ok && stream->Read(&chunk)) {
    sink.resize(chunk.size);
    ok = stream->ReadPayload(chunk, reinterpret_cast<uint8_t*>(sink.data()));
  }
  // Either the bytes were already in the kernel's buffers (all arrived) or the pull failed.
  absl::Status finished = stream->Finish();
  CHECK((finished.ok() || absl::IsUnavailable(finished)));
  // Stop waited for the serving thread, which released the object: a delete frees it at once.
  REQUIRE_OK(p.holder_store.client->Delete(id));
  auto stats = p.holder_store.client->Stats();
  REQUIRE_OK(stats);
  CHECK(stats->num_objects == 0);
  // The port no longer answers: the next pull fails to connect and forgets the port ...
  auto refused = p.client->Pull(p.address, id, 0, 0, 0, absl::Seconds(30));
  std::string got;
  CHECK(absl::IsUnavailable(p.ReadAll(*refused, &got, 0)));
  // ... and asks again: the holder now says 0 (no sockets), so pulls go to the fallback.
  p.holder.set_socket_port(0);
  p.fallback->AddHolder(p.address, FakeHolder("fallback bytes", 4));
  auto fallen = p.client->Pull(p.address, id, 0, 0, 0, absl::Seconds(30));
  got.clear();
  REQUIRE_OK(p.ReadAll(*fallen, &got, 0));
  CHECK(got == "fallback bytes");
  CHECK(p.lookups == 2);
  CHECK(p.fallback->pulls().size() == 1);
}

}  // namespace
}  // namespace shoal
