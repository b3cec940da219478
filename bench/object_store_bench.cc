// Object store benchmark: an in-process StoreServer and one ObjectStoreClient over its Unix
// socket, next to a plain memcpy measured in the same run. Prints a table and, with --json FILE,
// writes the figures as JSON. Not a test.
//
// What is measured (GB = 1e9 bytes; each figure is the median of many timed iterations):
//   small put      Put of a 64-byte object: Create + memcpy + Seal (two round trips)
//   small get      Get of one sealed object, zero timeout: answers a pointer (one round trip)
//   small release  Release of one reference (one round trip)
//   put GB/s       size / time of ObjectStoreClient::Put from a pre-faulted buffer: Create +
//                  copy (several threads from 16 MiB up) + Seal
//   put 1T GB/s    the same with a plain single-threaded memcpy: Create + memcpy + Seal
//   get GB/s       size / time of Get + memcpy of the view into a pre-faulted buffer + Release
//   get ptr us     time of Get + Release alone: the pointer, no bytes touched
//   memcpy GB/s    size / time of memcpy between two pre-faulted buffers
// Puts are warmed up once per size and each object is deleted after its iteration, so the
// allocator hands out the same, already faulted, region again (as a long-running store does).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "src/common/flags.h"
#include "src/common/system.h"
#include "src/object_store/client.h"
#include "src/object_store/store_server.h"

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// "1K", "64M", "2G" (binary units) or plain bytes.
absl::StatusOr<uint64_t> ParseSize(std::string text) {
  uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
      case 'k':
        unit = 1ull << 10;
        break;
      case 'M':
      case 'm':
        unit = 1ull << 20;
        break;
      case 'G':
      case 'g':
        unit = 1ull << 30;
        break;
    }
    if (unit != 1) text.pop_back();
  }
  uint64_t n;
  if (!absl::SimpleAtoi(text, &n) || n == 0) return absl::InvalidArgumentError("bad size '" + text + "'");
  return n * unit;
}

std::string SizeName(uint64_t n) {
  if (n % (1ull << 30) == 0) return absl::StrCat(n >> 30, " GiB");
  if (n % (1ull << 20) == 0) return absl::StrCat(n >> 20, " MiB");
  if (n % (1ull << 10) == 0) return absl::StrCat(n >> 10, " KiB");
  return absl::StrCat(n, " B");
}

