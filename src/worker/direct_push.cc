#include "src/worker/direct_push.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/common/socket.h"
#include "src/worker/task_receiver.h"
#include "src/worker/task_transport.h"

namespace shoal {
namespace direct_push {
namespace {

constexpr size_t kMaxFrameBytes = size_t{1} << 31;

// An answer frame with one answer of id 0: how the worker accepts (or refuses) a connection.
std::string Verdict(const absl::Status& status) {
  rpc::PushTaskAnswers answers;
  rpc::PushTaskAnswer* answer = answers.add_answers();
  answer->set_id(0);
  answer->set_code(static_cast<int32_t>(status.code()));
  answer->set_message(std::string(status.message()));
  return answers.SerializeAsString();
}

}  // namespace

HandOffThread::HandOffThread(const char* name)
    : thread_([this, name] {
        pthread_setname_np(pthread_self(), name);
        Run();
      }) {}

HandOffThread::~HandOffThread() { Stop(); }

bool HandOffThread::Post(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stop_) return false;
  queue_.push_back(std::move(fn));
  posts_.fetch_add(1, std::memory_order_release);
  return true;
}

void HandOffThread::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void HandOffThread::Run() {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (queue_.empty() && !stop_) {
      const uint64_t seen = posts_.load(std::memory_order_acquire);
      mu_.Unlock();
      spin_.Spin([this, seen] { return posts_.load(std::memory_order_acquire) != seen; });
      mu_.Lock();
    }
    mu_.Await(absl::Condition(
        +[](HandOffThread* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->stop_ || !self->queue_.empty();
        },
        this));
    if (queue_.empty()) return;  // stopped, and everything posted ran
    std::function<void()> fn = std::move(queue_.front());
    queue_.pop_front();
    mu_.Unlock();
    fn();
    fn = nullptr;  // what it holds goes outside the lock
    mu_.Lock();
  }
}

}  // namespace direct_push

// ---------------------------------------------------------------------------------------------
// The worker's end

struct DirectPushServer::Conn : std::enable_shared_from_this<DirectPushServer::Conn> {
  Conn(int fd, std::shared_ptr<direct_push::HandOffThread> writer) : fd(fd), writer(std::move(writer)) {}
  ~Conn() { ::close(fd); }

  // Counts pushes handed to the receiver.
  void Started(int n) {
    absl::MutexLock lock(&mu);
    outstanding += n;
  }

  // Queues an answer. With no write going, the last call in flight writes everything queued
  // itself; with others in flight, the writer thread does (and batches what comes meanwhile).
  void Answer(rpc::PushTaskAnswer answer) {
    bool lone = false;
    {
      absl::MutexLock lock(&mu);
      --outstanding;
      if (broken) return;
      outbox.push_back(std::move(answer));
      if (writing) return;
      writing = true;
      lone = outstanding == 0;
    }
    if (lone || !writer->Post([self = shared_from_this()] { self->WriteQueued(); })) WriteQueued();
  }

  void WriteQueued() {
    while (true) {
      rpc::PushTaskAnswers batch;
      {
        absl::MutexLock lock(&mu);
        TakeAnswerBatch(outbox, batch);
        if (batch.answers_size() == 0) {
          writing = false;
          return;
        }
      }
      if (!net::WriteFrame(fd, batch.SerializeAsString()).ok()) {
        absl::MutexLock lock(&mu);
        broken = true;  // the caller is gone: later answers are dropped
        outbox.clear();
        writing = false;
        ::shutdown(fd, SHUT_RDWR);
        return;
      }
    }
  }

  const int fd;
  const std::shared_ptr<direct_push::HandOffThread> writer;
  absl::Mutex mu;
  int64_t outstanding ABSL_GUARDED_BY(mu) = 0;  // pushes handed to the receiver, not answered
  bool broken ABSL_GUARDED_BY(mu) = false;
  bool writing ABSL_GUARDED_BY(mu) = false;
  std::deque<rpc::PushTaskAnswer> outbox ABSL_GUARDED_BY(mu);
};

DirectPushServer::~DirectPushServer() { Stop(); }

absl::StatusOr<int> DirectPushServer::Start(const std::string& host) {
  return listener_.Start(host, "push-accept", "direct pushes", [this](int fd) { Take(fd); });
}

