#include "src/collective/host_communicator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace shoal::collective {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kMagic[4] = {'S', 'H', 'C', '1'};
constexpr int32_t kProbeRank = -1;

enum ReplyCode : uint8_t { kReplyOk = 0, kReplyRetry = 1, kReplyFatal = 2, kReplyAlive = 3 };

// The first bytes a connecting rank sends; the group name follows.
struct Hello {
  char magic[4];
  int32_t rank;
  int32_t world;
  uint32_t name_len;
  uint64_t nonce;  // the nonce the connector read under the acceptor's key
};

enum class Kind : uint32_t { kAllReduce = 1, kBroadcast, kAllGather, kReduceScatter, kReduce, kSend, kBarrier };

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kAllReduce: return "allreduce";
    case Kind::kBroadcast: return "broadcast";
    case Kind::kAllGather: return "allgather";
    case Kind::kReduceScatter: return "reducescatter";
    case Kind::kReduce: return "reduce";
    case Kind::kSend: return "send/recv";
    case Kind::kBarrier: return "barrier";
  }
  return "?";
}

// Sent before every payload: what the sender is doing, so that mismatched calls fail clearly.
struct Header {
  uint32_t kind;
  uint32_t dtype;
  uint64_t count;  // elements of the whole call (not of this piece)
  int64_t root;    // broadcast/reduce root, else -1
  uint64_t bytes;  // payload bytes that follow
};

std::string Describe(const Header& h) {
  std::string s = KindName(static_cast<Kind>(h.kind));
  if (static_cast<Kind>(h.kind) != Kind::kBarrier) {
    s += " of " + std::to_string(h.count) + " " + DataTypeName(static_cast<DataType>(h.dtype));
  }
  if (h.root >= 0) s += " from root " + std::to_string(h.root);
  return s;
}

std::string Seconds(std::chrono::milliseconds ms) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g s", static_cast<double>(ms.count()) / 1000.0);
  return text;
}

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Blocking-style helpers over a non-blocking fd, each bounded by `deadline`.
bool WaitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the read/write report it
  }
}

Status WriteAll(int fd, const void* data, size_t bytes, Clock::time_point deadline) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = send(fd, p, bytes, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFd(fd, POLLOUT, deadline)) return DeadlineExceeded("timed out writing to a peer");
    } else {
      return Unavailable(Errno("send"));
    }
  }
  return Status::Ok();
}

Status ReadAll(int fd, void* data, size_t bytes, Clock::time_point deadline) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    ssize_t n = recv(fd, p, bytes, 0);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
    } else if (n == 0) {
      return Unavailable("connection closed");
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!WaitFd(fd, POLLIN, deadline)) return DeadlineExceeded("timed out reading from a peer");
    } else {
      return Unavailable(Errno("recv"));
    }
  }
  return Status::Ok();
}

Status SendReply(int fd, ReplyCode code, const std::string& message, Clock::time_point deadline) {
  uint8_t c = code;
  uint32_t len = static_cast<uint32_t>(message.size());
  SHOAL_COLLECTIVE_RETURN_IF_ERROR(WriteAll(fd, &c, 1, deadline));
  SHOAL_COLLECTIVE_RETURN_IF_ERROR(WriteAll(fd, &len, 4, deadline));
  return WriteAll(fd, message.data(), message.size(), deadline);
}

Status ReadReply(int fd, ReplyCode* code, std::string* message, Clock::time_point deadline) {
  uint8_t c = 0;
  uint32_t len = 0;
  SHOAL_COLLECTIVE_RETURN_IF_ERROR(ReadAll(fd, &c, 1, deadline));
  SHOAL_COLLECTIVE_RETURN_IF_ERROR(ReadAll(fd, &len, 4, deadline));
  if (len > 4096) return Internal("malformed reply from a peer");
  message->assign(len, '\0');
  SHOAL_COLLECTIVE_RETURN_IF_ERROR(ReadAll(fd, message->data(), len, deadline));
  *code = static_cast<ReplyCode>(c);
  return Status::Ok();
}