void Check(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "error: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}
template <typename T>
T Check(absl::StatusOr<T> s, const char* what) {
  Check(s.status(), what);
  return *std::move(s);
}

// A buffer with every page faulted in.
std::unique_ptr<uint8_t[]> Prefaulted(uint64_t n, uint8_t fill) {
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(n);
  std::memset(buf.get(), fill, n);
  return buf;
}

struct SmallResult {
  std::string op;
  int64_t calls;
  double calls_per_s, p50_us, p99_us;
};

SmallResult Summarize(const std::string& op, const std::vector<double>& us) {
  return {op, static_cast<int64_t>(us.size()), 1e6 / Median(us), Median(us), Percentile(us, 0.99)};
}

struct SizeResult {
  uint64_t size;
  int64_t iterations;
  double put_gbps, put_1thread_gbps, get_gbps, memcpy_gbps, get_pointer_us;
};

// Times `op` once per iteration, in microseconds.
template <typename Fn>
std::vector<double> Time(int64_t iterations, Fn&& op) {
  std::vector<double> us;
  us.reserve(iterations);
  for (int64_t i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    op(i);
    us.push_back(Seconds(Clock::now() - t0) * 1e6);
  }
  return us;
}

std::vector<SmallResult> BenchSmall(ObjectStoreClient& client, int64_t n) {
  constexpr uint64_t kSmall = 64;
  std::vector<ObjectId> ids(n);
  for (ObjectId& id : ids) id = ObjectId::FromRandom();
  const auto src = Prefaulted(kSmall, 0x5a);
  for (int64_t i = 0; i < std::min<int64_t>(n, 1000); ++i) {  // warm up: connection, allocator, caches
    const ObjectId id = ObjectId::FromRandom();
    Check(client.Put(id, src.get(), kSmall), "warm-up put");
    Check(client.Release(id), "warm-up release");
    Check(client.Delete(id), "warm-up delete");
  }
  std::vector<SmallResult> results;
  results.push_back(Summarize("put", Time(n, [&](int64_t i) { Check(client.Put(ids[i], src.get(), kSmall), "put"); })));
  for (const ObjectId& id : ids) Check(client.Release(id), "release");
  results.push_back(Summarize("get", Time(n, [&](int64_t i) {
                                auto views = Check(client.Get({ids[i]}, absl::ZeroDuration()), "get");
                                Check(views[0].status(), "get entry");
                              })));
  results.push_back(Summarize("release", Time(n, [&](int64_t i) { Check(client.Release(ids[i]), "release"); })));
  for (const ObjectId& id : ids) Check(client.Delete(id), "delete");
  return results;
}

SizeResult BenchSize(ObjectStoreClient& client, uint64_t size, uint64_t target_bytes) {
  const int64_t iterations = std::clamp<int64_t>(static_cast<int64_t>(target_bytes / size), 5, 20000);
  const auto src = Prefaulted(size, 0x5a);
  const auto dst = Prefaulted(size, 0xa5);

  // Puts: after one warm-up put, every iteration lands on the same, already faulted, region.
  auto put = [&](const ObjectId& id) { Check(client.Put(id, src.get(), size), "put"); };
  auto put_1thread = [&](const ObjectId& id) {
    MutableObject object = Check(client.Create(id, size, 0), "create");
    std::memcpy(object.data, src.get(), size);
    Check(client.Seal(id), "seal");
  };
  auto time_puts = [&](auto&& put_one) {
    std::vector<double> us;
    us.reserve(iterations);
    for (int64_t i = -1; i < iterations; ++i) {  // -1: warm-up
      const ObjectId id = ObjectId::FromRandom();
      const auto t0 = Clock::now();
      put_one(id);
      if (i >= 0) us.push_back(Seconds(Clock::now() - t0) * 1e6);
      Check(client.Release(id), "release");
      Check(client.Delete(id), "delete");
    }
    return us;
  };
  const std::vector<double> put_us = time_puts(put);
  const std::vector<double> put_1thread_us = time_puts(put_1thread);

  // Get: one sealed object, read over and over.
  const ObjectId id = ObjectId::FromRandom();
  put(id);
  Check(client.Release(id), "release");
  auto get = [&](bool copy) {
    auto views = Check(client.Get({id}, absl::ZeroDuration()), "get");
    const ObjectView view = Check(std::move(views[0]), "get entry");
    if (copy) std::memcpy(dst.get(), view.data, size);
    Check(client.Release(id), "release");
  };
  get(true);  // warm up
  const std::vector<double> get_us = Time(iterations, [&](int64_t) { get(true); });
  const std::vector<double> pointer_us = Time(std::min<int64_t>(iterations, 2000), [&](int64_t) { get(false); });
  Check(client.Delete(id), "delete");

  // memcpy between pre-faulted buffers; small sizes in batches so the clock does not dominate.
  const int64_t batch = std::max<int64_t>(1, static_cast<int64_t>((256 << 10) / size));
  std::memcpy(dst.get(), src.get(), size);
  std::vector<double> memcpy_us = Time(iterations, [&](int64_t) {
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(dst.get(), src.get(), size);
      asm volatile("" : : "r"(dst.get()) : "memory");  // keep every copy
    }
  });
  for (double& us : memcpy_us) us /= batch;

  auto gbps = [size](double us) { return size / (us * 1e3); };
  return {size,
          iterations,
          gbps(Median(put_us)),
          gbps(Median(put_1thread_us)),
          gbps(Median(get_us)),
          gbps(Median(memcpy_us)),
          Median(pointer_us)};
}

