#include "src/raylet/object_socket.h"

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "shoal/raylet.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc_client.h"
#include "src/common/socket.h"

namespace shoal {
namespace {

// How long a holder waits for a puller's token and request (all of them, however they trickle
// in), and a puller for the holder's first answer.
constexpr absl::Duration kHandshakeTimeout = absl::Seconds(10);
// How long one write of the range may wait for a puller that stopped reading.
constexpr absl::Duration kStalledPullerTimeout = absl::Seconds(30);
// A stream hands its range to the object manager in pieces of this size, so that a pull that
// fails midway keeps what arrived (the rest is pulled from another holder).
constexpr uint64_t kChunkBytes = 4 << 20;

std::string PullStart(const absl::Status& status, uint64_t data_size = 0, uint64_t metadata_size = 0,
                  uint64_t length = 0) {
  rpc::SocketPullStart start;
  start.set_code(static_cast<int32_t>(status.code()));
  start.set_message(std::string(status.message()));
  start.set_data_size(data_size);
  start.set_metadata_size(metadata_size);
  start.set_length(length);
  return start.SerializeAsString();
}

// One pull of one range from one holder, read straight into the object's memory.
class SocketChunkStream final : public ObjectChunkStream {
 public:
  SocketChunkStream(std::string host, int port, const ObjectId& id, uint64_t offset, uint64_t length,
                    absl::Duration timeout, std::function<void()> on_refused)
      : host_(std::move(host)),
        port_(port),
        id_(id),
        offset_(offset),
        length_(length),
        deadline_(absl::Now() + timeout),
        on_refused_(std::move(on_refused)) {}
  ~SocketChunkStream() override {
    if (fd_ >= 0) ::close(fd_);
  }

  bool Read(ReceivedChunk* chunk) override {
    if (!error_.ok() || cancelled_) return false;
    if (fd_ < 0) {
      if (!Open()) return false;
    } else if (at_ >= range_) {
      return false;  // every byte delivered
    }
    // The first chunk goes out even for an empty range: it tells the sizes.
    const uint64_t n = std::min(kChunkBytes, range_ - at_);
    chunk->data_size = data_size_;
    chunk->metadata_size = metadata_size_;
    chunk->offset = offset_ + at_;
    chunk->pieces.clear();
    chunk->size = n;
    return true;
  }

  bool ReadPayload(const ReceivedChunk& chunk, uint8_t* dest) override {
    if (absl::Now() > deadline_) return Fail(absl::DeadlineExceededError("object pull timed out"));
    if (absl::Status s = net::ReadExactly(fd_, reinterpret_cast<char*>(dest), chunk.size); !s.ok()) {
      if (absl::IsDeadlineExceeded(s)) return Fail(absl::DeadlineExceededError("object pull timed out"));
      return Fail(absl::UnavailableError(absl::StrCat("pull from ", host_, ":", port_, ": ", s.message())));
    }
    at_ += chunk.size;
    return true;
  }

