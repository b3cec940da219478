#include "src/object_store/client.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "src/common/system.h"
#include "src/object_store/protocol.h"

namespace shoal {
namespace {

namespace proto = store_protocol;

absl::Status SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return proto::ErrnoStatus(absl::StatusCode::kUnavailable, "object store connection lost", errno);
    }
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Receives into `buf`; a descriptor passed with the bytes goes to `*fd` if it is still -1
// (any other is closed). Answers what recvmsg answers.
ssize_t RecvWithFd(int sock, char* buf, size_t len, int* fd) {
  iovec iov{buf, len};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      if (*fd < 0) {
        *fd = received;
      } else {
        close(received);
      }
    }
  }
  return n;
}

// recv, but polling for a short while before it sleeps: most replies come within microseconds,
// and waking a sleeping thread costs tens of microseconds on a VM.
ssize_t RecvSoon(int sock, char* buf, size_t len) {
  constexpr auto kPoll = std::chrono::microseconds(50);
  const auto until = std::chrono::steady_clock::now() + kPoll;
  do {
    const ssize_t n = recv(sock, buf, len, MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return n;
    sched_yield();  // the store's loop may be waiting for this CPU
  } while (std::chrono::steady_clock::now() < until);
  return recv(sock, buf, len, 0);
}

// Reads from `sock` into `in` until it holds a whole frame, and decodes it as a reply.
// `fd` as in RecvWithFd, or null when no descriptor is expected.
absl::StatusOr<proto::Reply> ReadReply(int sock, proto::FrameBuffer& in, int* fd) {
  while (true) {
    absl::StatusOr<std::optional<proto::FrameBuffer::Frame>> frame = in.Next();
    if (!frame.ok()) {
      return absl::UnavailableError(absl::StrCat("object store sent a bad frame: ", frame.status().message()));
    }
    if (frame->has_value()) {
      absl::StatusOr<proto::Reply> reply = proto::DecodeReply((*frame)->header, (*frame)->body);
      if (!reply.ok()) {
        return absl::UnavailableError(absl::StrCat("object store sent a bad reply: ", reply.status().message()));
      }
      if (reply->type == proto::MessageType::kError) {  // the store could not parse our request
        return absl::UnavailableError(
            absl::StrCat("the object store closed the connection: ", reply->status.message()));
      }
      return reply;
    }
    auto [buf, len] = in.WritableSpace();
    const ssize_t n = fd != nullptr ? RecvWithFd(sock, buf, len, fd) : RecvSoon(sock, buf, len);
    if (n == 0) return absl::UnavailableError("the object store closed the connection");
    if (n < 0) {
      if (errno == EINTR) continue;
      return proto::ErrnoStatus(absl::StatusCode::kUnavailable, "object store connection lost", errno);
    }
    in.Commit(static_cast<size_t>(n));
  }
}

// Copies `n` bytes, on several threads when that is worth it: one core does not saturate the
// memory bandwidth (on a 2-core VM: 64 MiB at about 7.5 GB/s alone, over 20 GB/s on two).
void CopyInto(uint8_t* dst, const void* src, uint64_t n) {
  constexpr uint64_t kMinPerThread = 8 << 20, kMaxThreads = 8;
  const uint64_t threads =
      n < 2 * kMinPerThread
          ? 1
          : std::min<uint64_t>(
                {n / kMinPerThread, static_cast<uint64_t>(std::max<int64_t>(DetectCpuCount(), 1)), kMaxThreads});
  if (threads <= 1) {
    std::memcpy(dst, src, n);
    return;
  }
  struct Part {
    uint8_t* dst;
    const uint8_t* src;
    uint64_t n;
  };
  auto copy = [](void* arg) -> void* {
    const Part* part = static_cast<const Part*>(arg);
    std::memcpy(part->dst, part->src, part->n);
    return nullptr;
  };
  const uint64_t chunk = (n / threads + 4095) / 4096 * 4096;  // whole pages each
  std::vector<Part> parts;
  for (uint64_t begin = 0; begin < n; begin += chunk) {
    parts.push_back({dst + begin, static_cast<const uint8_t*>(src) + begin, std::min(chunk, n - begin)});
  }
  std::vector<pthread_t> helpers;
  for (size_t i = 1; i < parts.size(); ++i) {
    pthread_t thread;
    if (pthread_create(&thread, nullptr, copy, &parts[i]) == 0) {
      helpers.push_back(thread);
    } else {
      copy(&parts[i]);  // no thread to be had: copy it here
    }
  }
  copy(&parts[0]);
  for (pthread_t thread : helpers) pthread_join(thread, nullptr);
}

// The store's timeout for `timeout`: -1 waits forever, else whole milliseconds, rounded up.
int64_t TimeoutMs(absl::Duration timeout) {
  if (timeout < absl::ZeroDuration() || timeout == absl::InfiniteDuration()) return -1;
  if (timeout == absl::ZeroDuration()) return 0;
  const absl::Duration capped = std::min(timeout, absl::Hours(24 * 365));
  return absl::ToInt64Milliseconds(absl::Ceil(capped, absl::Milliseconds(1)));
}

}  // namespace

