#include "src/common/rpc_metrics.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace shoal {
namespace {

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(grpc::experimental::ServerRpcInfo* info)
      : method_(info->method() != nullptr ? info->method() : ""), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      RpcMetrics::Global().Record(method_, static_cast<int>(methods->GetSendStatus().error_code()),
                                  absl::ToDoubleSeconds(absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  const absl::Time start_;
};

class MetricsInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info);
  }
};

}  // namespace

RpcMetrics& RpcMetrics::Global() {
  static RpcMetrics* metrics = new RpcMetrics;  // never destroyed: servers may outlive statics
  return *metrics;
}

void RpcMetrics::Record(const std::string& method, int code, double seconds) {
  const size_t bucket = std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin();
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[{method, code}];
  ++e.count;
  e.sum_seconds += seconds;
  ++e.buckets[bucket];
}

void RpcMetrics::ToProto(rpc::RpcStats* out) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, e] : entries_) {
    rpc::RpcMethodStats* m = out->add_methods();
    m->set_method(key.first);
    m->set_code(key.second);
    m->set_count(e.count);
    m->set_sum_seconds(e.sum_seconds);
    for (uint64_t b : e.buckets) m->add_buckets(b);
  }
  for (double bound : kBounds) out->add_bounds(bound);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>();
}

}  // namespace shoal