  void Cancel() override {
    cancelled_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

  absl::Status Finish() override {
    if (!error_.ok()) return error_;
    if (cancelled_) return absl::CancelledError("object pull cancelled");
    return absl::OkStatus();
  }

 private:
  bool Open() {
    const absl::Duration left = deadline_ - absl::Now();
    absl::StatusOr<int> fd = net::Connect(host_, port_, std::min(left, absl::Seconds(5)));
    if (!fd.ok()) {
      on_refused_();  // the holder may have moved: ask for its port again next time
      return Fail(fd.status());
    }
    fd_ = *fd;
    rpc::PullRequest request;
    request.set_object_id(id_.Binary());
    request.set_offset(offset_);
    request.set_length(length_);
    absl::StatusOr<std::string> frame;
    absl::Status s = net::WriteFrame(fd_, ClusterToken());
    // A holder that refuses the token answers before reading the request (whose write may then
    // fail): its answer is read either way.
    if (s.ok()) (void)net::WriteFrame(fd_, request.SerializeAsString());
    if (s.ok()) {
      frame = net::ReadFrame(fd_, net::kMaxHelloBytes, absl::Now() + std::min(left, kHandshakeTimeout));
      s = frame.status();
    }
    rpc::SocketPullStart start;
    if (s.ok() && !start.ParseFromString(*frame)) s = absl::DataLossError("the holder's answer did not parse");
    if (!s.ok()) {
      on_refused_();  // something else may listen there now
      return Fail(absl::UnavailableError(absl::StrCat("object pull from ", host_, ":", port_, ": ", s.message())));
    }
    if (start.code() != 0) return Fail(absl::Status(static_cast<absl::StatusCode>(start.code()), start.message()));
    // A holder that stops sending (not one that is gone: keepalive ends that) ends the pull at
    // its deadline.
    net::SetReadTimeout(fd_, std::max(deadline_ - absl::Now(), absl::Milliseconds(1)));
    data_size_ = start.data_size();
    metadata_size_ = start.metadata_size();
    range_ = start.length();
    return true;
  }

  bool Fail(absl::Status s) {
    if (error_.ok()) error_ = std::move(s);
    return false;
  }

  const std::string host_;
  const int port_;
  const ObjectId id_;
  const uint64_t offset_;
  const uint64_t length_;
  const absl::Time deadline_;
  const std::function<void()> on_refused_;
  int fd_ = -1;
  bool cancelled_ = false;
  uint64_t data_size_ = 0;
  uint64_t metadata_size_ = 0;
  uint64_t range_ = 0;  // bytes the holder sends
  uint64_t at_ = 0;     // of those, read
  absl::Status error_;
};

class SocketObjectTransferClient final : public ObjectTransferClient {
 public:
  SocketObjectTransferClient(TransferPortLookup port_for, std::unique_ptr<ObjectTransferClient> fallback)
      : port_for_(std::move(port_for)), fallback_(std::move(fallback)) {}

  std::unique_ptr<ObjectChunkStream> Pull(const std::string& holder, const ObjectId& id, uint64_t offset,
                                          uint64_t length, int lane, absl::Duration timeout) override {
    std::string host;
    int unused = 0;
    const int port = PortFor(holder);
    if (port <= 0 || !net::SplitHostPort(holder, &host, &unused).ok()) {
      return fallback_->Pull(holder, id, offset, length, lane, timeout);
    }
    return std::make_unique<SocketChunkStream>(host, port, id, offset, length, timeout, [this, holder] {
      absl::MutexLock lock(&mu_);
      ports_.erase(holder);
    });
  }

 private:
  // The holder's socket port, asked once; 0 (pull over gRPC) when it serves none or could not
  // say (not remembered then: the next pull asks again).
  int PortFor(const std::string& holder) {
    {
      absl::MutexLock lock(&mu_);
      if (auto it = ports_.find(holder); it != ports_.end()) return it->second;
    }
    absl::StatusOr<int> port = port_for_(holder);
    if (!port.ok() && absl::IsUnimplemented(port.status())) port = 0;  // a raylet without sockets
    if (!port.ok()) {
      spdlog::debug("transfer port of {}: {}", holder, port.status().ToString());
      return 0;
    }
    absl::MutexLock lock(&mu_);
    ports_[holder] = *port;
    return *port;
  }