void DirectPushServer::Take(int fd) {
  auto conn = std::make_shared<Conn>(fd, writer_);
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;  // `conn` closes the socket
    open_[conn.get()] = conn;
  }
  std::thread([this, conn] { Serve(conn); }).detach();
}

void DirectPushServer::Serve(std::shared_ptr<Conn> conn) {
  pthread_setname_np(pthread_self(), "push-serve");
  absl::StatusOr<std::string> hello = net::ReadFrame(conn->fd, net::kMaxHelloBytes);
  absl::Status verdict = absl::OkStatus();
  if (!hello.ok()) {
    verdict = hello.status();
  } else if (ClusterAuthEnabled() && !TokensEqual(*hello, ClusterToken())) {
    verdict = absl::UnauthenticatedError("direct push: wrong or missing cluster token");
  }
  if (hello.ok() && net::WriteFrame(conn->fd, direct_push::Verdict(verdict)).ok() && verdict.ok()) {
    net::FrameReader frames(conn->fd, direct_push::kMaxFrameBytes);
    while (true) {
      absl::StatusOr<std::string> frame = frames.Next();
      rpc::PushTaskBatch batch;
      if (!frame.ok() || !batch.ParseFromString(*frame)) break;
      conn->Started(batch.items_size());
      for (rpc::PushTaskItem& item : *batch.mutable_items()) {
        struct Call {
          uint64_t id;
          rpc::PushTaskRequest request;
          rpc::PushTaskReply reply;
        };
        auto* call = new Call{item.id(), {}, {}};
        call->request.Swap(item.mutable_request());
        receiver_.Push(&call->request, &call->reply, [conn, call](absl::Status status) {
          rpc::PushTaskAnswer answer;
          answer.set_id(call->id);
          answer.set_code(static_cast<int32_t>(status.code()));
          if (status.ok()) {
            answer.mutable_reply()->Swap(&call->reply);
          } else {
            answer.set_message(std::string(status.message()));
          }
          delete call;
          conn->Answer(std::move(answer));
        });
      }
    }
  }
  // The caller closed (or broke) the connection; answers still due are written if they can be.
  ReaderDone(conn.get());
}

void DirectPushServer::ReaderDone(const Conn* conn) {
  absl::MutexLock lock(&mu_);
  open_.erase(conn);
}

void DirectPushServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [key, conn] : open_) ::shutdown(conn->fd, SHUT_RDWR);
  }
  listener_.Stop();
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](absl::flat_hash_map<const Conn*, std::shared_ptr<Conn>>* open) { return open->empty(); }, &open_));
  }
  writer_->Stop();  // later answers are written by their own threads (and fail: the sockets are shut)
}

// ---------------------------------------------------------------------------------------------
// The caller's end

