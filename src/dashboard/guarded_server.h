// An httplib::Server that bounds what one client can cost, so that slow or abusive clients can
// neither starve the others nor fill the process's memory:
//  - at most `max_connections` connections are served at once, each on a thread of its own; one
//    more is answered 503 at once, without reading it, and closed;
//  - a request's head (request line and headers) must arrive whole within `read_timeout` of the
//    connection (or of the previous reply) and hold at most `max_head_bytes`: otherwise 408, 414
//    or 431, and the connection is closed;
//  - a body is read only as far as the request's pre-routing check allows (RequestGuard): none
//    until then, and a request refused before its body is read is answered without reading it,
//    then its connection is closed after a short drain (`linger`) that discards what arrives;
//  - a body must arrive within the same deadline as the head, unless the request is allowed a
//    slow body (uploads), which may pause at most `read_timeout` between reads;
//  - a request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3).
// With a TLS context every connection is TLS (HTTPS only, no plain HTTP on the port): the
// handshake counts against the first request's deadline, a connection whose handshake fails or
// does not finish in time (a plain-HTTP client, one that stalls) is closed without a reply, and
// one past max_connections is closed without the 503 (that would need a handshake).
// Use: set a pre-routing handler that calls CurrentRequest()->ExpectNoBody() or AllowBody(n) for
// every request it lets through (without either, a body counts against the head's budget and
// deadline), and stop with Shutdown().
// Threading: listen*() runs the accept loop; each connection runs on its own thread; the
// handlers run there. Shutdown() from any other thread.
#pragma once

#include <openssl/ssl.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "httplib.h"

namespace shoal::dashboard {

struct ConnectionLimits {
  int max_connections = 256;
  absl::Duration read_timeout = absl::Seconds(10);
  absl::Duration write_timeout = absl::Seconds(10);
  absl::Duration keep_alive_timeout = absl::Seconds(5);  // idle wait for a connection's next request
  int max_requests_per_connection = 100;
  int64_t max_head_bytes = 64 << 10;
  absl::Duration linger = absl::Seconds(2);  // draining a refused body before the close
};

// The request being served on the calling thread, for the pre-routing check and the handlers.
class RequestGuard {
 public:
  virtual ~RequestGuard() = default;
  // The request has no body: reads of it answer end of stream.
  virtual void ExpectNoBody() = 0;
  // The body may take up to `max_bytes` on the wire; reading past that fails (body_too_large).
  virtual void AllowBody(int64_t max_bytes) = 0;
  // The body may arrive slowly: each read waits up to the read timeout, with no overall deadline.
  virtual void AllowSlowBody() = 0;
  // The reply goes out without the (rest of the) body being read; the connection is then closed.
  virtual void CloseAfterReply() = 0;
  virtual bool body_too_large() const = 0;
  virtual bool timed_out() const = 0;
};

// Null outside a connection's thread.
RequestGuard* CurrentRequest();

class GuardedHttpServer : public httplib::Server {
 public:
  // `tls`: serve HTTPS with it (dashboard_tls.h); null: plain HTTP.
  explicit GuardedHttpServer(ConnectionLimits limits, std::shared_ptr<SSL_CTX> tls = nullptr);
  ~GuardedHttpServer() override;
  GuardedHttpServer(const GuardedHttpServer&) = delete;
  GuardedHttpServer& operator=(const GuardedHttpServer&) = delete;

  // Stops accepting (httplib's stop()), ends every open connection and joins their threads.
  // REQUIRES: the thread running listen*() is joined first, or joins by itself afterwards.
  void Shutdown();

  int active_connections() const;

 protected:
  // Called by httplib's accept loop (through an inline task queue) for each new socket: refuses
  // it past max_connections, otherwise hands it to a connection thread.
  bool process_and_close_socket(int sock) override;

 private:
  // A connection thread: serves pending sockets one after another until Shutdown.
  void ConnectionThread();
  // Reads and answers the requests of one connection (keep-alive), on its thread.
  void Serve(int sock, absl::Time accepted);

  const ConnectionLimits limits_;
  const std::shared_ptr<SSL_CTX> tls_;
  std::atomic<bool> stopped_{false};
  mutable absl::Mutex mu_;
  absl::CondVar wake_;  // a socket is pending, or stopping_
  absl::flat_hash_set<int> open_ ABSL_GUARDED_BY(mu_);                  // sockets being served
  std::deque<std::pair<int, absl::Time>> pending_ ABSL_GUARDED_BY(mu_);  // accepted, waiting for a thread
  int idle_threads_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);  // at most max_connections
};

}  // namespace shoal::dashboard