// The socket, and the calls waiting for their replies. A call sends its request, then waits:
// one waiting thread at a time reads replies off the socket and hands each to its caller.
class ObjectStoreClient::Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  ~Connection() { close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends `request` (with a fresh request id) and waits for its reply. A reply that is not OK
  // answers its status.
  absl::StatusOr<proto::Reply> Call(proto::Request& request);

 private:
  const int fd_;
  absl::Mutex write_mu_;  // one request on the wire at a time
  absl::Mutex mu_;
  absl::CondVar reply_arrived_;
  uint64_t next_request_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;                                 // some thread is reading the socket
  absl::Status broken_ ABSL_GUARDED_BY(mu_);                                  // set once the connection is unusable
  absl::flat_hash_map<uint64_t, proto::Reply> replies_ ABSL_GUARDED_BY(mu_);  // for other threads
  proto::FrameBuffer in_;                                                     // used by the reading thread only
};

absl::StatusOr<proto::Reply> ObjectStoreClient::Connection::Call(proto::Request& request) {
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return broken_;
    request.request_id = next_request_id_++;
  }
  thread_local std::string frame;
  frame.clear();
  proto::EncodeRequest(request, &frame);
  absl::Status sent;
  {
    absl::MutexLock lock(&write_mu_);
    sent = SendAll(fd_, frame);
  }
  absl::MutexLock lock(&mu_);
  if (!sent.ok() && broken_.ok()) broken_ = sent;
  while (true) {
    if (auto it = replies_.find(request.request_id); it != replies_.end()) {
      proto::Reply reply = std::move(it->second);
      replies_.erase(it);
      if (!reply.status.ok()) return reply.status;
      return reply;
    }
    if (!broken_.ok()) return broken_;
    if (reading_) {
      reply_arrived_.Wait(&mu_);
      continue;
    }
    reading_ = true;
    mu_.Unlock();
    absl::StatusOr<proto::Reply> reply = ReadReply(fd_, in_, nullptr);
    mu_.Lock();
    reading_ = false;
    reply_arrived_.SignalAll();  // for the caller of this reply, or for a new reader
    if (!reply.ok()) {
      broken_ = reply.status();
    } else if (reply->request_id != request.request_id) {
      replies_.insert_or_assign(reply->request_id, *std::move(reply));
    } else if (reply->type != request.type) {
      broken_ = absl::InternalError(absl::StrCat("object store answered a ", proto::MessageTypeName(request.type),
                                                 " with a ", proto::MessageTypeName(reply->type)));
    } else if (!reply->status.ok()) {
      return reply->status;
    } else {
      return reply;
    }
  }
}