class DirectPushes::Conn {
 public:
  explicit Conn(std::string address) : address_(std::move(address)) {}
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }

  const std::string& address() const { return address_; }

  enum class Queued { kRejected, kQueued, kMustWrite, kHandOff };
  // Queues a push (moved from `request` and `done` unless rejected: the connection ended).
  // The connection open and no write going, someone must call WriteQueued: kMustWrite, the
  // caller, when no earlier push is unanswered (a lone call: written at once, on its thread);
  // kHandOff, the writer thread, when some are (calls pipelined: the caller's thread only
  // queues, and what queues while the writer wakes goes out in one frame).
  Queued Enqueue(SharedPushRequest& request, Callback& done) {
    absl::MutexLock lock(&mu_);
    if (ended_) return Queued::kRejected;
    const bool lone = pending_.empty();
    const uint64_t id = next_id_++;
    pending_.emplace(id, Pending{std::move(done), false});
    outbox_.push_back(Item{id, std::move(request)});
    if (writing_) return Queued::kQueued;  // also while connecting: the thread writes then
    writing_ = true;
    return lone ? Queued::kMustWrite : Queued::kHandOff;
  }

  // Writes everything queued, batch by batch, until nothing is.
  void WriteQueued() {
    while (true) {
      rpc::PushTaskBatch batch;
      std::vector<SharedPushRequest> requests;  // the batch's items borrow them, until serialized
      {
        absl::MutexLock lock(&mu_);
        size_t bytes = 0;
        while (!ended_ && !outbox_.empty()) {
          const size_t size = outbox_.front().request->ByteSizeLong();
          if (batch.items_size() > 0 && bytes + size > PushStreams::kMaxBatchBytes) break;
          bytes += size;
          rpc::PushTaskItem* item = batch.add_items();
          item->set_id(outbox_.front().id);
          // Not a copy: the item points at the shared request (never changed by anyone; made
          // non-const by its submitter), and lets go of it below, before `batch` is destroyed.
          item->unsafe_arena_set_allocated_request(const_cast<rpc::PushTaskRequest*>(outbox_.front().request.get()));
          requests.push_back(std::move(outbox_.front().request));
          pending_[outbox_.front().id].written = true;
          outbox_.pop_front();
        }
        if (batch.items_size() == 0) {
          writing_ = false;
          return;
        }
      }
      std::string frame;
      {
        struct LetGo {  // the items let go of the borrowed requests however serializing ends
          rpc::PushTaskBatch& batch;
          ~LetGo() {
            for (rpc::PushTaskItem& item : *batch.mutable_items()) item.unsafe_arena_release_request();
          }
        } let_go{batch};
        frame = batch.SerializeAsString();
      }
      if (absl::Status s = net::WriteFrame(fd_, frame); !s.ok()) {
        Break(s);  // the reader ends the connection and answers the pushes
        return;
      }
    }
  }

  // Connects (on the connection's thread): answers OK once the worker accepted.
  absl::Status Connect(int port) {
    std::string host;
    int unused = 0;
    if (!net::SplitHostPort(address_, &host, &unused).ok()) {
      return absl::InvalidArgumentError(absl::StrCat("direct push: bad worker address ", address_));
    }
    absl::StatusOr<int> connected = net::Connect(host, port, absl::Seconds(5));
    if (!connected.ok()) return connected.status();
    const int fd = *connected;
    {
      absl::MutexLock lock(&mu_);
      fd_ = fd;
      if (cancelled_) ::shutdown(fd_, SHUT_RDWR);
    }
    if (absl::Status s = net::WriteFrame(fd, ClusterToken()); !s.ok()) return s;
    absl::StatusOr<std::string> frame = net::ReadFrame(fd, net::kMaxHelloBytes);
    if (!frame.ok()) return frame.status();
    rpc::PushTaskAnswers verdict;
    if (!verdict.ParseFromString(*frame) || verdict.answers_size() != 1) {
      return absl::UnavailableError("direct push: the worker answered something else than a verdict");
    }
    return absl::Status(static_cast<absl::StatusCode>(verdict.answers(0).code()), verdict.answers(0).message());
  }

  // Reads answers until the connection ends; runs their callbacks. Answers the reason it ended.
  absl::Status ReadAnswers() {
    net::FrameReader frames(fd_, direct_push::kMaxFrameBytes);
    while (true) {
      absl::StatusOr<std::string> frame = frames.Next();
      if (!frame.ok()) return frame.status();
      rpc::PushTaskAnswers answers;
      if (!answers.ParseFromString(*frame)) return absl::DataLossError("direct push: an answer frame did not parse");
      std::vector<std::pair<Callback, rpc::PushTaskAnswer*>> ready;
      ready.reserve(answers.answers_size());
      {
        absl::MutexLock lock(&mu_);
        for (rpc::PushTaskAnswer& answer : *answers.mutable_answers()) {
          auto it = pending_.find(answer.id());
          if (it == pending_.end()) continue;
          ready.emplace_back(std::move(it->second.done), &answer);
          pending_.erase(it);
        }
      }
      for (auto& [done, answer] : ready) {
        done(absl::Status(static_cast<absl::StatusCode>(answer->code()), answer->message()),
             std::move(*answer->mutable_reply()));
      }
    }
  }

  // Ends the connection: later pushes are rejected; a blocked read or write wakes up.
  void Break(const absl::Status& why) {
    absl::MutexLock lock(&mu_);
    if (end_reason_.ok()) end_reason_ = why;
    ended_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  // Break for Shutdown. One critical section with Connect's: either Connect sees cancelled_ or
  // this sees the socket, so a connection opening meanwhile cannot stay open.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    ended_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

  // After the connection ended: the pushes not answered, with what each callback gets.
  std::vector<std::pair<Callback, absl::Status>> TakeUnanswered(absl::Status why, bool never_connected) {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    if (cancelled_) why = absl::CancelledError("direct pushes were shut down");
    if (!end_reason_.ok() && !cancelled_) why = end_reason_;
    std::vector<std::pair<Callback, absl::Status>> out;
    for (auto& [id, p] : pending_) {
      out.emplace_back(std::move(p.done), !p.written || never_connected ? Undelivered(why) : why);
    }
    pending_.clear();
    outbox_.clear();
    return out;
  }

  // For a fallback: the pushes queued (none was written: the connection never opened).
  std::vector<std::pair<SharedPushRequest, Callback>> TakeQueued() {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    std::vector<std::pair<SharedPushRequest, Callback>> out;
    for (Item& item : outbox_) out.emplace_back(std::move(item.request), std::move(pending_[item.id].done));
    outbox_.clear();
    pending_.clear();
    return out;
  }

 private:
  struct Pending {
    Callback done;
    bool written;  // in a frame handed to the socket (maybe delivered)
  };
  struct Item {
    uint64_t id;
    SharedPushRequest request;
  };

  const std::string address_;
  absl::Mutex mu_;
  int fd_ = -1;  // set once, by the connection's thread, before anyone writes
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_reason_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = true;  // until connected: the connection's thread writes first
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<Item> outbox_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
};

