#include "src/common/rpc.h"

#include <vector>

#include "grpc/grpc.h"
#include "grpcpp/generic/generic_stub.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/auth.h"
#include "src/common/rpc_metrics.h"
#include "src/common/tls.h"

namespace shoal {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::pair<std::string, int>> ParseHostPort(std::string_view address_view) {
  const std::string address(address_view);
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("address must be HOST:PORT, got '", address, "'"));
  }
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in address '", address, "'"));
  }
  return std::make_pair(address.substr(0, colon), port);
}

namespace {
constexpr int kKeepaliveTimeMs = 5000;
constexpr int kKeepaliveTimeoutMs = 5000;

// gRPC runs the callback API of this build (no background poller) on one process-wide completion
// queue with its own threads ("nexting_thread"). It creates that queue with the first channel or
// server that uses it and destroys it, joining those threads, when the last one goes. When the last
// one goes inside a callback (a reply's continuation drops the last reference to its channel),
// the thread doing the join is one of the threads it joins, and the queue is freed under it: heap
// corruption at a driver's shutdown ("corrupted size vs. prev_size" in grpc_cq_internal_unref on
// a nexting_thread). One channel that is never destroyed, which has made one callback call, holds
// the queue for the life of the process.
void PinCallbackQueue() {
  static const bool kPinned = [] {
    KeepGrpcInitialized();
    struct Pin {
      std::shared_ptr<grpc::Channel> channel =
          grpc::CreateChannel("unix:/nonexistent/shoal-pin", grpc::InsecureChannelCredentials());
      grpc::GenericStub stub{channel};
      grpc::ClientContext context;
      grpc::Slice empty{std::string()};
      grpc::ByteBuffer request{&empty, 1};  // a default ByteBuffer has no buffer: gRPC refuses it
      grpc::ByteBuffer reply;
    };
    Pin* pin = new Pin;  // never freed: see above
    pin->context.set_deadline(std::chrono::system_clock::now());  // fails at once; only the queue matters
    pin->stub.UnaryCall(&pin->context, "/shoal.Pin/Pin", grpc::StubOptions(), &pin->request, &pin->reply,
                        [](grpc::Status) {});
    return true;
  }();
  (void)kPinned;
}
}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const std::vector<std::pair<std::string, int>>& int_args) {
  PinCallbackQueue();
  grpc::ChannelArguments args;
  for (const auto& [key, value] : int_args) args.SetInt(key, value);
  // Reconnect quickly (a restarted GCS or raylet is found within a second), but give each
  // connection attempt a long deadline: gRPC's core uses the "min reconnect backoff" as the
  // minimum time a connection handshake may take, and a loaded machine can need seconds
  // (at 100 ms, busy workers looked unreachable: "timed out before receiving SETTINGS frame").
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);  // object chunks are a few MiB
  args.SetMaxSendMessageSize(64 << 20);
  // While calls are in flight, ping the peer: a peer cut off by the network (no RST, no FIN)
  // fails those calls within kKeepaliveTimeMs + kKeepaliveTimeoutMs, so that a task pushed to a
  // partitioned node is retried elsewhere instead of waiting forever.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // a long call may be pinged for hours
  // Connections between Shoal's processes go straight to the peer, whatever $http_proxy says (as
  // Ray's, whose grpc_enable_http_proxy is off by default); and so making a channel reads no
  // proxy variables from the environment, which a task may be changing (environment.h).
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  return grpc::CreateCustomChannel(address, ClientCredentials(), args);  // mutual TLS when configured (tls.h)
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const std::string& host, int port,
                                                          int* bound_port) {
  PinCallbackQueue();
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Accept the clients' keepalive pings (MakeChannel) however long a call runs.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, kKeepaliveTimeMs / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeRpcMetricsInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.AddListeningPort(absl::StrCat(host, ":", port), ServerCredentials(), bound_port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *bound_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, " (is the port already in use?)"));
  }
  return server;
}

void KeepGrpcInitialized() {
  static const bool kInitialized = [] {
    grpc_init();  // never matched by grpc_shutdown: the process's exit ends the library
    return true;
  }();
  (void)kInitialized;
}

}  // namespace shoal
