// Serves a StoreCore over a Unix domain socket, on one event-loop thread.
//
// Owns the shared-memory arena (a memfd of `capacity` bytes; pages are faulted in on first use
// and then reused, or all up front with `prefault`), hands its descriptor to each client once,
// and answers client requests in order. Gets that wait for an object to be sealed are parked
// until it is sealed or their timeout passes. A client whose socket closes is disconnected from
// the StoreCore (its references released, its unsealed objects aborted); a client that sends
// garbage gets an error reply or is disconnected, and nobody else is affected.
// Threading: Start/Stop from any one thread; everything else runs on the loop thread, which
// sleeps in epoll_wait when idle (timeouts of waiting Gets included: no periodic wake-ups).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace shoal {

struct StoreServerOptions {
  std::string socket_path;
  uint64_t capacity = 0;
  std::string spill_dir;        // empty: no spilling
  bool prefault = false;
  // After serving requests the loop keeps polling (yielding the CPU between polls) this long
  // before it sleeps, so a client's next request finds it awake: waking a sleeping thread on
  // another CPU costs tens of microseconds on a VM. 0 sleeps at once.
  int64_t busy_poll_us = 50;
};

class StoreServer {
 public:
  explicit StoreServer(StoreServerOptions options);
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  // Creates the arena and the socket (its directory too; mode 0600; a stale socket file is
  // replaced) and starts the loop thread. Once only. InvalidArgument (zero capacity, socket
  // path empty or too long), AlreadyExists (another store answers on the socket),
  // ResourceExhausted (no memory for the arena), Unavailable (socket or spill dir failed).
  absl::Status Start();
  // Stops the loop, closes every client, removes the socket file. Idempotent.
  void Stop();
  const std::string& socket_path() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal
