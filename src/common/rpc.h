// The gRPC edge: status conversion, channels and servers with Shoal's settings.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace shoal {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Splits "host:port". InvalidArgument for a missing host, or a port outside 1..65535.
absl::StatusOr<std::pair<std::string, int>> ParseHostPort(std::string_view address);

// A channel to `address` ("host:port"), mutual TLS when configured (tls.h); its calls carry the
// cluster token (auth.h). `int_args` are added to the channel's arguments.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const std::vector<std::pair<std::string, int>>& int_args = {});

// Starts `builder`'s services listening on host:port (port 0 picks a free one). Port reuse is
// off, so a port that is taken fails instead of being shared. Mutual TLS when configured
// (tls.h). Answers the bound port.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const std::string& host, int port,
                                                          int* bound_port);

// Keeps the gRPC library initialized until the process ends. gRPC tears itself down when its
// last object goes and starts again with the next one; a process that connects, disconnects
// and connects again (a driver calling init and shutdown in turn) would otherwise race that
// teardown, which can still be finishing on gRPC's own threads. Idempotent and thread-safe.
void KeepGrpcInitialized();

}  // namespace shoal