// Splits "host:port|nonce".
bool ParseAddress(const std::string& value, std::string* host, int* port, uint64_t* nonce) {
  size_t bar = value.rfind('|');
  if (bar == std::string::npos) return false;
  std::string address = value.substr(0, bar);
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  try {
    *port = std::stoi(address.substr(colon + 1));
    *nonce = std::stoull(value.substr(bar + 1), nullptr, 16);
  } catch (...) {
    return false;
  }
  return *port > 0 && *port < 65536;
}

// A connected, non-blocking TCP socket to host:port, or -1 (refused, unreachable, timed out).
int ConnectTo(const std::string& host, int port, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int result = -1;
  for (addrinfo* ai = res; ai != nullptr && result < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    SetNonBlocking(fd);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      if (WaitFd(fd, POLLOUT, std::min(deadline, Clock::now() + std::chrono::seconds(5)))) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
      }
    }
    if (rc == 0) {
      SetNoDelay(fd);
      result = fd;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(res);
  return result;
}

class HostCommunicator final : public Communicator {
 public:
  HostCommunicator(GroupOptions options, uint64_t nonce, int listen_fd)
      : options_(std::move(options)), nonce_(nonce), listen_fd_(listen_fd),
        fds_(static_cast<size_t>(options_.world_size), -1) {
    if (pipe2(stop_pipe_, O_CLOEXEC) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
  }

  ~HostCommunicator() override {
    Abort("the group was destroyed");
    if (acceptor_.joinable()) {
      if (stop_pipe_[1] >= 0) (void)!write(stop_pipe_[1], "x", 1);
      acceptor_.join();
    }
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
    if (listen_fd_ >= 0) close(listen_fd_);
    for (int fd : stop_pipe_) {
      if (fd >= 0) close(fd);
    }
  }

  int rank() const override { return options_.rank; }
  int size() const override { return options_.world_size; }
  const std::string& group_name() const override { return options_.group_name; }
  const char* backend() const override { return "gloo"; }

  // Joining (JoinHostGroup): connect to every lower rank, accept every higher one, then start
  // answering late connections.
  Status ConnectToRank(int peer, KeyValue& kv, Clock::time_point deadline);
  Status AcceptHigherRanks(Clock::time_point deadline);
  void Start() {
    for (int fd : fds_) {
      if (fd >= 0) SetNonBlocking(fd);
    }
    acceptor_ = std::thread([this] { ServeLateConnections(); });
  }

  Status AllReduce(const Buffer& b, ReduceOp op) override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(b, "allreduce"));
    Header h = MakeHeader(Kind::kAllReduce, b, -1);
    char* data = static_cast<char*>(b.data);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(RingReduceScatter(h, data, b.count, b.type, op, /*shift=*/0));
    return RingAllGather(h, data, b.count, b.type, /*shift=*/1);
  }

  Status Broadcast(const Buffer& b, int root) override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(b, "broadcast"));
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckPeer(root, "broadcast root"));
    Header h = MakeHeader(Kind::kBroadcast, b, root);
    if (rank() != root) return Run(-1, nullptr, root, b.data, h);
    for (int peer = 0; peer < size(); ++peer) {
      if (peer != root) SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(peer, b.data, -1, nullptr, h));
    }
    return Status::Ok();
  }

  Status AllGather(const Buffer& in, const Buffer& out) override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(in, "allgather"));
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(out, "allgather"));
    if (out.type != in.type || out.count != in.count * static_cast<size_t>(size())) {
      return Refuse(InvalidArgument("allgather: the output must hold world_size (" + std::to_string(size()) +
                                    ") times the input's " + std::to_string(in.count) + " elements of the same type"));
    }
    Header h = MakeHeader(Kind::kAllGather, in, -1);
    char* data = static_cast<char*>(out.data);
    size_t piece = in.bytes();
    if (piece > 0 && out.data != in.data) std::memmove(data + piece * static_cast<size_t>(rank()), in.data, piece);
    // Each slice is a chunk of the ring: slice r starts at rank r.
    for (int step = 0; step + 1 < size(); ++step) {
      int send_slice = Mod(rank() - step), recv_slice = Mod(rank() - step - 1);
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(Next(), data + piece * static_cast<size_t>(send_slice), Prev(),
                                           data + piece * static_cast<size_t>(recv_slice), h, piece));
    }
    return Status::Ok();
  }

  Status ReduceScatter(const Buffer& in, const Buffer& out, ReduceOp op) override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(in, "reducescatter"));
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(out, "reducescatter"));
    if (out.type != in.type || in.count != out.count * static_cast<size_t>(size())) {
      return Refuse(InvalidArgument("reducescatter: the input must hold world_size (" + std::to_string(size()) +
                                    ") times the output's " + std::to_string(out.count) +
                                    " elements of the same type"));
    }
    Header h = MakeHeader(Kind::kReduceScatter, in, -1);
    std::vector<char> work(static_cast<const char*>(in.data), static_cast<const char*>(in.data) + in.bytes());
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(RingReduceScatter(h, work.data(), in.count, in.type, op, /*shift=*/-1,
                                                       /*slices=*/out.count));
    if (out.bytes() > 0) std::memcpy(out.data, work.data() + out.bytes() * static_cast<size_t>(rank()), out.bytes());
    return Status::Ok();
  }

  Status Reduce(const Buffer& b, int root, ReduceOp op) override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(b, "reduce"));
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckPeer(root, "reduce root"));
    Header h = MakeHeader(Kind::kReduce, b, root);
    if (rank() != root) return Run(root, b.data, -1, nullptr, h);
    std::vector<char> incoming(b.bytes());
    for (int peer = 0; peer < size(); ++peer) {
      if (peer == root) continue;
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(-1, nullptr, peer, incoming.data(), h));
      ReduceInto(b.data, incoming.data(), b.count, b.type, op);
    }
    return Status::Ok();
  }

  Status Send(const Buffer& b, int peer) override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(b, "send"));
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckOtherPeer(peer, "send"));
    return Run(peer, b.data, -1, nullptr, MakeHeader(Kind::kSend, b, -1));
  }

  Status Recv(const Buffer& b, int peer) override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckUsable(b, "recv"));
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckOtherPeer(peer, "recv"));
    return Run(-1, nullptr, peer, b.data, MakeHeader(Kind::kSend, b, -1));
  }

  Status Barrier() override {
    std::lock_guard<std::mutex> lock(op_mu_);
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckAlive());
    Header h{static_cast<uint32_t>(Kind::kBarrier), 0, 0, -1, 0};
    if (rank() != 0) {
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(0, nullptr, -1, nullptr, h));
      return Run(-1, nullptr, 0, nullptr, h);
    }
    for (int peer = 1; peer < size(); ++peer) SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(-1, nullptr, peer, nullptr, h));
    for (int peer = 1; peer < size(); ++peer) SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(peer, nullptr, -1, nullptr, h));
    return Status::Ok();
  }

  bool Healthy(std::string* why) override {
    if (aborted_.load()) {
      std::lock_guard<std::mutex> lock(abort_mu_);
      *why = abort_reason_;
      return false;
    }
    for (int peer = 0; peer < size(); ++peer) {
      int fd = fds_[static_cast<size_t>(peer)];
      if (fd < 0) continue;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLIN))) {
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_PEEK);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          *why = PeerClosedMessage(peer, "a GPU operation");
          return false;
        }
      }
    }
    return true;
  }

  void Abort(const std::string& why) override {
    {
      std::lock_guard<std::mutex> lock(abort_mu_);
      if (aborted_.load()) return;
      abort_reason_ = why;
      aborted_.store(true);
    }
    for (int fd : fds_) {
      if (fd >= 0) shutdown(fd, SHUT_RDWR);
    }
  }

 private:
  Header MakeHeader(Kind kind, const Buffer& b, int root) const {
    return Header{static_cast<uint32_t>(kind), static_cast<uint32_t>(b.type), b.count, root, b.bytes()};
  }

  int Mod(int x) const { return ((x % size()) + size()) % size(); }
  int Next() const { return Mod(rank() + 1); }
  int Prev() const { return Mod(rank() - 1); }

  std::string Prefix() const { return "group '" + group_name() + "' rank " + std::to_string(rank()) + ": "; }

  std::string PeerClosedMessage(int peer, const std::string& what) const {
    return Prefix() + "rank " + std::to_string(peer) + " closed its connection during " + what +
           " (it died, failed, or left the group)";
  }

  Status CheckAlive() {
    if (!aborted_.load()) return Status::Ok();
    std::lock_guard<std::mutex> lock(abort_mu_);
    return FailedPrecondition(Prefix() + "the group was aborted (" + abort_reason_ +
                              "); destroy it and create it again");
  }

  // A call this rank refuses by itself still fails the group, so that peers already inside the
  // same operation fail at once instead of waiting out the timeout.
  Status Refuse(Status s) {
    Abort(s.message());
    return s;
  }

  Status CheckUsable(const Buffer& b, const char* what) {
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckAlive());
    if (!b.on_host()) {
      return Refuse(InvalidArgument(std::string(what) + ": the gloo (host) backend works on host memory; this buffer "
                                    "is on CUDA device " + std::to_string(b.device) + " (use backend=\"nccl\")"));
    }
    if (b.data == nullptr && b.count > 0) return Refuse(InvalidArgument(std::string(what) + ": null buffer"));
    return Status::Ok();
  }

  Status CheckPeer(int peer, const char* what) {
    if (peer < 0 || peer >= size()) {
      return Refuse(InvalidArgument(std::string(what) + " " + std::to_string(peer) + " is not a rank of group '" +
                             group_name() + "' (world size " + std::to_string(size()) + ")"));
    }
    return Status::Ok();
  }

  Status CheckOtherPeer(int peer, const char* what) {
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(CheckPeer(peer, what));
    if (peer == rank()) return Refuse(InvalidArgument(std::string(what) + ": a rank cannot " + what + " to itself"));
    return Status::Ok();
  }

  // The ring's reduce-scatter: `count` elements in size() chunks (each `slice` elements when
  // given, else an even split); after it, this rank holds the reduced chunk Mod(rank + 1 + shift).
  Status RingReduceScatter(const Header& h, char* data, size_t count, DataType type, ReduceOp op, int shift,
                           size_t slice = 0) {
    if (size() == 1) return Status::Ok();
    size_t elem = SizeOf(type);
    auto begin = [&](int chunk) {
      return slice > 0 || count == 0 ? static_cast<size_t>(chunk) * slice
                                     : count * static_cast<size_t>(chunk) / static_cast<size_t>(size());
    };
    auto length = [&](int chunk) { return begin(chunk + 1) - begin(chunk); };
    size_t largest = 0;
    for (int c = 0; c < size(); ++c) largest = std::max(largest, length(c));
    std::vector<char> incoming(largest * elem);
    for (int step = 0; step + 1 < size(); ++step) {
      int send_chunk = Mod(rank() - step + shift), recv_chunk = Mod(rank() - step - 1 + shift);
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(Next(), data + begin(send_chunk) * elem, Prev(), incoming.data(), h,
                                           length(send_chunk) * elem, length(recv_chunk) * elem));
      ReduceInto(data + begin(recv_chunk) * elem, incoming.data(), length(recv_chunk), type, op);
    }
    return Status::Ok();
  }

  // The ring's all-gather of chunks, starting from the chunk Mod(rank + shift) each rank holds.
  Status RingAllGather(const Header& h, char* data, size_t count, DataType type, int shift) {
    if (size() == 1) return Status::Ok();
    size_t elem = SizeOf(type);
    auto begin = [&](int chunk) { return count * static_cast<size_t>(chunk) / static_cast<size_t>(size()); };
    auto length = [&](int chunk) { return begin(chunk + 1) - begin(chunk); };
    for (int step = 0; step + 1 < size(); ++step) {
      int send_chunk = Mod(rank() - step + shift), recv_chunk = Mod(rank() - step - 1 + shift);
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(Run(Next(), data + begin(send_chunk) * elem, Prev(),
                                           data + begin(recv_chunk) * elem, h, length(send_chunk) * elem,
                                           length(recv_chunk) * elem));
    }
    return Status::Ok();
  }

  // Sends `header` (with `send_bytes`) and the bytes at `send_data` to `send_peer` while
  // receiving a header and `recv_bytes` into `recv_data` from `recv_peer` (either peer may be
  // -1). The received header must match `header`. On failure the group is aborted.
  Status Run(int send_peer, const void* send_data, int recv_peer, void* recv_data, Header header,
             size_t send_bytes = SIZE_MAX, size_t recv_bytes = SIZE_MAX) {
    if (send_bytes == SIZE_MAX) send_bytes = header.bytes;
    if (recv_bytes == SIZE_MAX) recv_bytes = header.bytes;
    Status s = Pump(send_peer, send_data, send_bytes, recv_peer, recv_data, recv_bytes, header);
    if (!s.ok()) Abort(s.message());
    return s;
  }

  Status Pump(int send_peer, const void* send_data, size_t send_bytes, int recv_peer, void* recv_data,
              size_t recv_bytes, Header header) {
    Header out = header;
    out.bytes = send_bytes;
    Header in{};
    // Pieces to send: header, payload. Pieces to receive: header, then (once checked) payload.
    const char* send_ptr[2] = {reinterpret_cast<const char*>(&out), static_cast<const char*>(send_data)};
    size_t send_left[2] = {send_peer >= 0 ? sizeof(Header) : 0, send_peer >= 0 ? send_bytes : 0};
    char* recv_ptr = reinterpret_cast<char*>(&in);
    size_t recv_left = recv_peer >= 0 ? sizeof(Header) : 0;
    bool header_done = recv_peer < 0;
    int send_fd = send_peer >= 0 ? fds_[static_cast<size_t>(send_peer)] : -1;
    int recv_fd = recv_peer >= 0 ? fds_[static_cast<size_t>(recv_peer)] : -1;
    const char* what = KindName(static_cast<Kind>(header.kind));
    auto deadline = Clock::now() + options_.op_timeout;
    int piece = 0;
    while (send_left[0] + send_left[1] > 0 || recv_left > 0 || !header_done) {
      if (recv_left == 0 && !header_done) {
        header_done = true;
        if (in.kind != header.kind || in.dtype != header.dtype || in.count != header.count || in.root != header.root) {
          return InvalidArgument(Prefix() + "this rank called " + Describe(header) + " but rank " +
                                 std::to_string(recv_peer) + " called " + Describe(in) +
                                 "; every rank must make the same calls in the same order");
        }
        if (in.bytes != recv_bytes) {
          return InvalidArgument(Prefix() + "rank " + std::to_string(recv_peer) + " sent " + std::to_string(in.bytes) +
                                 " bytes where " + std::to_string(recv_bytes) + " were expected (" + what + ")");
        }
        recv_ptr = static_cast<char*>(recv_data);
        recv_left = recv_bytes;
        continue;
      }
      if (aborted_.load()) return CheckAlive();
      while (piece < 2 && send_left[piece] == 0) ++piece;
      pollfd fds[2];
      int n = 0;
      int send_index = -1, recv_index = -1;
      if (piece < 2 && send_fd >= 0) {
        fds[n] = {send_fd, POLLOUT, 0};
        send_index = n++;
      }
      if (recv_left > 0) {
        if (send_index >= 0 && recv_fd == send_fd) {
          fds[send_index].events |= POLLIN;
          recv_index = send_index;
        } else {
          fds[n] = {recv_fd, POLLIN, 0};
          recv_index = n++;
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        int waiting_on = recv_left > 0 ? recv_peer : send_peer;
        return DeadlineExceeded(Prefix() + what + " made no progress with rank " + std::to_string(waiting_on) +
                                " for " + Seconds(options_.op_timeout) +
                                " (is it stuck, or not calling the same operation?)");
      }
      int ready = poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min<long long>(left, 1000)));
      if (ready < 0 && errno != EINTR) return Internal(Errno("poll"));
      if (ready <= 0) continue;
      bool progressed = false;
      if (send_index >= 0 && (fds[send_index].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t k = send(send_fd, send_ptr[piece], send_left[piece], MSG_NOSIGNAL);
        if (k > 0) {
          send_ptr[piece] += k;
          send_left[piece] -= static_cast<size_t>(k);
          progressed = true;
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
          if (aborted_.load()) return CheckAlive();
          return Aborted(PeerClosedMessage(send_peer, what));
        }
      }
      if (recv_index >= 0 && (fds[recv_index].revents & (POLLIN | POLLERR | POLLHUP))) {
        ssize_t k = recv(recv_fd, recv_ptr, recv_left, 0);
        if (k > 0) {
          recv_ptr += k;
          recv_left -= static_cast<size_t>(k);
          progressed = true;
        } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
          if (aborted_.load()) return CheckAlive();
          return Aborted(PeerClosedMessage(recv_peer, what));
        }
      }
      if (progressed) deadline = Clock::now() + options_.op_timeout;
    }
    return Status::Ok();
  }

  // Answers connections that arrive after the group formed: probes from a process that wants
  // this rank (told it is alive), and late joiners (refused).
  void ServeLateConnections() {
    for (;;) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      int n = poll(p, stop_pipe_[0] >= 0 ? 2 : 1, 1000);
      if (n < 0 && errno != EINTR) return;
      if (stop_pipe_[0] >= 0 && (p[1].revents & POLLIN)) return;
      if (n <= 0 || !(p[0].revents & POLLIN)) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      auto deadline = Clock::now() + std::chrono::seconds(2);
      Hello hello{};
      std::string name;
      if (ReadHello(fd, &hello, &name, deadline).ok()) {
        if (aborted_.load()) {
          // An aborted group holds its rank no more: a restarted rank retries until this one is
          // destroyed (and its key replaced).
          (void)SendReply(fd, kReplyRetry, "the group was aborted", deadline);
        } else if (hello.rank == kProbeRank && name == group_name() && hello.nonce == nonce_) {
          (void)SendReply(fd, kReplyAlive, "", deadline);
        } else if (name == group_name() && hello.nonce == nonce_) {
          (void)SendReply(fd, kReplyFatal,
                          "group '" + group_name() + "' has already formed; rank " + std::to_string(hello.rank) +
                              " is held by another process (a rank joins once)",
                          deadline);
        } else {
          (void)SendReply(fd, kReplyRetry, "stale address", deadline);
        }
      }
      close(fd);
    }
  }

  static Status ReadHello(int fd, Hello* hello, std::string* name, Clock::time_point deadline) {
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(ReadAll(fd, hello, sizeof(Hello), deadline));
    if (std::memcmp(hello->magic, kMagic, 4) != 0 || hello->name_len > 4096) {
      return InvalidArgument("not a Shoal collective peer");
    }
    name->assign(hello->name_len, '\0');
    return ReadAll(fd, name->data(), hello->name_len, deadline);
  }


  const GroupOptions options_;
  const uint64_t nonce_;
  int listen_fd_;
  std::vector<int> fds_;  // per peer rank; -1 for this rank
  int stop_pipe_[2] = {-1, -1};
  std::thread acceptor_;
  std::mutex op_mu_;
  std::mutex abort_mu_;
  std::atomic<bool> aborted_{false};
  std::string abort_reason_;
};

