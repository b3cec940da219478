// Helpers for the tests of the push transports (PushStreams, DirectPushes): what each push's
// callback received, a named task to push, and a loopback port nothing listens on.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"

namespace shoal {

// What the push callbacks received, by push.
struct PushAnswers {
  struct Got {
    absl::Status status;
    rpc::PushTaskReply reply;
  };
  std::function<void(absl::Status, rpc::PushTaskReply)> For(int i) {
    return [this, i](absl::Status status, rpc::PushTaskReply reply) {
      absl::MutexLock lock(&mu);
      got.emplace(i, Got{std::move(status), std::move(reply)});
      ++calls[i];
    };
  }
  // Waits (bounded) for `n` answers.
  bool Await(size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return got.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
  }
  absl::Mutex mu;
  std::map<int, Got> got ABSL_GUARDED_BY(mu);
  std::map<int, int> calls ABSL_GUARDED_BY(mu);
};

// A normal task's push, its function named `name`.
inline rpc::PushTaskRequest NamedPush(const std::string& name) {
  rpc::PushTaskRequest request;
  request.mutable_spec()->set_task_id(TaskId::ForNormalTask(JobId::FromInt(5)).Binary());
  request.mutable_spec()->set_function_name(name);
  request.mutable_spec()->set_num_returns(1);
  return request;
}

// The same, as DirectPushes takes it.
inline SharedPushRequest SharedNamedPush(const std::string& name) {
  return std::make_shared<const rpc::PushTaskRequest>(NamedPush(name));
}

// A loopback port nothing listens on: one the kernel handed out, closed again.
inline int ClosedLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace shoal
