#include "src/object_store/store_server.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <filesystem>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/object_store/file_spiller.h"
#include "src/object_store/protocol.h"
#include "src/object_store/store_core.h"

namespace shoal {
namespace {

namespace proto = store_protocol;
using Clock = std::chrono::steady_clock;

// epoll tags: client ids count up from 1, so these never collide with one.
constexpr uint64_t kListenTag = ~uint64_t{0};
constexpr uint64_t kWakeTag = kListenTag - 1;
constexpr int kMaxEvents = 64;
// A client stops being read while this many reply bytes wait for it to read them.
constexpr size_t kMaxPendingOutput = 4 << 20;
constexpr size_t kMaxParkedGetsPerClient = 1024;

absl::StatusCode CodeOfErrno(int err) {
  return err == ENOMEM || err == ENOSPC ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kUnavailable;
}

// Sends `len` bytes with `fd` attached (SCM_RIGHTS), without blocking.
ssize_t SendWithFd(int sock, const char* data, size_t len, int fd) {
  iovec iov{const_cast<char*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

class StoreServer::Impl {
 public:
  explicit Impl(StoreServerOptions options) : options_(std::move(options)) {}
  ~Impl() { Stop(); }

  absl::Status Start();
  void Stop();
  const std::string& socket_path() const { return options_.socket_path; }

 private:
  struct Client {
    StoreClientId id = 0;
    int fd = -1;
    proto::FrameBuffer in;
    std::string out;  // replies; out[out_pos..] not yet written
    size_t out_pos = 0;
    std::optional<size_t> arena_fd_at;  // where in `out` the Connect reply (with the fd) starts
    bool connected = false;             // has sent Connect
    bool closing = false;               // closed at the end of this loop iteration
    uint32_t events = 0;                // registered epoll interest
    size_t parked_gets = 0;
  };
  // A Get waiting for some of its objects to be sealed.
  struct ParkedGet {
    StoreClientId client = 0;
    uint64_t request_id = 0;
    std::vector<ObjectId> ids;
    std::vector<proto::GetEntry> entries;
    std::vector<bool> waiting;  // per entry: not answered yet
    size_t num_waiting = 0;
    int64_t timeout_ms = -1;
    std::optional<Clock::time_point> deadline;
  };

  absl::Status CreateArena();
  absl::Status Listen();
  void Teardown();  // frees whatever Start created; the loop must not be running

  void Loop();
  void Accept();
  // Reads what the socket has and answers every complete request.
  void OnReadable(Client& c);
  void OnWritable(Client& c);
  // Answers buffered requests and writes replies while the client keeps up.
  void Serve(Client& c);
  // Answers complete frames in c.in; false when it stopped because c.out is backed up.
  bool ProcessInput(Client& c);
  void Handle(Client& c, proto::Request& request);
  void HandleGet(Client& c, proto::Request& request);
  // Answers the parked Gets waiting for `id`, which was just sealed.
  void WakeGets(const ObjectId& id);
  // The reply to `get` (takes its entries), with NotFound for the entries still waiting.
  proto::Reply GetReply(ParkedGet& get);
  // Sends a parked Get's reply now and forgets it.
  void FinishGet(uint64_t seq);
  // Removes a parked Get from the waiter lists, the deadlines and its client's count.
  void ForgetParkedGet(uint64_t seq, const ParkedGet& get);
  void ExpireGets(Clock::time_point now);
  int TimeoutMs(Clock::time_point now) const;
  // Answers `status` in an error frame and closes the connection: for unparseable input.
  void Reject(Client& c, uint64_t request_id, const absl::Status& status);
  void Flush(Client& c);
  void UpdateInterest(Client& c);
  void MarkClosing(Client& c);
  void CloseClient(StoreClientId id);

  const StoreServerOptions options_;
  bool started_ = false;
  int arena_fd_ = -1;
  uint8_t* base_ = nullptr;
  int listen_fd_ = -1;
  bool socket_bound_ = false;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;

  // Loop thread only, once started.
  std::unique_ptr<Spiller> spiller_;
  std::unique_ptr<StoreCore> core_;
  absl::flat_hash_map<StoreClientId, std::unique_ptr<Client>> clients_;
  StoreClientId next_client_id_ = 1;
  std::vector<StoreClientId> closing_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<ParkedGet>> parked_;  // by sequence number
  uint64_t next_parked_seq_ = 1;
  // Per object: the (parked Get, entry index) pairs waiting for it to be sealed.
  absl::flat_hash_map<ObjectId, std::vector<std::pair<uint64_t, size_t>>> waiters_;
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines_;
};

absl::Status StoreServer::Impl::Start() {
  if (started_) return absl::FailedPreconditionError("the object store was already started");
  if (options_.capacity == 0) return absl::InvalidArgumentError("object store capacity must be positive");
  started_ = true;
  absl::Status status = CreateArena();
  if (status.ok() && !options_.spill_dir.empty()) {
    auto spiller = FileSpiller::Create({.dir = options_.spill_dir});
    if (spiller.ok()) {
      spiller_ = *std::move(spiller);
    } else {
      status = spiller.status();
    }
  }
  if (status.ok()) {
    core_ = std::make_unique<StoreCore>(base_, StoreCoreOptions{.capacity = options_.capacity}, spiller_.get());
    status = Listen();
  }
  if (!status.ok()) {
    Teardown();
    return status;
  }
  thread_ = std::thread([this] { Loop(); });
  spdlog::info("object store: {} bytes{} at {}{}", options_.capacity, options_.prefault ? " (prefaulted)" : "",
               options_.socket_path, spiller_ ? absl::StrCat(", spilling to ", options_.spill_dir) : "");
  return absl::OkStatus();
}

absl::Status StoreServer::Impl::CreateArena() {
  arena_fd_ = memfd_create("shoal-object-store", MFD_CLOEXEC);
  if (arena_fd_ < 0) return proto::ErrnoStatus(CodeOfErrno(errno), "memfd_create", errno);
  if (ftruncate(arena_fd_, static_cast<off_t>(options_.capacity)) != 0) {
    return proto::ErrnoStatus(CodeOfErrno(errno), absl::StrCat("sizing the arena to ", options_.capacity, " bytes"),
                              errno);
  }
  const int flags = MAP_SHARED | (options_.prefault ? MAP_POPULATE : 0);
  void* base = mmap(nullptr, options_.capacity, PROT_READ | PROT_WRITE, flags, arena_fd_, 0);
  if (base == MAP_FAILED) {
    return proto::ErrnoStatus(CodeOfErrno(errno), absl::StrCat("mapping ", options_.capacity, " bytes"), errno);
  }
  base_ = static_cast<uint8_t*>(base);
  return absl::OkStatus();
}

absl::Status StoreServer::Impl::Listen() {
  absl::StatusOr<sockaddr_un> addr = proto::UnixSocketAddress(options_.socket_path);
  if (!addr.ok()) return addr.status();
  const std::filesystem::path parent = std::filesystem::path(options_.socket_path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));

  // A socket file nobody answers on is stale (a store that died); a live one is not ours.
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    const bool live = connect(probe, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0;
    close(probe);
    if (live) {
      return absl::AlreadyExistsError(absl::StrCat("another object store is listening on ", options_.socket_path));
    }
  }
  if (unlink(options_.socket_path.c_str()) != 0 && errno != ENOENT) {
    return proto::ErrnoStatus(absl::StatusCode::kUnavailable, absl::StrCat("removing stale ", options_.socket_path),
                              errno);
  }
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return proto::ErrnoStatus(absl::StatusCode::kUnavailable, "socket", errno);
  if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    return proto::ErrnoStatus(absl::StatusCode::kUnavailable, absl::StrCat("bind ", options_.socket_path), errno);
  }
  socket_bound_ = true;
  if (chmod(options_.socket_path.c_str(), 0600) != 0 || listen(listen_fd_, SOMAXCONN) != 0) {
    return proto::ErrnoStatus(absl::StatusCode::kUnavailable, absl::StrCat("listen ", options_.socket_path), errno);
  }

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return proto::ErrnoStatus(absl::StatusCode::kUnavailable, "epoll_create1", errno);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return proto::ErrnoStatus(absl::StatusCode::kUnavailable, "eventfd", errno);
  for (auto [fd, tag] : {std::pair{listen_fd_, kListenTag}, std::pair{wake_fd_, kWakeTag}}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return proto::ErrnoStatus(absl::StatusCode::kUnavailable, "epoll_ctl", errno);
    }
  }
  return absl::OkStatus();
}

void StoreServer::Impl::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) != sizeof one) {
      spdlog::error("object store: cannot wake the loop: {}", std::strerror(errno));
    }
    thread_.join();
  }
  Teardown();
}

