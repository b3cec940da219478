// shoal-store-tool: drives a node's object store and object manager from the command line, so
// that integration tests can put, get, hold and fetch objects from separate processes.
//
//   put    --socket S --id HEX --size N [--metadata-size M] [--seed K] [--hold]
//   get    --socket S --id HEX [--timeout-ms T]
//   delete --socket S --id HEX
//   contains --socket S --id HEX
//   stats  --socket S
//   fetch  --raylet HOST:PORT --id HEX --from HOST:PORT[,HOST:PORT...]
//
// Object bytes are a pseudo-random stream from the seed, so any process can check them. Every
// command prints one JSON line; errors print {"error": ...} and exit 1. With --hold, put keeps
// its reference until stdin closes or the process is killed.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <string>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/flags.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/object_store/client.h"

namespace shoal {
namespace {

void Fill(uint8_t* out, uint64_t size, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  uint64_t i = 0;
  for (; i + 8 <= size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out + i, &x, 8);
  }
  for (; i < size; ++i) out[i] = static_cast<uint8_t>(i * 31 + seed);
}

std::string Checksum(const uint8_t* p, uint64_t size) {
  uint64_t h = 1469598103934665603ull;
  uint64_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
    h ^= h >> 29;
  }
  for (; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

int Fail(const std::string& msg) {
  std::printf("%s\n", nlohmann::json({{"error", msg}}).dump().c_str());
  return 1;
}

int Main(int argc, char** argv) {
  // Calls to raylets carry the cluster's token when one is given ($SHOAL_AUTH_TOKEN).
  if (const char* token = std::getenv(kAuthTokenEnv); token != nullptr) SetClusterToken(token);
  if (argc < 2) return Fail("usage: shoal-store-tool put|get|delete|contains|stats|fetch [flags]");
  const std::string cmd = argv[1];
  std::string socket, id_hex, raylet, from;
  int64_t size = 0, metadata_size = 0, seed = 1, timeout_ms = 0;
  bool hold = false;
  FlagSet flags("shoal-store-tool");
  flags.AddString("socket", &socket, "object store socket");
  flags.AddString("id", &id_hex, "object id (56 hex digits)");
  flags.AddString("raylet", &raylet, "raylet to ask for a fetch");
  flags.AddString("from", &from, "holders, comma separated");
  flags.AddInt("size", &size, "data bytes");
  flags.AddInt("metadata-size", &metadata_size, "metadata bytes");
  flags.AddInt("seed", &seed, "seed of the object's bytes");
  flags.AddInt("timeout-ms", &timeout_ms, "how long get waits");
  flags.AddBool("hold", &hold, "keep the reference until stdin closes");
  if (auto s = flags.Parse(argc, argv, 2); !s.ok()) return Fail(std::string(s.message()));
  ObjectId id;
  if (cmd != "stats") {
    auto parsed = ObjectId::FromHex(id_hex);
    if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
    id = *parsed;
  }

  if (cmd == "fetch") {
    auto stub = rpc::ObjectManagerService::NewStub(MakeChannel(raylet));
    grpc::ClientContext ctx;
    AddClusterToken(ctx);
    rpc::FetchRequest req;
    req.set_object_id(id.Binary());
    for (auto h : absl::StrSplit(from, ',', absl::SkipEmpty())) req.add_holders(std::string(h));
    rpc::FetchReply reply;
    const absl::Time start = absl::Now();
    grpc::Status s = stub->Fetch(&ctx, req, &reply);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (!s.ok()) return Fail(s.error_message());
    std::printf("%s\n", nlohmann::json({{"fetched_from", reply.fetched_from()}, {"seconds", seconds}}).dump().c_str());
    return 0;
  }

  auto client = ObjectStoreClient::Connect(socket);
  if (!client.ok()) return Fail(std::string(client.status().message()));
  auto& store = **client;
  nlohmann::json out;
  if (cmd == "put") {
    auto obj = store.Create(id, size, metadata_size);
    if (!obj.ok()) return Fail(std::string(obj.status().message()));
    Fill(obj->data, size + metadata_size, seed);
    if (auto s = store.Seal(id); !s.ok()) return Fail(std::string(s.message()));
    out = {{"checksum", Checksum(obj->data, size + metadata_size)}};
    if (hold) {
      std::printf("%s\n", out.dump().c_str());
      std::fflush(stdout);
      char c;
      while (read(0, &c, 1) > 0) {
      }
      return 0;
    }
    (void)store.Release(id);
  } else if (cmd == "get") {
    auto views = store.Get({id}, absl::Milliseconds(timeout_ms));
    if (!views.ok()) return Fail(std::string(views.status().message()));
    if (!(*views)[0].ok()) return Fail(std::string((*views)[0].status().message()));
    const ObjectView& v = *(*views)[0];
    const uint8_t* base = store.arena_base();
    bool shared = v.data >= base && v.data + v.data_size + v.metadata_size <= base + store.arena_size();
    out = {{"checksum", Checksum(v.data, v.data_size + v.metadata_size)},
           {"data_size", v.data_size}, {"metadata_size", v.metadata_size}, {"in_shared_memory", shared}};
    (void)store.Release(id);
  } else if (cmd == "delete") {
    if (auto s = store.Delete(id); !s.ok()) return Fail(std::string(s.message()));
    out = {{"deleted", true}};
  } else if (cmd == "contains") {
    auto c = store.Contains(id);
    if (!c.ok()) return Fail(std::string(c.status().message()));
    out = {{"contains", *c}};
  } else if (cmd == "stats") {
    auto st = store.Stats();
    if (!st.ok()) return Fail(std::string(st.status().message()));
    out = {{"capacity", st->capacity}, {"bytes_used", st->bytes_used}, {"num_objects", st->num_objects},
           {"bytes_spilled", st->bytes_spilled}, {"num_spilled", st->num_spilled},
           {"num_evicted", st->num_evicted}, {"num_restored", st->num_restored}};
  } else {
    return Fail("unknown command " + cmd);
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
