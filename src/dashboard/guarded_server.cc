// Connection limits, deadlines and body budgets around httplib's request parser; see
// guarded_server.h.
//
// httplib (0.11) parses a request from a Stream and trusts it: it reads a request line or a
// header line of any length into memory, a body before the route's handler runs (or until end of
// stream when no length is given), and gives a connection one thread of a fixed pool for as long
// as it trickles bytes. Here every connection reads through a Connection (the Stream below) that
// enforces the deadline and the byte budgets, and the accept loop hands sockets to threads of our
// own, up to the connection limit. A Connection's bytes go through a Transport: the socket
// itself, or TLS over it, whose every wait is a poll() with the same deadlines.
#include "src/dashboard/guarded_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shoal::dashboard {
namespace {

thread_local RequestGuard* t_current_request = nullptr;

// poll() for `events` for up to `timeout` (none when it is not positive): >0 ready, 0 timed out.
int PollFor(int fd, short events, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
    const int64_t ms = std::min<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), INT_MAX);
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int ready = ::poll(&p, 1, static_cast<int>(ms));
    if (ready < 0 && errno == EINTR) continue;
    return ready;
  }
}

const char* Reason(int status) {
  switch (status) {
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    default: return "Service Unavailable";
  }
}

// A whole reply, in the dashboard's error shape ({"error", "message"}), for the refusals made
// here rather than by a handler.
std::string RefusalReply(int status, const ConnectionLimits& limits) {
  std::string code, message;
  switch (status) {
    case 408:
      code = "request_timeout";
      message = absl::StrCat("the request did not arrive within ", absl::FormatDuration(limits.read_timeout));
      break;
    case 414:
      code = "uri_too_long";
      message = absl::StrCat("the request line is longer than ", limits.max_head_bytes, " bytes");
      break;
    case 431:
      code = "request_header_fields_too_large";
      message = absl::StrCat("the request's headers take more than ", limits.max_head_bytes, " bytes");
      break;
    default:
      code = "unavailable";
      message = absl::StrCat("the dashboard is serving its limit of ", limits.max_connections,
                             " connections (--max-connections); try again");
  }
  std::string body = absl::StrCat(R"({"error":")", code, R"(","message":")", message, "\"}");
  return absl::StrCat("HTTP/1.1 ", status, " ", Reason(status), "\r\nContent-Type: application/json\r\nContent-Length: ",
                      body.size(), "\r\nConnection: close\r\n", status == 503 ? "Retry-After: 1\r\n" : "", "\r\n", body);
}

// The bytes of one connection, both ways. Lives on the connection's thread.
class Transport {
 public:
  static constexpr ssize_t kTimedOut = -2;
  virtual ~Transport() = default;
  // Up to `size` bytes, waiting until `deadline`: > 0 bytes, 0 end of stream, -1 error, kTimedOut.
  virtual ssize_t Receive(char* ptr, size_t size, absl::Time deadline) = 0;
  // Some of the `size` bytes, waiting until `deadline`: > 0 bytes sent, -1 error or timed out.
  virtual ssize_t Send(const char* ptr, size_t size, absl::Time deadline) = 0;
  // Whether bytes already taken from the socket wait to be received (TLS reads whole records).
  virtual bool HasBuffered() const = 0;
  // Ends what we send (TLS: after a close_notify); the client may go on sending.
  virtual void CloseWrite() = 0;
};

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(int fd) : fd_(fd) {}

  ssize_t Receive(char* ptr, size_t size, absl::Time deadline) override {
    if (PollFor(fd_, POLLIN, deadline - absl::Now()) <= 0) return kTimedOut;
    ssize_t n;
    do {
      n = ::recv(fd_, ptr, size, 0);
    } while (n < 0 && errno == EINTR);
    return n;
  }
  ssize_t Send(const char* ptr, size_t size, absl::Time deadline) override {
    if (PollFor(fd_, POLLOUT, deadline - absl::Now()) <= 0) return -1;
    ssize_t n;
    do {
      n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }
  bool HasBuffered() const override { return false; }
  void CloseWrite() override { ::shutdown(fd_, SHUT_WR); }

 private:
  const int fd_;
};