absl::StatusOr<std::unique_ptr<ObjectStoreClient>> ObjectStoreClient::Connect(const std::string& socket_path) {
  absl::StatusOr<sockaddr_un> addr = proto::UnixSocketAddress(socket_path);
  if (!addr.ok()) return addr.status();
  const int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return proto::ErrnoStatus(absl::StatusCode::kUnavailable, "socket", errno);
  auto connection = std::make_unique<Connection>(sock);
  int rc;
  do {
    rc = connect(sock, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    return proto::ErrnoStatus(absl::StatusCode::kUnavailable,
                              absl::StrCat("cannot connect to the object store at ", socket_path), errno);
  }

  // The first exchange, before any other thread can call: the reply brings the arena's fd.
  proto::Request request;
  request.type = proto::MessageType::kConnect;
  request.request_id = 0;
  std::string frame;
  proto::EncodeRequest(request, &frame);
  if (absl::Status sent = SendAll(sock, frame); !sent.ok()) return sent;
  int arena_fd = -1;
  absl::Cleanup close_arena = [&arena_fd] {
    if (arena_fd >= 0) close(arena_fd);
  };
  proto::FrameBuffer in;
  absl::StatusOr<proto::Reply> reply = ReadReply(sock, in, &arena_fd);
  if (!reply.ok()) return reply.status();
  if (!reply->status.ok()) return reply->status;
  if (reply->type != proto::MessageType::kConnect || reply->request_id != 0 || reply->capacity == 0) {
    return absl::UnavailableError("object store answered Connect with a wrong reply");
  }
  if (arena_fd < 0) return absl::UnavailableError("object store sent no arena descriptor");
  struct stat st;
  if (fstat(arena_fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < reply->capacity) {
    return absl::UnavailableError(absl::StrCat("object store arena is smaller than its capacity ", reply->capacity));
  }
  const int flags = MAP_SHARED | (reply->prefaulted ? MAP_POPULATE : 0);
  void* base = mmap(nullptr, reply->capacity, PROT_READ | PROT_WRITE, flags, arena_fd, 0);
  if (base == MAP_FAILED) {
    return proto::ErrnoStatus(errno == ENOMEM ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kUnavailable,
                              absl::StrCat("mapping the object store's ", reply->capacity, " bytes"), errno);
  }
  return std::unique_ptr<ObjectStoreClient>(
      new ObjectStoreClient(std::move(connection), static_cast<uint8_t*>(base), reply->capacity));
}

ObjectStoreClient::ObjectStoreClient(std::unique_ptr<Connection> connection, uint8_t* base, uint64_t size)
    : connection_(std::move(connection)), base_(base), size_(size) {}

ObjectStoreClient::~ObjectStoreClient() { munmap(base_, size_); }

absl::Status ObjectStoreClient::CheckInArena(const ObjectId& id, uint64_t offset, uint64_t data_size,
                                             uint64_t metadata_size) const {
  if (offset <= size_ && data_size <= size_ - offset && metadata_size <= size_ - offset - data_size) {
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat("object store placed object ", id.Hex(), " at ", offset, " (", data_size, "+",
                                          metadata_size, " bytes), outside its ", size_, "-byte arena"));
}

absl::StatusOr<MutableObject> ObjectStoreClient::Create(const ObjectId& id, uint64_t data_size, uint64_t metadata_size,
                                                        bool primary) {
  proto::Request request;
  request.type = proto::MessageType::kCreate;
  request.id = id;
  request.data_size = data_size;
  request.metadata_size = metadata_size;
  request.primary = primary;
  absl::StatusOr<proto::Reply> reply = connection_->Call(request);
  if (!reply.ok()) return reply.status();
  const ObjectLocation& l = reply->location;
  if (absl::Status in = CheckInArena(id, l.offset, l.data_size, l.metadata_size); !in.ok()) return in;
  return MutableObject{.id = id,
                       .data = base_ + l.offset,
                       .data_size = l.data_size,
                       .metadata = base_ + l.offset + l.data_size,
                       .metadata_size = l.metadata_size};
}

namespace {
// A request that names one object.
proto::Request ForId(proto::MessageType type, const ObjectId& id) {
  proto::Request request;
  request.type = type;
  request.id = id;
  return request;
}
}  // namespace

absl::Status ObjectStoreClient::Seal(const ObjectId& id) {
  proto::Request request = ForId(proto::MessageType::kSeal, id);
  return connection_->Call(request).status();
}

absl::Status ObjectStoreClient::Abort(const ObjectId& id) {
  proto::Request request = ForId(proto::MessageType::kAbort, id);
  return connection_->Call(request).status();
}

absl::Status ObjectStoreClient::Put(const ObjectId& id, const void* data, uint64_t size, const void* metadata,
                                    uint64_t metadata_size) {
  if ((data == nullptr && size > 0) || (metadata == nullptr && metadata_size > 0)) {
    return absl::InvalidArgumentError("Put of a null buffer with a nonzero size");
  }
  absl::StatusOr<MutableObject> object = Create(id, size, metadata_size);
  if (!object.ok()) return object.status();
  if (size > 0) CopyInto(object->data, data, size);
  if (metadata_size > 0) std::memcpy(object->metadata, metadata, metadata_size);
  return Seal(id);
}

absl::Status ObjectStoreClient::PutParts(const ObjectId& id, const std::vector<std::string_view>& parts) {
  uint64_t total = 0;
  for (std::string_view part : parts) total += part.size();
  absl::StatusOr<MutableObject> object = Create(id, total, 0);
  if (!object.ok()) return object.status();
  uint64_t offset = 0;
  for (std::string_view part : parts) {
    if (!part.empty()) CopyInto(object->data + offset, part.data(), part.size());
    offset += part.size();
  }
  return Seal(id);
}

absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> ObjectStoreClient::Get(const std::vector<ObjectId>& ids,
                                                                               absl::Duration timeout) {
  std::vector<absl::StatusOr<ObjectView>> views;
  views.reserve(ids.size());
  const bool finite = timeout > absl::ZeroDuration() && timeout != absl::InfiniteDuration();
  const absl::Time deadline = finite ? absl::Now() + timeout : absl::InfiniteFuture();
  // One request per kMaxGetIds ids, all against the one deadline.
  for (size_t first = 0; first < ids.size(); first += proto::kMaxGetIds) {
    proto::Request request;
    request.type = proto::MessageType::kGet;
    request.ids.assign(ids.begin() + first, ids.begin() + std::min(ids.size(), first + proto::kMaxGetIds));
    request.timeout_ms = TimeoutMs(finite ? std::max(deadline - absl::Now(), absl::ZeroDuration()) : timeout);
    absl::StatusOr<proto::Reply> reply = connection_->Call(request);
    if (!reply.ok()) return reply.status();  // references taken by earlier batches go with the connection
    if (reply->entries.size() != request.ids.size()) {
      return absl::InternalError(
          absl::StrCat("object store answered ", reply->entries.size(), " entries for ", request.ids.size(), " ids"));
    }
    for (size_t i = 0; i < request.ids.size(); ++i) {
      const proto::GetEntry& e = reply->entries[i];
      const ObjectId& id = request.ids[i];
      if (!e.status.ok()) {
        views.emplace_back(e.status);
        continue;
      }
      const ObjectLocation& l = e.location;
      if (absl::Status in = CheckInArena(id, l.offset, l.data_size, l.metadata_size); !in.ok()) {
        views.emplace_back(in);
        continue;
      }
      views.emplace_back(ObjectView{.id = id,
                                    .data = base_ + l.offset,
                                    .data_size = l.data_size,
                                    .metadata = base_ + l.offset + l.data_size,
                                    .metadata_size = l.metadata_size});
    }
  }
  return views;
}

absl::Status ObjectStoreClient::Release(const ObjectId& id) {
  proto::Request request = ForId(proto::MessageType::kRelease, id);
  return connection_->Call(request).status();
}

absl::Status ObjectStoreClient::Delete(const ObjectId& id) {
  proto::Request request = ForId(proto::MessageType::kDelete, id);
  return connection_->Call(request).status();
}

absl::StatusOr<bool> ObjectStoreClient::Contains(const ObjectId& id) {
  proto::Request request = ForId(proto::MessageType::kContains, id);
  absl::StatusOr<proto::Reply> reply = connection_->Call(request);
  if (!reply.ok()) return reply.status();
  return reply->found;
}

absl::StatusOr<ObjectStoreStats> ObjectStoreClient::Stats() {
  proto::Request request;
  request.type = proto::MessageType::kStats;
  absl::StatusOr<proto::Reply> reply = connection_->Call(request);
  if (!reply.ok()) return reply.status();
  const StoreStats& s = reply->stats;
  return ObjectStoreStats{.capacity = s.capacity,
                          .bytes_used = s.bytes_used,
                          .num_objects = s.num_objects,
                          .bytes_spilled = s.bytes_spilled,
                          .num_spilled = s.num_spilled,
                          .num_evicted = s.num_evicted,
                          .num_restored = s.num_restored};
}

}  // namespace shoal