void StoreServer::Impl::Teardown() {
  std::vector<StoreClientId> ids;
  for (const auto& [id, client] : clients_) ids.push_back(id);
  for (StoreClientId id : ids) CloseClient(id);
  closing_.clear();
  core_.reset();
  spiller_.reset();
  if (base_ != nullptr) munmap(base_, options_.capacity);
  base_ = nullptr;
  CloseFd(arena_fd_);
  CloseFd(listen_fd_);
  CloseFd(epoll_fd_);
  CloseFd(wake_fd_);
  if (socket_bound_) unlink(options_.socket_path.c_str());
  socket_bound_ = false;
}

void StoreServer::Impl::Loop() {
  epoll_event events[kMaxEvents];
  const auto busy_poll = std::chrono::microseconds(std::max<int64_t>(options_.busy_poll_us, 0));
  Clock::time_point poll_until;  // poll without sleeping until then (see busy_poll_us)
  while (true) {
    const Clock::time_point now = Clock::now();
    const bool polling = now < poll_until;
    if (polling) sched_yield();  // a client on this CPU runs first
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, polling ? 0 : TimeoutMs(now));
    if (n > 0) poll_until = Clock::now() + busy_poll;
    if (n < 0 && errno != EINTR) {
      spdlog::error("object store: epoll_wait: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) return;  // Stop()
      if (tag == kListenTag) {
        Accept();
        continue;
      }
      auto it = clients_.find(tag);
      if (it == clients_.end() || it->second->closing) continue;
      Client& c = *it->second;
      const uint32_t ev = events[i].events;
      if (ev & (EPOLLERR | EPOLLHUP)) {
        MarkClosing(c);  // nobody can read our replies any more
        continue;
      }
      if (ev & EPOLLOUT) OnWritable(c);
      if ((ev & (EPOLLIN | EPOLLRDHUP)) && !c.closing) OnReadable(c);
    }
    ExpireGets(Clock::now());
    for (StoreClientId id : closing_) CloseClient(id);
    closing_.clear();
  }
}