// TLS over a non-blocking socket: OpenSSL says what it waits for (WANT_READ, WANT_WRITE), and
// that wait is a poll() bounded by the caller's deadline, so a stalled client holds its own
// thread only until its deadline, handshake included.
class TlsTransport final : public Transport {
 public:
  // The server's side of the handshake, finished by `deadline`; null when it fails (a plain-HTTP
  // client, a protocol error, a close) or times out.
  static std::unique_ptr<TlsTransport> Accept(int fd, SSL_CTX* ctx, absl::Time deadline) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return nullptr;
    SSL* ssl = SSL_new(ctx);
    if (ssl == nullptr) return nullptr;
    auto transport = std::unique_ptr<TlsTransport>(new TlsTransport(fd, ssl));
    if (SSL_set_fd(ssl, fd) != 1) return nullptr;
    for (;;) {
      const int r = SSL_accept(ssl);
      if (r == 1) return transport;
      if (!transport->Wait(r, deadline)) return nullptr;
    }
  }
  ~TlsTransport() override { SSL_free(ssl_); }

  ssize_t Receive(char* ptr, size_t size, absl::Time deadline) override {
    for (;;) {
      const int n = SSL_read(ssl_, ptr, static_cast<int>(std::min<size_t>(size, INT_MAX)));
      if (n > 0) return n;
      if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify
      if (!Wait(n, deadline)) return timed_out_ ? kTimedOut : -1;
    }
  }
  ssize_t Send(const char* ptr, size_t size, absl::Time deadline) override {
    for (;;) {  // SSL_MODE_ENABLE_PARTIAL_WRITE: a retry passes the same bytes, as OpenSSL requires
      const int n = SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, INT_MAX)));
      if (n > 0) return n;
      if (!Wait(n, deadline)) return -1;
    }
  }
  bool HasBuffered() const override { return SSL_has_pending(ssl_) == 1; }
  void CloseWrite() override {
    if (!failed_) (void)SSL_shutdown(ssl_);  // one try at the close_notify: never waits
    ERR_clear_error();
    ::shutdown(fd_, SHUT_WR);
  }

 private:
  TlsTransport(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}

  // After an SSL call answered `result` <= 0: waits until the socket is ready for what OpenSSL
  // wants, by `deadline`. False when the call failed for good or the deadline passed.
  bool Wait(int result, absl::Time deadline) {
    const int error = SSL_get_error(ssl_, result);
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
      failed_ = true;  // after SSL_ERROR_SYSCALL or _SSL, no more calls but SSL_free
      ERR_clear_error();
      return false;
    }
    if (PollFor(fd_, error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline - absl::Now()) <= 0) {
      timed_out_ = true;
      return false;
    }
    return true;
  }

  const int fd_;
  SSL* const ssl_;
  bool failed_ = false;
  bool timed_out_ = false;
};

void AddressOf(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0) return;
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
  }
  ip = text;
}

// One client connection: the Stream httplib parses requests from, with the current request's
// deadline and budgets. Lives on the connection's thread.
class Connection final : public httplib::Stream, public RequestGuard {
 public:
  Connection(int fd, Transport& io, const ConnectionLimits& limits) : fd_(fd), io_(io), limits_(limits) {}

  // A new request on this connection: its head must be read by `deadline`.
  void BeginRequest(absl::Time deadline) {
    phase_ = Phase::kHead;
    deadline_ = deadline;
    head_bytes_ = 0;
    saw_line_end_ = false;
    head_refusal_ = 0;
    no_body_ = slow_body_ = body_too_large_ = timed_out_ = false;
    body_left_ = 0;
  }

  // Whether the next request starts arriving within `timeout`.
  bool WaitForNextRequest(absl::Duration timeout) {
    return off_ < len_ || io_.HasBuffered() || PollFor(fd_, POLLIN, timeout) > 0;
  }

  // 0, or the status the head that could not be read is answered with (408, 414, 431).
  int head_refusal() const { return head_refusal_; }
  bool must_close() const { return must_close_; }

