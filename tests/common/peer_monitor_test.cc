// PeerMonitor (src/common/peer_monitor.h) against a live server in this process and a port
// nothing listens on.
#include "src/common/peer_monitor.h"

#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shoal/worker.grpc.pb.h"
#include "src/common/rpc.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

struct LiveServer {
  LiveServer() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    auto started = StartServer(builder, "127.0.0.1", 0, &port);
    REQUIRE_OK(started);
    server = *std::move(started);
  }
  ~LiveServer() { Stop(); }
  void Stop() {
    if (server) server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    server.reset();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }

  rpc::CoreWorkerService::CallbackService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

// Checks `peers` every 50 ms of real time for `span` (or until one is found dead, with
// `until_found`); answers those found dead.
std::set<std::string> CheckUntil(PeerMonitor& monitor, const std::set<std::string>& peers, absl::Duration span,
                                 bool until_found = false) {
  std::set<std::string> dead;
  const absl::Time end = absl::Now() + span;
  while (absl::Now() < end && !(until_found && !dead.empty())) {
    for (const std::string& d : monitor.Check(peers, absl::Now())) dead.insert(d);
    absl::SleepFor(absl::Milliseconds(50));
  }
  return dead;
}

TEST_CASE("a live peer is never dead, one that stops listening is, after the timeout") {
  LiveServer live;
  std::string closed;
  {
    LiveServer gone;
    closed = gone.address();
  }
  PeerMonitor monitor(absl::Milliseconds(400));
  const std::set<std::string> peers = {live.address(), closed};
  // Not before the timeout, even though the closed port refuses at once.
  CHECK(monitor.Check(peers, absl::Now()).empty());
  const std::set<std::string> dead = CheckUntil(monitor, peers, absl::Seconds(2));
  CHECK(dead == std::set<std::string>{closed});
  // Answered once: the dead peer is forgotten, the live one still watched.
  CHECK(monitor.Check({live.address()}, absl::Now()).empty());
  // A peer that was live and goes away is found dead too (once gRPC's reconnect backoff lets
  // the channel try again and fail).
  live.Stop();
  CHECK(CheckUntil(monitor, {live.address()}, absl::Seconds(15), true) == std::set<std::string>{live.address()});
}

TEST_CASE("the patient address gets its own, longer timeout") {
  std::string closed;
  {
    LiveServer gone;
    closed = gone.address();
  }
  PeerMonitor monitor(absl::Milliseconds(100), closed, absl::Hours(1));
  CHECK(CheckUntil(monitor, {closed}, absl::Seconds(1)).empty());
}

}  // namespace
}  // namespace shoal