void StoreServer::Impl::Accept() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        spdlog::warn("object store: accept: {}", std::strerror(errno));
      }
      return;
    }
    auto client = std::make_unique<Client>();
    client->id = next_client_id_++;
    client->fd = fd;
    Client& c = *client;
    clients_.emplace(c.id, std::move(client));
    UpdateInterest(c);
  }
}

void StoreServer::Impl::OnReadable(Client& c) {
  auto [buf, len] = c.in.WritableSpace();
  const ssize_t n = recv(c.fd, buf, len, MSG_DONTWAIT);
  if (n == 0) {
    MarkClosing(c);  // the client went away
    return;
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) MarkClosing(c);
    return;
  }
  c.in.Commit(static_cast<size_t>(n));
  Serve(c);
}

void StoreServer::Impl::OnWritable(Client& c) {
  Flush(c);
  if (c.out.empty() && !c.closing) Serve(c);  // requests read while the client was behind
}

void StoreServer::Impl::Serve(Client& c) {
  while (true) {
    const bool finished = ProcessInput(c);
    Flush(c);
    if (finished || c.closing || !c.out.empty()) return;
  }
}

bool StoreServer::Impl::ProcessInput(Client& c) {
  while (!c.closing) {
    if (c.out.size() - c.out_pos > kMaxPendingOutput) return false;
    absl::StatusOr<std::optional<proto::FrameBuffer::Frame>> frame = c.in.Next();
    if (!frame.ok()) {
      Reject(c, 0, frame.status());
      break;
    }
    if (!frame->has_value()) break;
    absl::StatusOr<proto::Request> request = proto::DecodeRequest((*frame)->header, (*frame)->body);
    if (!request.ok()) {
      Reject(c, (*frame)->header.request_id, request.status());
      break;
    }
    Handle(c, *request);
  }
  return true;
}

