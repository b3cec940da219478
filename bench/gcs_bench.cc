// GCS round-trip benchmark: KV Put/Get and GetClusterStatus over gRPC from one client,
// against an in-process GCS with memory storage or, with --redis-address, Redis storage.
// Prints a table and, with --json FILE, writes the figures as JSON. Not a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "shoal/gcs.grpc.pb.h"
#include "src/common/flags.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/common/system.h"
#include "src/gcs/gcs_server.h"

namespace shoal {
namespace {

struct Result {
  std::string name;
  int64_t ops;
  double ops_per_s, p50_us, p99_us;
};

template <typename Fn>
Result Measure(const std::string& name, int64_t n, Fn&& call) {
  std::vector<double> lat;
  lat.reserve(n);
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    call(i);
    lat.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::sort(lat.begin(), lat.end());
  return {name, n, n / secs, lat[n / 2], lat[std::min<int64_t>(n - 1, n * 99 / 100)]};
}

int Main(int argc, char** argv) {
  int64_t n = 20000;
  std::string redis_address, json_path;
  FlagSet flags("shoal-bench-gcs");
  flags.AddInt("n", &n, "calls per measurement");
  flags.AddString("redis-address", &redis_address, "HOST:PORT of Redis (default: memory storage)");
  flags.AddString("json", &json_path, "write the figures here as JSON");
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s\n%s", std::string(s.message()).c_str(), flags.Usage().c_str());
    return 2;
  }
  std::unique_ptr<StoreClient> store;
  if (redis_address.empty()) {
    store = std::make_unique<InMemoryStoreClient>();
  } else {
    auto hp = ParseHostPort(redis_address);
    RedisOptions options;
    if (hp.ok()) {
      options.host = hp->first;
      options.port = hp->second;
      options.key_prefix = "shoal-bench";
    }
    auto redis = hp.ok() ? RedisStoreClient::Connect(options)
                         : absl::StatusOr<std::unique_ptr<RedisStoreClient>>(hp.status());
    if (!redis.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(redis.status().message()).c_str());
      return 1;
    }
    store = *std::move(redis);
  }
  const std::string storage = store->Name();
  GcsOptions options;
  options.port = 0;
  GcsServer gcs(std::move(store), options);
  if (auto s = gcs.Start(); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto channel = MakeChannel(absl::StrCat("127.0.0.1:", gcs.port()));
  auto kv = rpc::KVService::NewStub(channel);
  auto status = rpc::ClusterStatusService::NewStub(channel);
  const std::string value(100, 'v');

  std::vector<Result> results;
  results.push_back(Measure("kv_put", n, [&](int64_t i) {
    grpc::ClientContext ctx;
    AddClusterToken(ctx);
    rpc::KVPutRequest req;
    req.set_ns("bench");
    req.set_key(absl::StrCat("key", i));
    req.set_value(value);
    req.set_overwrite(true);
    rpc::KVPutReply reply;
    if (!kv->Put(&ctx, req, &reply).ok()) std::abort();
  }));
  results.push_back(Measure("kv_get", n, [&](int64_t i) {
    grpc::ClientContext ctx;
    AddClusterToken(ctx);
    rpc::KVGetRequest req;
    req.set_ns("bench");
    req.set_key(absl::StrCat("key", i));
    rpc::KVGetReply reply;
    if (!kv->Get(&ctx, req, &reply).ok() || !reply.found()) std::abort();
  }));
  results.push_back(Measure("cluster_status", n / 10, [&](int64_t) {
    grpc::ClientContext ctx;
    AddClusterToken(ctx);
    rpc::GetClusterStatusReply reply;
    if (!status->GetClusterStatus(&ctx, rpc::GetClusterStatusRequest(), &reply).ok()) std::abort();
  }));
  {  // clean up what the benchmark wrote
    grpc::ClientContext ctx;
    AddClusterToken(ctx);
    rpc::KVDelRequest req;
    req.set_ns("bench");
    req.set_key("key");
    req.set_by_prefix(true);
    rpc::KVDelReply reply;
    (void)kv->Del(&ctx, req, &reply);
  }
  gcs.Stop();

  std::printf("GCS round trips, one synchronous client, %s storage, %ld CPUs\n", storage.c_str(),
              static_cast<long>(DetectCpuCount()));
  std::printf("%-16s %10s %12s %10s %10s\n", "op", "calls", "ops/s", "p50 us", "p99 us");
  nlohmann::json out = {{"storage", storage}, {"cpus", DetectCpuCount()}, {"results", nlohmann::json::array()}};
  for (const auto& r : results) {
    std::printf("%-16s %10ld %12.0f %10.1f %10.1f\n", r.name.c_str(), static_cast<long>(r.ops), r.ops_per_s,
                r.p50_us, r.p99_us);
    out["results"].push_back({{"op", r.name}, {"calls", r.ops}, {"ops_per_s", r.ops_per_s},
                              {"p50_us", r.p50_us}, {"p99_us", r.p99_us}});
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