int Main(int argc, char** argv) {
  int64_t capacity = 2ll << 30, small_n = 20000, target_mib = 8192;
  bool prefault = false;
  std::string sizes_text = "1K,1M,64M,800M", json_path;
  FlagSet flags("shoal-bench-object-store");
  flags.AddInt("capacity", &capacity, "arena bytes");
  flags.AddBool("prefault", &prefault, "fault the whole arena in at start");
  flags.AddString("sizes", &sizes_text, "object sizes, comma separated (K, M, G: binary units)");
  flags.AddInt("small-n", &small_n, "calls per small-op measurement");
  flags.AddInt("target-mib", &target_mib, "bytes to move per size measurement (5 to 20000 iterations)");
  flags.AddString("json", &json_path, "write the figures here as JSON");
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s\n%s", std::string(s.message()).c_str(), flags.Usage().c_str());
    return absl::IsCancelled(s) ? 0 : 2;
  }
  std::vector<uint64_t> sizes;
  for (absl::string_view part : absl::StrSplit(sizes_text, ',', absl::SkipEmpty())) {
    sizes.push_back(Check(ParseSize(std::string(part)), "--sizes"));
  }
  if (capacity <= 0 || small_n <= 0 || target_mib <= 0) {
    std::fprintf(stderr, "--capacity, --small-n and --target-mib must be positive\n");
    return 2;
  }

  spdlog::set_level(spdlog::level::warn);
  const std::string dir =
      absl::StrCat(std::filesystem::temp_directory_path().string(), "/shoal-bench-object-store-", getpid());
  StoreServerOptions options;
  options.socket_path = dir + "/store.sock";
  options.capacity = static_cast<uint64_t>(capacity);
  options.prefault = prefault;
  StoreServer server(options);
  const auto start = Clock::now();
  Check(server.Start(), "starting the store");
  const double start_s = Seconds(Clock::now() - start);
  auto client = Check(ObjectStoreClient::Connect(server.socket_path()), "connecting");

  const std::vector<SmallResult> small = BenchSmall(*client, small_n);
  std::vector<SizeResult> large;
  for (uint64_t size : sizes) {
    if (size > static_cast<uint64_t>(capacity)) {
      std::fprintf(stderr, "skipping %s: larger than the store\n", SizeName(size).c_str());
      continue;
    }
    large.push_back(BenchSize(*client, size, static_cast<uint64_t>(target_mib) << 20));
  }
  client.reset();
  server.Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  std::printf(
      "Object store: one client, in-process server over a Unix socket; %s arena%s (started in %.2f s); "
      "%ld CPUs\n\n",
      SizeName(capacity).c_str(), prefault ? ", prefaulted" : "", start_s, static_cast<long>(DetectCpuCount()));
  std::printf("%-22s %10s %12s %10s %10s\n", "small op (64 B)", "calls", "calls/s", "p50 us", "p99 us");
  nlohmann::json out = {
      {"cpus", DetectCpuCount()}, {"memory_bytes", DetectMemoryBytes()}, {"capacity", capacity},
      {"prefault", prefault},     {"small", nlohmann::json::array()},    {"sizes", nlohmann::json::array()}};
  for (const SmallResult& r : small) {
    std::printf("%-22s %10ld %12.0f %10.2f %10.2f\n", r.op.c_str(), static_cast<long>(r.calls), r.calls_per_s, r.p50_us,
                r.p99_us);
    out["small"].push_back(
        {{"op", r.op}, {"calls", r.calls}, {"calls_per_s", r.calls_per_s}, {"p50_us", r.p50_us}, {"p99_us", r.p99_us}});
  }
  std::printf("\n%-8s %6s %9s %11s %9s %12s %8s %8s %8s %11s\n", "size", "iters", "put GB/s", "put 1T GB/s", "get GB/s",
              "memcpy GB/s", "put/mc", "put1T/mc", "get/mc", "get ptr us");
  for (const SizeResult& r : large) {
    std::printf("%-8s %6ld %9.2f %11.2f %9.2f %12.2f %7.0f%% %7.0f%% %7.0f%% %11.2f\n", SizeName(r.size).c_str(),
                static_cast<long>(r.iterations), r.put_gbps, r.put_1thread_gbps, r.get_gbps, r.memcpy_gbps,
                100 * r.put_gbps / r.memcpy_gbps, 100 * r.put_1thread_gbps / r.memcpy_gbps,
                100 * r.get_gbps / r.memcpy_gbps, r.get_pointer_us);
    out["sizes"].push_back({{"size", r.size},
                            {"iterations", r.iterations},
                            {"put_gbps", r.put_gbps},
                            {"put_1thread_gbps", r.put_1thread_gbps},
                            {"put_1thread_over_memcpy", r.put_1thread_gbps / r.memcpy_gbps},
                            {"get_gbps", r.get_gbps},
                            {"memcpy_gbps", r.memcpy_gbps},
                            {"put_over_memcpy", r.put_gbps / r.memcpy_gbps},
                            {"get_over_memcpy", r.get_gbps / r.memcpy_gbps},
                            {"get_pointer_us", r.get_pointer_us}});
  }
  if (!json_path.empty()) {
    std::ofstream(json_path) << out.dump(2) << "\n";
    std::printf("\nwrote %s\n", json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