Status HostCommunicator::ConnectToRank(int peer, KeyValue& kv, Clock::time_point deadline) {
  std::string last_problem = "rank " + std::to_string(peer) + " has not published its address";
  while (Clock::now() < deadline) {
    std::string value, host;
    int port = 0;
    uint64_t nonce = 0;
    Status s = kv.Get(RankKey(group_name(), peer), &value);
    if (s.ok() && ParseAddress(value, &host, &port, &nonce)) {
      int fd = ConnectTo(host, port, deadline);
      if (fd < 0) {
        last_problem = "rank " + std::to_string(peer) + " at " + host + ":" + std::to_string(port) + " refused";
      } else {
        Hello hello{};
        std::memcpy(hello.magic, kMagic, 4);
        hello.rank = rank();
        hello.world = size();
        hello.name_len = static_cast<uint32_t>(group_name().size());
        hello.nonce = nonce;
        ReplyCode code = kReplyRetry;
        std::string message;
        Status io = WriteAll(fd, &hello, sizeof(hello), deadline);
        if (io.ok()) io = WriteAll(fd, group_name().data(), group_name().size(), deadline);
        if (io.ok()) io = ReadReply(fd, &code, &message, deadline);
        if (io.ok() && code == kReplyOk) {
          fds_[static_cast<size_t>(peer)] = fd;
          return Status::Ok();
        }
        close(fd);
        if (io.ok() && code == kReplyFatal) return InvalidArgument(Prefix() + message);
        last_problem = io.ok() ? "rank " + std::to_string(peer) + ": " + message : io.message();
      }
    } else if (!s.ok() && s.code() != Code::kNotFound) {
      last_problem = s.message();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return DeadlineExceeded(Prefix() + "could not join within " + Seconds(options_.join_timeout) + ": " + last_problem + " (did every rank call init with the same group name?)");
}

Status HostCommunicator::AcceptHigherRanks(Clock::time_point deadline) {
  int missing = size() - 1 - rank();
  while (missing > 0) {
    if (!WaitFd(listen_fd_, POLLIN, deadline)) {
      std::string absent;
      for (int r = rank() + 1; r < size(); ++r) {
        if (fds_[static_cast<size_t>(r)] < 0) absent += (absent.empty() ? "" : ", ") + std::to_string(r);
      }
      return DeadlineExceeded(Prefix() + "ranks " + absent + " did not join within " +
                              Seconds(options_.join_timeout));
    }
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    SetNoDelay(fd);
    auto hello_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(5));
    Hello hello{};
    std::string name;
    if (!ReadHello(fd, &hello, &name, hello_deadline).ok()) {
      close(fd);
      continue;
    }
    auto reject = [&](ReplyCode code, const std::string& why) {
      (void)SendReply(fd, code, why, hello_deadline);
      close(fd);
    };
    if (name != group_name() || hello.nonce != nonce_) {
      reject(kReplyRetry, "stale address");
    } else if (hello.rank == kProbeRank) {
      reject(kReplyAlive, "");
    } else if (hello.world != size()) {
      reject(kReplyFatal, "rank " + std::to_string(rank()) + " of group '" + group_name() + "' has world size " +
                              std::to_string(size()) + ", rank " + std::to_string(hello.rank) + " has " +
                              std::to_string(hello.world));
    } else if (hello.rank <= rank() || hello.rank >= size()) {
      reject(kReplyFatal, "rank " + std::to_string(hello.rank) + " is not a valid rank to connect to rank " +
                              std::to_string(rank()));
    } else if (fds_[static_cast<size_t>(hello.rank)] >= 0) {
      reject(kReplyFatal, "rank " + std::to_string(hello.rank) + " of group '" + group_name() +
                              "' already joined from another process (a rank joins once)");
    } else if (SendReply(fd, kReplyOk, "", hello_deadline).ok()) {
      fds_[static_cast<size_t>(hello.rank)] = fd;
      --missing;
    } else {
      close(fd);
    }
  }
  return Status::Ok();
}

// True when the process that published `value` under our key still holds the rank.
bool HolderAlive(const std::string& group, const std::string& value) {
  std::string host;
  int port = 0;
  uint64_t nonce = 0;
  if (!ParseAddress(value, &host, &port, &nonce)) return false;
  auto deadline = Clock::now() + std::chrono::seconds(2);
  int fd = ConnectTo(host, port, deadline);
  if (fd < 0) return false;
  Hello hello{};
  std::memcpy(hello.magic, kMagic, 4);
  hello.rank = kProbeRank;
  hello.name_len = static_cast<uint32_t>(group.size());
  hello.nonce = nonce;
  ReplyCode code = kReplyRetry;
  std::string message;
  bool alive = WriteAll(fd, &hello, sizeof(hello), deadline).ok() &&
               WriteAll(fd, group.data(), group.size(), deadline).ok() &&
               ReadReply(fd, &code, &message, deadline).ok() && code == kReplyAlive;
  close(fd);
  return alive;
}

}  // namespace