  void SendRefusal(int status) {
    swallow_writes_ = false;
    const std::string reply = RefusalReply(status, limits_);
    for (size_t sent = 0; sent < reply.size();) {
      const ssize_t n = write(reply.data() + sent, reply.size() - sent);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  // Sends our FIN, then discards what the client still sends for up to `linger`, so that a
  // client busy sending a refused body reads its reply instead of a reset.
  void Linger(absl::Duration linger) {
    io_.CloseWrite();
    const absl::Time until = absl::Now() + linger;
    char scratch[16 << 10];
    while (PollFor(fd_, POLLIN, until - absl::Now()) > 0) {
      const ssize_t n = ::recv(fd_, scratch, sizeof(scratch), 0);
      if (n == 0 || (n < 0 && errno != EINTR)) return;
    }
  }

  // httplib::Stream
  bool is_readable() const override {
    return off_ < len_ || io_.HasBuffered() || PollFor(fd_, POLLIN, limits_.read_timeout) > 0;
  }
  bool is_writable() const override {
    if (PollFor(fd_, POLLOUT, limits_.write_timeout) <= 0) return false;
    if (PollFor(fd_, POLLIN, absl::ZeroDuration()) <= 0) return true;
    char byte;
    return ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;  // 0: the client has closed
  }
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override {
    if (swallow_writes_) return static_cast<ssize_t>(size);  // a refusal replaces httplib's reply
    const ssize_t n = io_.Send(ptr, size, absl::Now() + limits_.write_timeout);
    return n <= 0 ? Fail() : n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { AddressOf(fd_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { AddressOf(fd_, false, ip, port); }
  int socket() const override { return fd_; }

  // RequestGuard
  void ExpectNoBody() override {
    phase_ = Phase::kBody;
    no_body_ = true;
  }
  void AllowBody(int64_t max_bytes) override {
    phase_ = Phase::kBody;
    body_left_ = max_bytes;
  }
  void AllowSlowBody() override { slow_body_ = true; }
  void CloseAfterReply() override {
    must_close_ = true;
    stop_reading_ = true;
  }
  bool body_too_large() const override { return body_too_large_; }
  bool timed_out() const override { return timed_out_; }

 private:
  enum class Phase { kHead, kBody };

  ssize_t Fail() {
    must_close_ = true;
    stop_reading_ = true;
    return -1;
  }
  // The head cannot be read (too long, too slow): httplib's reply is dropped and ours is sent.
  ssize_t RefuseHead(int status) {
    head_refusal_ = status == 408 && head_bytes_ == 0 ? 0 : status;  // an idle connection just closes
    swallow_writes_ = true;
    return Fail();
  }

  const int fd_;
  Transport& io_;
  const ConnectionLimits& limits_;
  char buffer_[16 << 10];
  size_t off_ = 0, len_ = 0;
  Phase phase_ = Phase::kHead;
  absl::Time deadline_;
  int64_t head_bytes_ = 0;
  bool saw_line_end_ = false;  // the request line is complete
  int head_refusal_ = 0;
  int64_t body_left_ = 0;
  bool no_body_ = false, slow_body_ = false, body_too_large_ = false, timed_out_ = false;
  bool must_close_ = false, stop_reading_ = false, swallow_writes_ = false;
};

ssize_t Connection::read(char* ptr, size_t size) {
  if (stop_reading_) return -1;
  if (size == 0) return 0;
  if (phase_ == Phase::kHead) {
    if (head_bytes_ >= limits_.max_head_bytes) return RefuseHead(saw_line_end_ ? 431 : 414);
    size = std::min<size_t>(size, static_cast<size_t>(limits_.max_head_bytes - head_bytes_));
  } else {
    if (no_body_) return 0;
    if (body_left_ <= 0) {
      body_too_large_ = true;
      return Fail();
    }
    size = std::min<size_t>(size, static_cast<size_t>(body_left_));
  }
  if (off_ == len_) {
    const bool idle_only = phase_ == Phase::kBody && slow_body_;
    const ssize_t n = io_.Receive(buffer_, sizeof(buffer_), idle_only ? absl::Now() + limits_.read_timeout : deadline_);
    if (n == Transport::kTimedOut) {
      timed_out_ = true;
      return phase_ == Phase::kHead ? RefuseHead(408) : Fail();
    }
    if (n <= 0) {
      Fail();
      return n;
    }
    off_ = 0;
    len_ = static_cast<size_t>(n);
  }
  const size_t got = std::min(size, len_ - off_);
  std::memcpy(ptr, buffer_ + off_, got);
  off_ += got;
  if (phase_ == Phase::kHead) {
    head_bytes_ += static_cast<int64_t>(got);
    saw_line_end_ = saw_line_end_ || std::memchr(ptr, '\n', got) != nullptr;
  } else {
    body_left_ -= static_cast<int64_t>(got);
  }
  return static_cast<ssize_t>(got);
}

// httplib's accept loop hands each socket to its task queue; this one runs the hand-off inline
// (process_and_close_socket below), which is cheap: it never reads.
class InlineTaskQueue final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

}  // namespace

RequestGuard* CurrentRequest() { return t_current_request; }

GuardedHttpServer::GuardedHttpServer(ConnectionLimits limits, std::shared_ptr<SSL_CTX> tls)
    : limits_(limits), tls_(std::move(tls)) {
  new_task_queue = [] { return new InlineTaskQueue(); };
  // What httplib applies itself: socket timeouts (SO_RCVTIMEO/SO_SNDTIMEO) and the Keep-Alive header.
  const auto seconds = [](absl::Duration d) { return std::max<time_t>(1, absl::ToInt64Seconds(absl::Ceil(d, absl::Seconds(1)))); };
  set_read_timeout(seconds(limits_.read_timeout));
  set_write_timeout(seconds(limits_.write_timeout));
  set_keep_alive_timeout(seconds(limits_.keep_alive_timeout));
  set_keep_alive_max_count(static_cast<size_t>(limits_.max_requests_per_connection));
}

GuardedHttpServer::~GuardedHttpServer() { Shutdown(); }

int GuardedHttpServer::active_connections() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(open_.size() + pending_.size());
}

bool GuardedHttpServer::process_and_close_socket(int sock) {
  const absl::Time accepted = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && static_cast<int>(open_.size() + pending_.size()) < limits_.max_connections) {
      pending_.emplace_back(sock, accepted);
      if (static_cast<size_t>(idle_threads_) < pending_.size()) {
        threads_.emplace_back([this] { ConnectionThread(); });
      } else {
        wake_.Signal();
      }
      return true;
    }
  }
  // Over the limit: answer without reading (this is the accept loop's thread), then close. What
  // the client already sent is discarded first, so that the close is not a reset. A TLS client
  // gets no answer: that would take a handshake here.
  if (tls_ == nullptr) {
    const std::string reply = RefusalReply(503, limits_);
    (void)::send(sock, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  ::shutdown(sock, SHUT_WR);
  char scratch[4096];
  for (int i = 0; i < 16 && ::recv(sock, scratch, sizeof(scratch), MSG_DONTWAIT) > 0; ++i) {
  }
  ::close(sock);
  return false;
}

void GuardedHttpServer::ConnectionThread() {
  // OpenSSL writes to the socket with write(), which raises SIGPIPE when the client has gone: on
  // this thread it stays blocked (and pending), so the write fails with EPIPE instead.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  absl::MutexLock lock(&mu_);
  for (;;) {
    while (pending_.empty() && !stopping_) {
      ++idle_threads_;
      wake_.Wait(&mu_);
      --idle_threads_;
    }
    if (pending_.empty()) return;  // stopping
    auto [sock, accepted] = pending_.front();
    pending_.pop_front();
    open_.insert(sock);
    mu_.Unlock();
    Serve(sock, accepted);
    mu_.Lock();
    open_.erase(sock);
    ::close(sock);  // under the lock: Shutdown never shuts a number that was reused
  }
}

void GuardedHttpServer::Serve(int sock, absl::Time accepted) {
  absl::Time deadline = accepted + limits_.read_timeout;
  std::unique_ptr<Transport> io;
  if (tls_ != nullptr) {
    io = TlsTransport::Accept(sock, tls_.get(), deadline);  // within the first request's deadline
    if (io == nullptr) return;
  } else {
    io = std::make_unique<PlainTransport>(sock);
  }
  Connection conn(sock, *io, limits_);
  t_current_request = &conn;
  for (int served = 0; served < limits_.max_requests_per_connection && !stopped_.load(); ++served) {
    if (served > 0) {
      if (!conn.WaitForNextRequest(limits_.keep_alive_timeout)) break;
      deadline = absl::Now() + limits_.read_timeout;
    }
    conn.BeginRequest(deadline);
    bool client_closes = false;
    const bool last = served + 1 == limits_.max_requests_per_connection;
    const bool ok = process_request(conn, last, client_closes, nullptr);
    if (const int status = conn.head_refusal(); status != 0) {
      conn.SendRefusal(status);
      break;
    }
    if (!ok || client_closes || conn.must_close()) break;
  }
  if (conn.must_close() && !conn.timed_out()) conn.Linger(limits_.linger);
  t_current_request = nullptr;
}

void GuardedHttpServer::Shutdown() {
  stop();
  stopped_.store(true);
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (const auto& [sock, accepted] : pending_) ::close(sock);
    pending_.clear();
    for (int sock : open_) ::shutdown(sock, SHUT_RDWR);  // wakes reads and writes; the thread closes it
    wake_.SignalAll();
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace shoal::dashboard