DirectPushes::~DirectPushes() { Shutdown(absl::Seconds(2)); }

void DirectPushes::Push(const std::string& address, SharedPushRequest request, Callback done) {
  std::shared_ptr<Conn> conn;
  Conn::Queued queued = Conn::Queued::kRejected;
  bool fall_back = false;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    if (fallback_addresses_.contains(address)) {
      fall_back = true;
    } else {
      std::shared_ptr<Conn>& slot = conns_[address];
      if (slot != nullptr) queued = slot->Enqueue(request, done);
      if (queued == Conn::Queued::kRejected) {
        slot = std::make_shared<Conn>(address);
        queued = slot->Enqueue(request, done);  // kQueued: its thread writes once connected
        ++live_;
        std::thread([this, c = slot] { Run(c); }).detach();
      }
      conn = slot;
    }
  }
  if (fall_back) {
    fallback_(address, std::move(request), std::move(done));
    return;
  }
  if (queued == Conn::Queued::kMustWrite) {
    conn->WriteQueued();
  } else if (queued == Conn::Queued::kHandOff) {
    if (!writer_.Post([conn] { conn->WriteQueued(); })) conn->WriteQueued();
  }
}

void DirectPushes::Run(std::shared_ptr<Conn> conn) {
  pthread_setname_np(pthread_self(), "push-conn");
  absl::StatusOr<int> port = port_for_(conn->address());
  if (!port.ok() || *port <= 0) {
    Forget(conn.get(), /*fall_back=*/true);
    for (auto& [request, done] : conn->TakeQueued()) fallback_(conn->address(), std::move(request), std::move(done));
  } else {
    absl::Status opened = conn->Connect(*port);
    absl::Status why = opened;
    if (opened.ok()) {
      conn->WriteQueued();  // what came while connecting
      why = conn->ReadAnswers();
    }
    conn->Break(why);
    Forget(conn.get(), /*fall_back=*/false);
    if (why.ok()) why = absl::UnavailableError("the worker closed the direct push connection");
    for (auto& [done, status] : conn->TakeUnanswered(why, /*never_connected=*/!opened.ok())) {
      done(std::move(status), rpc::PushTaskReply());
    }
  }
  conn.reset();
  absl::MutexLock lock(&mu_);
  --live_;
}

void DirectPushes::Forget(const Conn* conn, bool fall_back) {
  absl::MutexLock lock(&mu_);
  auto it = conns_.find(conn->address());
  if (fall_back) fallback_addresses_.insert(conn->address());
  if (it != conns_.end() && it->second.get() == conn) conns_.erase(it);
}

void DirectPushes::Shutdown(absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    for (auto& [address, conn] : conns_) conn->Cancel();
    auto none_live = absl::Condition(+[](int* live) { return *live == 0; }, &live_);
    if (!mu_.AwaitWithTimeout(none_live, timeout)) {
      // A connection's thread still asking for the port or connecting (each bounded by 5 s),
      // or, with many connections (a driver of 1,000 actors), still ending: it uses this
      // object, so wait for it.
      spdlog::warn("direct pushes: waiting for {} connection thread(s) still opening or ending", live_);
      mu_.AwaitWithTimeout(none_live, absl::Seconds(15));
    }
  }
  writer_.Stop();  // its writes fail fast: every connection was shut down
}

}  // namespace shoal
