#include "src/common/socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/spdlog.h"

namespace shoal::net {
namespace {

constexpr size_t kMaxFrameBytes = size_t{1} << 31;

absl::StatusOr<sockaddr_in> Address(const std::string& host, int port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("'", host, "' is not an IPv4 address"));
  }
  return addr;
}

}  // namespace

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

void ConfigureSocket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  int idle_s = 5, interval_s = 2, probes = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(interval_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
  unsigned int user_timeout_ms = 10000;
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

void SetReadTimeout(int fd, absl::Duration timeout) {
  timeval wait = absl::ToTimeval(std::max(timeout, absl::ZeroDuration()));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
}

void SetWriteTimeout(int fd, absl::Duration timeout) {
  timeval wait = absl::ToTimeval(std::max(timeout, absl::ZeroDuration()));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait));
}

absl::StatusOr<int> Listen(const std::string& host, int* port) {
  absl::StatusOr<sockaddr_in> addr = Address(host, 0);
  if (!addr.ok()) return addr.status();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  if (::bind(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0 || ::listen(fd, 128) != 0) {
    absl::Status s = Errno(absl::StrCat("listen on ", host));
    ::close(fd);
    return s;
  }
  socklen_t len = sizeof(*addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&*addr), &len);
  *port = ntohs(addr->sin_port);
  return fd;
}

absl::StatusOr<int> Connect(const std::string& host, int port, absl::Duration timeout) {
  absl::StatusOr<sockaddr_in> addr = Address(host, port);
  if (!addr.ok()) return addr.status();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  SetWriteTimeout(fd, std::max(timeout, absl::Milliseconds(1)));  // connect waits at most this long
  if (::connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    absl::Status s = Errno(absl::StrCat("connect to ", host, ":", port));
    ::close(fd);
    return s;
  }
  SetWriteTimeout(fd, absl::ZeroDuration());
  ConfigureSocket(fd);
  return fd;
}

absl::Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), port) || *port <= 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not host:port"));
  }
  *host = address.substr(0, colon);
  return absl::OkStatus();
}

namespace {

// One read of at most `bytes` (at least one byte): UNAVAILABLE when the peer closed,
// DEADLINE_EXCEEDED when it waited longer than the socket's SO_RCVTIMEO.
absl::StatusOr<size_t> ReadSome(int fd, char* data, size_t bytes) {
  while (true) {
    const ssize_t n = ::read(fd, data, bytes);
    if (n > 0) return static_cast<size_t>(n);
    if (n == 0) return absl::UnavailableError("the connection was closed");
    if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::DeadlineExceededError("read timed out (SO_RCVTIMEO)");
    if (errno != EINTR) return Errno("read");
  }
}

}  // namespace

absl::Status ReadExactly(int fd, char* data, size_t bytes, absl::Time deadline) {
  while (bytes > 0) {
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      pollfd p = {fd, POLLIN, 0};
      const int ready = left <= absl::ZeroDuration()
                            ? 0
                            : ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready == 0) return absl::DeadlineExceededError("read timed out");
      if (ready < 0 && errno != EINTR) return Errno("poll");
      if (ready < 0) continue;
    }
    absl::StatusOr<size_t> n = ReadSome(fd, data, bytes);
    if (!n.ok()) return n.status();
    data += *n;
    bytes -= *n;
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, std::string_view data, std::string_view more) {
  iovec parts[2] = {{const_cast<char*>(data.data()), data.size()}, {const_cast<char*>(more.data()), more.size()}};
  int first = 0;
  while (first < 2 && parts[first].iov_len == 0) ++first;
  while (first < 2) {
    msghdr msg = {};
    msg.msg_iov = &parts[first];
    msg.msg_iovlen = 2 - first;
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    size_t left = static_cast<size_t>(n);
    while (first < 2 && left >= parts[first].iov_len) {
      left -= parts[first].iov_len;
      ++first;
    }
    if (first < 2) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + left;
      parts[first].iov_len -= left;
    }
  }
  return absl::OkStatus();
}