void StoreServer::Impl::Handle(Client& c, proto::Request& request) {
  proto::Reply reply;
  reply.type = request.type;
  reply.request_id = request.request_id;
  switch (request.type) {
    case proto::MessageType::kConnect:
      if (c.connected) {
        reply.status = absl::FailedPreconditionError("this connection has already received the arena");
        break;
      }
      c.connected = true;
      reply.capacity = options_.capacity;
      reply.prefaulted = options_.prefault;
      c.arena_fd_at = c.out.size();
      break;
    case proto::MessageType::kCreate: {
      absl::StatusOr<ObjectLocation> location =
          core_->Create(c.id, request.id, request.data_size, request.metadata_size, request.primary);
      if (location.ok()) {
        reply.location = *location;
      } else {
        reply.status = location.status();
      }
      break;
    }
    case proto::MessageType::kSeal:
      reply.status = core_->Seal(c.id, request.id);
      if (reply.status.ok()) WakeGets(request.id);
      break;
    case proto::MessageType::kAbort:
      reply.status = core_->Abort(c.id, request.id);
      break;
    case proto::MessageType::kGet:
      HandleGet(c, request);
      return;
    case proto::MessageType::kRelease:
      reply.status = core_->Release(c.id, request.id);
      break;
    case proto::MessageType::kDelete:
      reply.status = core_->Delete(request.id);
      break;
    case proto::MessageType::kContains:
      reply.found = core_->Contains(request.id);
      break;
    case proto::MessageType::kStats:
      reply.stats = core_->Stats();
      break;
    case proto::MessageType::kError:  // DecodeRequest refuses it
      reply.status = absl::InvalidArgumentError("not a request");
      break;
  }
  proto::EncodeReply(reply, &c.out);
}

void StoreServer::Impl::HandleGet(Client& c, proto::Request& request) {
  if (request.timeout_ms != 0 && c.parked_gets >= kMaxParkedGetsPerClient) {
    proto::Reply reply;
    reply.type = request.type;
    reply.request_id = request.request_id;
    reply.status =
        absl::ResourceExhaustedError(absl::StrCat("this connection already has ", c.parked_gets, " Gets waiting"));
    proto::EncodeReply(reply, &c.out);
    return;
  }
  auto get = std::make_unique<ParkedGet>();
  get->client = c.id;
  get->request_id = request.request_id;
  get->timeout_ms = request.timeout_ms;
  get->entries.resize(request.ids.size());
  get->waiting.resize(request.ids.size());
  for (size_t i = 0; i < request.ids.size(); ++i) {
    absl::StatusOr<ObjectLocation> location = core_->Get(c.id, request.ids[i]);
    if (location.ok()) {
      get->entries[i].location = *location;
    } else if (absl::IsUnavailable(location.status())) {  // not sealed yet
      get->waiting[i] = true;
      get->num_waiting++;
    } else {
      get->entries[i].status = location.status();
    }
  }
  get->ids = std::move(request.ids);
  if (get->num_waiting == 0 || request.timeout_ms == 0) {  // answer now
    proto::EncodeReply(GetReply(*get), &c.out);
    return;
  }
  const uint64_t seq = next_parked_seq_++;
  for (size_t i = 0; i < get->ids.size(); ++i) {
    if (get->waiting[i]) waiters_[get->ids[i]].emplace_back(seq, i);
  }
  if (request.timeout_ms > 0) {
    get->deadline = Clock::now() + std::chrono::milliseconds(request.timeout_ms);
    deadlines_.emplace(*get->deadline, seq);
  }
  c.parked_gets++;
  parked_.emplace(seq, std::move(get));
}

void StoreServer::Impl::WakeGets(const ObjectId& id) {
  auto node = waiters_.extract(id);
  if (node.empty()) return;
  for (auto [seq, index] : node.mapped()) {
    auto it = parked_.find(seq);
    if (it == parked_.end()) continue;  // finished while we went through the list
    ParkedGet& get = *it->second;
    absl::StatusOr<ObjectLocation> location = core_->Get(get.client, id);
    if (location.ok()) {
      get.entries[index].location = *location;
    } else {
      get.entries[index].status = location.status();
    }
    get.waiting[index] = false;
    if (--get.num_waiting == 0) FinishGet(seq);
  }
}

proto::Reply StoreServer::Impl::GetReply(ParkedGet& get) {
  proto::Reply reply;
  reply.type = proto::MessageType::kGet;
  reply.request_id = get.request_id;
  reply.entries = std::move(get.entries);
  for (size_t i = 0; i < get.ids.size(); ++i) {
    if (!get.waiting[i]) continue;
    reply.entries[i].status = absl::NotFoundError(
        get.timeout_ms == 0
            ? absl::StrCat("object ", get.ids[i].Hex(), " is not sealed in this store")
            : absl::StrCat("object ", get.ids[i].Hex(), " was not sealed within ", get.timeout_ms, " ms"));
  }
  return reply;
}

