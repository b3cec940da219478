// Counts and times the gRPC calls a process serves, by method and status code: every server
// made with StartServer (src/common/rpc.h) records into the process-wide RpcMetrics through a
// server interceptor. The GCS answers its figures with GetRpcStats and raylets with
// GetNodeStats; the dashboard exports them as Prometheus counters and histograms.
// Threading: thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "shoal/common.pb.h"

namespace shoal {

class RpcMetrics {
 public:
  // Upper bounds (seconds) of the latency histogram's buckets; one more bucket is +Inf.
  static constexpr std::array<double, 10> kBounds = {0.0001, 0.0005, 0.001, 0.005, 0.01,
                                                     0.05,   0.1,    0.5,   1,     10};

  static RpcMetrics& Global();

  // `method` is gRPC's full name, e.g. "/shoal.rpc.KVService/Get".
  void Record(const std::string& method, int code, double seconds);
  // Every method and code seen so far, with cumulative counts.
  void ToProto(rpc::RpcStats* out) const;

 private:
  struct Entry {
    uint64_t count = 0;
    double sum_seconds = 0;
    std::array<uint64_t, kBounds.size() + 1> buckets{};  // not cumulative
  };
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, int>, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

// What StartServer installs: an interceptor per call that records it into RpcMetrics::Global().
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptorFactory();

}  // namespace shoal
