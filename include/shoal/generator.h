// Generator tasks: a remote function whose first parameter is shoal::Yield<T>& hands its values
// to the caller one by one, while it runs (Ray's num_returns="streaming").
//
//   void Count(shoal::Yield<int64_t>& out, int64_t n) {
//     for (int64_t i = 0; i < n; ++i) out(i);          // each value goes to the caller now
//   }
//   SHOAL_REMOTE(Count);
//
//   shoal::ObjectRefGenerator<int64_t> gen = shoal::Task(Count).Remote(5);
//   while (std::optional<shoal::ObjectRef<int64_t>> ref = gen.Next()) {
//     int64_t v = *shoal::Get(*ref);                    // 0, 1, 2, 3, 4
//   }
//
// Actor methods too: a method whose first parameter is Yield<T>& (and that returns void),
// registered with SHOAL_REMOTE(&Class::Method), answers an ObjectRefGenerator<T>:
//   auto gen = counter.Task(&Counter::Steps).Remote(4, 10);
//
// Values travel as task results do (inline when small, through the object store when large).
// If the function throws, the ref after the last value holds the failure (Get throws it), then
// Next answers nullopt. A worker that dies mid-way is retried (Task options), and the values the
// retry yields again are not repeated. Dropping the generator frees the values not taken.
// Threading: a generator is used by one thread at a time; Yield only inside its task.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "shoal/internal.h"
#include "shoal/object_ref.h"
#include "shoal/serialization.h"

namespace shoal {

// What a generator task yields through: out(value) sends one value to the caller.
template <typename T>
class Yield {
 public:
  using value_type = T;
  Yield() = default;
  Yield(const Yield&) = delete;
  Yield& operator=(const Yield&) = delete;

  void operator()(const T& value) { internal::ReportGeneratorItem(count_++, internal::Pack(value)); }
  // How many values were sent so far.
  int64_t count() const { return count_; }

 private:
  int64_t count_ = 0;
};

// The caller's side of a generator task: the refs of its values, in order, as they come.
template <typename T>
class ObjectRefGenerator {
 public:
  // For the runtime: adopts the task's own return.
  explicit ObjectRefGenerator(const internal::NewObject& task) : task_(task), epoch_(task.epoch) {}
  ObjectRefGenerator(const ObjectRefGenerator&) = delete;
  ObjectRefGenerator& operator=(const ObjectRefGenerator&) = delete;
  ObjectRefGenerator(ObjectRefGenerator&& other) noexcept
      : task_(std::move(other.task_)), epoch_(std::exchange(other.epoch_, 0)) {}
  ObjectRefGenerator& operator=(ObjectRefGenerator&& other) noexcept {
    if (this != &other) {
      Release();
      task_ = std::move(other.task_);
      epoch_ = std::exchange(other.epoch_, 0);
    }
    return *this;
  }
  ~ObjectRefGenerator() { Release(); }

  // The ref of the next value, waiting up to `timeout_ms` (< 0: until it comes); nullopt once
  // the task ended and every value was handed out. Throws GetTimeoutError past the timeout.
  std::optional<ObjectRef<T>> Next(int64_t timeout_ms = -1) {
    internal::NextItem next =
        internal::GeneratorNext(task_.id(), epoch_, timeout_ms < 0 ? -1 : timeout_ms * 1000);
    if (!next.found) return std::nullopt;
    return ObjectRef<T>(next.item);
  }
  // Ready once the task ended; Get throws its failure, if it failed.
  const ObjectRef<void>& Completed() const { return task_; }

 private:
  void Release() {
    if (epoch_ != 0) internal::ReleaseGenerator(task_.id(), epoch_);
    epoch_ = 0;
  }
  ObjectRef<void> task_;
  uint64_t epoch_ = 0;  // 0: moved from
};

namespace internal {
template <typename T>
struct IsYield : std::false_type {};
template <typename T>
struct IsYield<Yield<T>&> : std::true_type {};
}  // namespace internal

}  // namespace shoal