void StoreServer::Impl::FinishGet(uint64_t seq) {
  auto node = parked_.extract(seq);
  if (node.empty()) return;
  ParkedGet& get = *node.mapped();
  ForgetParkedGet(seq, get);
  auto it = clients_.find(get.client);
  if (it == clients_.end()) return;
  Client& c = *it->second;
  proto::EncodeReply(GetReply(get), &c.out);
  Flush(c);
}

void StoreServer::Impl::ForgetParkedGet(uint64_t seq, const ParkedGet& get) {
  if (get.deadline) deadlines_.erase({*get.deadline, seq});
  for (size_t i = 0; i < get.ids.size(); ++i) {
    if (!get.waiting[i]) continue;
    auto it = waiters_.find(get.ids[i]);
    if (it == waiters_.end()) continue;
    std::vector<std::pair<uint64_t, size_t>>& list = it->second;
    std::erase_if(list, [seq](const auto& waiter) { return waiter.first == seq; });
    if (list.empty()) waiters_.erase(it);
  }
  auto it = clients_.find(get.client);
  if (it != clients_.end()) it->second->parked_gets--;
}

void StoreServer::Impl::ExpireGets(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) FinishGet(deadlines_.begin()->second);
}

int StoreServer::Impl::TimeoutMs(Clock::time_point now) const {
  if (deadlines_.empty()) return -1;
  const auto left = deadlines_.begin()->first - now;
  if (left <= Clock::duration::zero()) return 0;
  // Round up, so the loop never wakes just before a deadline and spins.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

void StoreServer::Impl::Reject(Client& c, uint64_t request_id, const absl::Status& status) {
  spdlog::warn("object store: closing client {}: {}", c.id, std::string(status.message()));
  proto::Reply reply;
  reply.type = proto::MessageType::kError;
  reply.request_id = request_id;
  reply.status = status;
  proto::EncodeReply(reply, &c.out);
  Flush(c);  // best effort: the connection closes either way
  MarkClosing(c);
}

void StoreServer::Impl::Flush(Client& c) {
  while (c.out_pos < c.out.size()) {
    const char* data = c.out.data() + c.out_pos;
    ssize_t n;
    const bool with_fd = c.arena_fd_at == c.out_pos;
    if (with_fd) {
      n = SendWithFd(c.fd, data, c.out.size() - c.out_pos, arena_fd_);
    } else {
      // Stop before the Connect reply: its first byte must carry the descriptor.
      const size_t end = c.arena_fd_at.value_or(c.out.size());
      n = send(c.fd, data, end - c.out_pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) MarkClosing(c);
      break;
    }
    if (with_fd) c.arena_fd_at.reset();
    c.out_pos += static_cast<size_t>(n);
  }
  if (c.out_pos == c.out.size()) {
    c.out.clear();
    c.out_pos = 0;
  }
  UpdateInterest(c);
}

void StoreServer::Impl::UpdateInterest(Client& c) {
  if (c.closing) return;  // CloseClient unregisters it
  // Read requests only while replies flow out; hang-ups are always reported.
  const uint32_t want = c.out.empty() ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
  if (want == c.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c.id;
  if (epoll_ctl(epoll_fd_, c.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev) != 0) {
    spdlog::warn("object store: epoll_ctl for client {}: {}", c.id, std::strerror(errno));
    MarkClosing(c);
    return;
  }
  c.events = want;
}

void StoreServer::Impl::MarkClosing(Client& c) {
  if (c.closing) return;
  c.closing = true;
  closing_.push_back(c.id);
}

void StoreServer::Impl::CloseClient(StoreClientId id) {
  auto node = clients_.extract(id);
  if (node.empty()) return;
  Client& c = *node.mapped();
  std::vector<uint64_t> gets;
  for (const auto& [seq, get] : parked_) {
    if (get->client == id) gets.push_back(seq);
  }
  for (uint64_t seq : gets) {
    auto get = parked_.extract(seq);
    ForgetParkedGet(seq, *get.mapped());
  }
  core_->DisconnectClient(id);  // releases its references, aborts its unsealed objects
  if (c.events != 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
}

StoreServer::StoreServer(StoreServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
StoreServer::~StoreServer() = default;
absl::Status StoreServer::Start() { return impl_->Start(); }
void StoreServer::Stop() { impl_->Stop(); }
const std::string& StoreServer::socket_path() const { return impl_->socket_path(); }

}  // namespace shoal
