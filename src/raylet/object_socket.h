// Object transfers over plain sockets (issue 17): a pull of one byte range over a TCP
// connection of its own, without gRPC. The holder writes the range straight from its store and
// the puller reads it straight into the new object: two copies (into the kernel and out), as a
// plain TCP stream, where ObjectManagerService.Pull makes three (the payload lands in gRPC's
// buffers first) and frames it in HTTP/2.
//
// Wire (frames as in src/common/socket.h): the puller sends the cluster token, then a
// PullRequest; the holder answers a SocketPullStart and, when it says OK, the range's bytes,
// raw, then closes. A wrong token gets UNAUTHENTICATED before the request is looked at.
//
// A raylet tells where it serves such pulls through ObjectManagerService.TransferPort, 0 when it
// serves none: with TLS on (these sockets are not encrypted) or a fixed --port (this port would
// not keep to it). The puller asks once per holder; where the answer is 0 it pulls over gRPC.
// Threading: the server runs a thread per connection; the client is thread-safe and each stream
// is used by one thread, as ObjectChunkStream says.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "src/common/socket.h"
#include "src/object_store/client.h"
#include "src/raylet/object_transfer.h"

namespace shoal {

class ObjectSocketServer {
 public:
  // Connections that have not shown the token yet (each has 10 s to send it and its request);
  // more are closed at once. Pullers with the token are served however many there are: each
  // node pulls at most a few ranges at once (ObjectManagerOptions).
  static constexpr int kMaxHandshakes = 64;

  // `store` must outlive the server.
  explicit ObjectSocketServer(ObjectStoreClient& store) : store_(store) {}
  ~ObjectSocketServer();  // Stop()
  ObjectSocketServer(const ObjectSocketServer&) = delete;
  ObjectSocketServer& operator=(const ObjectSocketServer&) = delete;

  // Listens on `host` (an IPv4 address), any free port; answers the port.
  absl::StatusOr<int> Start(const std::string& host);
  // Closes the listener and every connection, and waits for their threads (every object they
  // held is released). Idempotent.
  void Stop();

 private:
  // A connection the listener accepted: served on a thread of its own.
  void Take(int fd);
  void Serve(int fd);

  ObjectStoreClient& store_;
  net::Listener listener_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<int> open_ ABSL_GUARDED_BY(mu_);  // connections being served
  int handshaking_ ABSL_GUARDED_BY(mu_) = 0;             // of those, before the token
};

// Pulls over plain sockets from holders that serve them, over `fallback` from the others.
// `port_for` answers a holder's socket port (0: none); it is asked once per holder (again after
// it failed).
using TransferPortLookup = std::function<absl::StatusOr<int>(const std::string& holder)>;
std::unique_ptr<ObjectTransferClient> MakeSocketObjectTransferClient(TransferPortLookup port_for,
                                                                     std::unique_ptr<ObjectTransferClient> fallback);
// The lookup the raylet uses: ObjectManagerService.TransferPort at the holder.
TransferPortLookup GrpcTransferPortLookup();

}  // namespace shoal