std::string RankKey(const std::string& group_name, int rank) { return group_name + "/rank/" + std::to_string(rank); }

Status JoinHostGroup(const GroupOptions& options, KeyValue& kv, std::unique_ptr<Communicator>* out) {
  if (options.group_name.empty()) return InvalidArgument("a collective group needs a name");
  if (options.world_size < 1) {
    return InvalidArgument("world_size must be at least 1, got " + std::to_string(options.world_size));
  }
  if (options.rank < 0 || options.rank >= options.world_size) {
    return InvalidArgument("rank must be in [0, " + std::to_string(options.world_size) + "), got " +
                           std::to_string(options.rank));
  }
  if (options.op_timeout.count() <= 0 || options.join_timeout.count() <= 0) {
    return InvalidArgument("collective timeouts must be positive");
  }
  auto deadline = Clock::now() + options.join_timeout;

  // Listen on an ephemeral port of bind_host.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (getaddrinfo(options.bind_host.c_str(), "0", &hints, &res) != 0 || res == nullptr) {
    return InvalidArgument("cannot listen on '" + options.bind_host + "': not a numeric IP address");
  }
  int listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  if (listen_fd >= 0) setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (listen_fd < 0 || bind(listen_fd, res->ai_addr, res->ai_addrlen) != 0 || listen(listen_fd, 128) != 0) {
    std::string error = Errno("listen");
    freeaddrinfo(res);
    if (listen_fd >= 0) close(listen_fd);
    return Unavailable("cannot listen on " + options.bind_host + ": " + error);
  }
  freeaddrinfo(res);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);

  std::random_device rd;
  uint64_t nonce = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(getpid());
  auto comm = std::make_unique<HostCommunicator>(options, nonce, listen_fd);

  // Publish this rank's address; a key held by a live process means the rank is taken.
  char nonce_hex[17];
  std::snprintf(nonce_hex, sizeof(nonce_hex), "%016llx", static_cast<unsigned long long>(nonce));
  bool ipv6 = options.bind_host.find(':') != std::string::npos;
  std::string value = (ipv6 ? "[" + options.bind_host + "]" : options.bind_host) + ":" + std::to_string(port) + "|" +
                      nonce_hex;
  std::string key = RankKey(options.group_name, options.rank);
  bool added = false;
  SHOAL_COLLECTIVE_RETURN_IF_ERROR(kv.Put(key, value, /*overwrite=*/false, &added));
  if (!added) {
    std::string existing;
    if (kv.Get(key, &existing).ok() && HolderAlive(options.group_name, existing)) {
      return AlreadyExists("rank " + std::to_string(options.rank) + " of collective group '" + options.group_name +
                           "' is already held by a live process (a rank joins once; destroy the group first)");
    }
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(kv.Put(key, value, /*overwrite=*/true, &added));
  }

  Status s = Status::Ok();
  for (int peer = 0; peer < options.rank && s.ok(); ++peer) s = comm->ConnectToRank(peer, kv, deadline);
  if (s.ok()) s = comm->AcceptHigherRanks(deadline);
  if (!s.ok()) {
    std::string current;
    if (kv.Get(key, &current).ok() && current == value) (void)kv.Delete(key);
    return s;
  }
  comm->Start();
  *out = std::move(comm);
  return Status::Ok();
}

}  // namespace shoal::collective
