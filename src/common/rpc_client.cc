#include "src/common/rpc_client.h"

#include "absl/strings/string_view.h"
#include "src/common/auth.h"

namespace shoal {

bool NeverConnected(const absl::Status& status) {
  if (!absl::IsUnavailable(status)) return false;
  for (absl::string_view words : {"failed to connect", "Connection refused", "connection attempt timed out"}) {
    if (status.message().find(words) != absl::string_view::npos) return true;
  }
  return false;
}

std::shared_ptr<grpc::Channel> ChannelCache::Get(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<grpc::Channel>& channel = channels_[address];
  if (channel == nullptr) channel = MakeChannel(address);
  return channel;
}

void ChannelCache::Reset(const std::string& address, const std::shared_ptr<grpc::Channel>& channel) {
  absl::MutexLock lock(&mu_);
  if (auto it = channels_.find(address); it != channels_.end() && it->second == channel) channels_.erase(it);
}

void ApplyCallOptions(const CallOptions& options, grpc::ClientContext& context) {
  AddClusterToken(context);
  if (options.timeout != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
  }
  if (options.wait_for_ready) context.set_wait_for_ready(true);
}

AsyncCalls::~AsyncCalls() { Shutdown(absl::Seconds(2)); }

uint64_t AsyncCalls::Begin(const AsyncCallOptions& options, grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  if (shutdown_ && options.cancel_on_shutdown) return 0;
  const uint64_t key = options.cancel_key != 0 ? options.cancel_key : next_key_++;
  ++outstanding_;
  if (options.cancel_on_shutdown || options.cancel_key != 0) {
    cancellable_[key] = Cancellable{context, options.cancel_on_shutdown};
  }
  return key;
}

void AsyncCalls::Unregister(uint64_t key) {
  absl::MutexLock lock(&mu_);
  cancellable_.erase(key);
}

void AsyncCalls::End() {
  absl::MutexLock lock(&mu_);
  --outstanding_;
}

void AsyncCalls::Cancel(uint64_t key) {
  absl::MutexLock lock(&mu_);
  if (auto it = cancellable_.find(key); it != cancellable_.end()) it->second.context->TryCancel();
}

void AsyncCalls::Shutdown(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  for (auto& [key, call] : cancellable_) {
    if (call.on_shutdown) call.context->TryCancel();
  }
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

}  // namespace shoal