absl::Status WriteFrame(int fd, std::string_view payload) {
  if (payload.size() >= kMaxFrameBytes) return absl::ResourceExhaustedError("a frame over 2 GiB");
  const uint32_t size = static_cast<uint32_t>(payload.size());
  const char header[4] = {static_cast<char>(size), static_cast<char>(size >> 8), static_cast<char>(size >> 16),
                          static_cast<char>(size >> 24)};
  return WriteAll(fd, std::string_view(header, sizeof(header)), payload);
}

absl::StatusOr<std::string> ReadFrame(int fd, size_t max_bytes, absl::Time deadline) {
  unsigned char header[4];
  if (absl::Status s = ReadExactly(fd, reinterpret_cast<char*>(header), sizeof(header), deadline); !s.ok()) return s;
  const size_t size = size_t{header[0]} | size_t{header[1]} << 8 | size_t{header[2]} << 16 | size_t{header[3]} << 24;
  if (size > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("a frame of ", size, " bytes (at most ", max_bytes, ")"));
  }
  std::string payload(size, '\0');
  if (absl::Status s = ReadExactly(fd, payload.data(), size, deadline); !s.ok()) return s;
  return payload;
}

absl::Status FrameReader::Fill(size_t bytes) {
  if (begin_ + bytes > kBufferBytes) {  // no room behind: move what is buffered to the front
    std::memmove(buffer_.get(), buffer_.get() + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  while (buffered() < bytes) {
    absl::StatusOr<size_t> n = ReadSome(fd_, buffer_.get() + end_, kBufferBytes - end_);
    if (!n.ok()) return n.status();
    end_ += *n;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FrameReader::Next() {
  if (absl::Status s = Fill(4); !s.ok()) return s;
  const auto* header = reinterpret_cast<const unsigned char*>(buffer_.get() + begin_);
  const size_t size = size_t{header[0]} | size_t{header[1]} << 8 | size_t{header[2]} << 16 | size_t{header[3]} << 24;
  if (size > max_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("a frame of ", size, " bytes (at most ", max_bytes_, ")"));
  }
  begin_ += 4;
  if (size <= kBufferBytes) {
    if (absl::Status s = Fill(size); !s.ok()) return s;
    std::string payload(buffer_.get() + begin_, size);
    begin_ += size;
    return payload;
  }
  std::string payload(size, '\0');
  const size_t have = buffered();  // less than the frame: a large one is read mostly straight
  std::memcpy(payload.data(), buffer_.get() + begin_, have);
  begin_ = end_ = 0;
  if (absl::Status s = ReadExactly(fd_, payload.data() + have, size - have); !s.ok()) return s;
  return payload;
}

Listener::~Listener() { Stop(); }

absl::StatusOr<int> Listener::Start(const std::string& host, const char* thread_name, std::string what,
                                    std::function<void(int fd)> on_connection) {
  int port = 0;
  absl::StatusOr<int> fd = Listen(host, &port);
  if (!fd.ok()) return absl::Status(fd.status().code(), absl::StrCat(what, ": ", fd.status().message()));
  fd_ = *fd;
  what_ = std::move(what);
  on_connection_ = std::move(on_connection);
  thread_ = std::thread([this, thread_name] {
    pthread_setname_np(pthread_self(), thread_name);
    Accept();
  });
  return port;
}

void Listener::Accept() {
  while (true) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      ConfigureSocket(fd);
      on_connection_(fd);
      continue;
    }
    const int error = errno;
    if (error == EINTR || error == ECONNABORTED) continue;
    if (stopping_.load()) return;  // Stop shut the listener down
    spdlog::warn("{}: accept failed: {}", what_, std::strerror(error));
    absl::SleepFor(absl::Milliseconds(100));
  }
}

void Listener::Stop() {
  if (fd_ < 0 || stopping_.exchange(true)) return;
  ::shutdown(fd_, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  fd_ = -1;
}

}  // namespace shoal::net
