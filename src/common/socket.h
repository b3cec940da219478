// Plain TCP sockets for the two data paths that skip gRPC (issue 17): task pushes between
// workers (src/worker/direct_push.h) and object transfers between raylets
// (src/raylet/object_socket.h). Blocking sockets, IPv4, one thread per direction.
//
// Frames: a 4-byte little-endian length and that many bytes. Both paths open with a frame
// holding the cluster token, checked by the server before it reads anything else.
// Threading: free functions on file descriptors the caller owns.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shoal::net {

// The largest first frame a server reads (the cluster token and little else).
inline constexpr size_t kMaxHelloBytes = 4096;

// UNAVAILABLE naming `what` and errno's text.
absl::Status Errno(absl::string_view what);

// No Nagle delay; and a peer that stops answering (its node cut off, not closed) ends the
// connection within about 10 s, as gRPC's keepalive does for its channels (src/common/rpc.cc):
// probes after 5 s idle, and unacknowledged data or probes for 10 s break it.
void ConfigureSocket(int fd);

// Listens on `host` (an IPv4 address) at any free port. Answers the socket; `*port` its port.
absl::StatusOr<int> Listen(const std::string& host, int* port);
// Sets how long one read (SO_RCVTIMEO) or one write (SO_SNDTIMEO) may wait; zero: forever.
void SetReadTimeout(int fd, absl::Duration timeout);
void SetWriteTimeout(int fd, absl::Duration timeout);
// Connects to `host`:`port`, waiting at most `timeout`, and configures the socket.
absl::StatusOr<int> Connect(const std::string& host, int port, absl::Duration timeout);
// "host:port" split; InvalidArgument naming `address` when it is not one.
absl::Status SplitHostPort(const std::string& address, std::string* host, int* port);

// Exactly `bytes` bytes; UNAVAILABLE if the peer closed first, DEADLINE_EXCEEDED at `deadline`
// (the whole read, however the bytes trickle in) or when one read waited longer than the
// socket's SO_RCVTIMEO.
absl::Status ReadExactly(int fd, char* data, size_t bytes, absl::Time deadline = absl::InfiniteFuture());
// All of `data` (and `more`, after it, in the same system call where it fits).
absl::Status WriteAll(int fd, std::string_view data, std::string_view more = {});

// One frame. ReadFrame refuses frames over `max_bytes` (InvalidArgument).
absl::Status WriteFrame(int fd, std::string_view payload);
absl::StatusOr<std::string> ReadFrame(int fd, size_t max_bytes, absl::Time deadline = absl::InfiniteFuture());

// Frames read through a buffer: one read takes whatever the socket holds (a header, its payload,
// the frames behind it), where ReadFrame makes two system calls per frame. A frame larger than
// the buffer is read straight into its own string past what was buffered. Errors as ReadFrame's.
// Threading: one reader.
class FrameReader {
 public:
  static constexpr size_t kBufferBytes = 16 << 10;  // per connection: a driver may hold thousands
  FrameReader(int fd, size_t max_bytes) : fd_(fd), max_bytes_(max_bytes), buffer_(new char[kBufferBytes]) {}
  absl::StatusOr<std::string> Next();

 private:
  // Reads until at least `bytes` are buffered (bytes <= kBufferBytes).
  absl::Status Fill(size_t bytes);
  size_t buffered() const { return end_ - begin_; }

  const int fd_;
  const size_t max_bytes_;
  std::unique_ptr<char[]> buffer_;
  size_t begin_ = 0;  // buffered bytes are [begin_, end_)
  size_t end_ = 0;
};

// A listening socket and the thread that accepts on it: each connection, configured
// (ConfigureSocket), goes to `on_connection`, which owns it. An accept error other than Stop's
// (out of descriptors or memory for a moment) is logged and retried after 100 ms, so the port
// stays served.
class Listener {
 public:
  Listener() = default;
  ~Listener();  // Stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Listens on `host` (an IPv4 address) at any free port; answers the port. `thread_name` names
  // the accepting thread; `what` prefixes errors and warnings.
  absl::StatusOr<int> Start(const std::string& host, const char* thread_name, std::string what,
                            std::function<void(int fd)> on_connection);
  // Closes the listener and joins the accepting thread: no `on_connection` runs afterwards.
  // Idempotent.
  void Stop();

 private:
  void Accept();

  std::string what_;
  std::function<void(int)> on_connection_;
  std::atomic<bool> stopping_{false};
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace shoal::net