  const TransferPortLookup port_for_;
  const std::unique_ptr<ObjectTransferClient> fallback_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> ports_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

ObjectSocketServer::~ObjectSocketServer() { Stop(); }

absl::StatusOr<int> ObjectSocketServer::Start(const std::string& host) {
  return listener_.Start(host, "xfer-accept", "object transfers", [this](int fd) { Take(fd); });
}

void ObjectSocketServer::Take(int fd) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || handshaking_ >= kMaxHandshakes) {
      // Stopping; or only connections that never sent a token fill this: closed without a word.
      ::close(fd);
      return;
    }
    ++handshaking_;
    open_.insert(fd);
  }
  try {
    std::thread([this, fd] { Serve(fd); }).detach();
  } catch (const std::system_error& e) {
    spdlog::warn("object transfers: no thread for a pull: {}", e.what());
    absl::MutexLock lock(&mu_);
    --handshaking_;
    open_.erase(fd);
    ::close(fd);
  }
}

void ObjectSocketServer::Serve(int fd) {
  pthread_setname_np(pthread_self(), "xfer-serve");
  net::SetWriteTimeout(fd, kStalledPullerTimeout);
  auto refuse = [fd](const absl::Status& why) { (void)net::WriteFrame(fd, PullStart(why)); };
  const absl::Time handshake_deadline = absl::Now() + kHandshakeTimeout;
  absl::StatusOr<std::string> hello = net::ReadFrame(fd, net::kMaxHelloBytes, handshake_deadline);
  const bool authenticated = hello.ok() && (!ClusterAuthEnabled() || TokensEqual(*hello, ClusterToken()));
  {
    absl::MutexLock lock(&mu_);
    --handshaking_;  // a puller with the token is served however many others are
  }
  absl::StatusOr<std::string> frame;
  rpc::PullRequest request;
  absl::StatusOr<ObjectId> id;
  if (!hello.ok()) {
    // Nothing to answer: the puller went away, or sent more than a token.
  } else if (!authenticated) {
    refuse(absl::UnauthenticatedError("object transfer: wrong or missing cluster token"));
  } else if (frame = net::ReadFrame(fd, net::kMaxHelloBytes, handshake_deadline); !frame.ok()) {
    // The puller went away.
  } else if (!request.ParseFromString(*frame) || !(id = ObjectId::FromBinary(request.object_id())).ok()) {
    refuse(absl::InvalidArgumentError("object transfer: a request that is not a PullRequest"));
  } else if (auto views = store_.Get({*id}, absl::ZeroDuration()); !views.ok() || !(*views)[0].ok()) {
    refuse(!views.ok() ? views.status()
                       : absl::NotFoundError(absl::StrCat("object ", id->Hex(), " is not here")));
  } else {
    // Held (pinned) from Get until the bytes are in the kernel's hands.
    const ObjectView& view = *(*views)[0];
    const uint64_t total = view.data_size + view.metadata_size;
    if (request.offset() > total) {
      refuse(absl::OutOfRangeError(absl::StrCat("range starts at ", request.offset(), " past the end of object ",
                                                id->Hex(), " (", total, " bytes)")));
    } else {
      const uint64_t end = request.length() == 0 ? total
                                                 : std::min(total, request.offset() + std::min(request.length(), total));
      const uint64_t length = end - request.offset();
      PopulateRange(view.data + request.offset(), length, /*write=*/false);
      if (net::WriteFrame(fd, PullStart(absl::OkStatus(), view.data_size, view.metadata_size, length)).ok()) {
        (void)net::WriteAll(fd, std::string_view(reinterpret_cast<const char*>(view.data) + request.offset(), length));
      }
    }
    (void)store_.Release(*id);
  }
  {
    absl::MutexLock lock(&mu_);
    open_.erase(fd);
  }
  ::close(fd);
}

void ObjectSocketServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
  }
  listener_.Stop();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(+[](absl::flat_hash_set<int>* open) { return open->empty(); }, &open_));
}

std::unique_ptr<ObjectTransferClient> MakeSocketObjectTransferClient(TransferPortLookup port_for,
                                                                     std::unique_ptr<ObjectTransferClient> fallback) {
  return std::make_unique<SocketObjectTransferClient>(std::move(port_for), std::move(fallback));
}

TransferPortLookup GrpcTransferPortLookup() {
  struct Stubs {
    ChannelCache channels;
    StubCache<rpc::ObjectManagerService> stubs{channels};
  };
  auto cache = std::make_shared<Stubs>();
  return [cache](const std::string& holder) -> absl::StatusOr<int> {
    rpc::TransferPortReply reply;
    absl::Status s = UnaryCall(*cache->stubs.Get(holder), &rpc::ObjectManagerService::Stub::TransferPort,
                               rpc::TransferPortRequest(), &reply, {.timeout = absl::Seconds(5)});
    if (!s.ok()) return s;
    return reply.port();
  };
}

}  // namespace shoal
