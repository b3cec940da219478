// Lets calls from threads an object does not own into it while it lives: an Entry taken on any
// thread (nested entries too) is let in until Close, which then waits for those inside; entries
// after Close are refused. The core worker closes its gate first in its destructor, so that a
// language layer's completion arriving later (an async actor call ending after shutdown) cannot
// touch a freed core.
// Threading: any thread.
#pragma once

#include "absl/synchronization/mutex.h"

namespace shoal {

class CallGate {
 public:
  class Entry {
   public:
    explicit Entry(CallGate& gate) : gate_(gate), inside_(gate.Enter()) {}
    ~Entry() {
      if (inside_) gate_.Leave();
    }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    // Whether the entry was let in (the gate was open).
    explicit operator bool() const { return inside_; }

   private:
    CallGate& gate_;
    const bool inside_;
  };

  // Refuses later entries and waits until every entry let in has left.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    mu_.Await(absl::Condition(+[](int* inside) { return *inside == 0; }, &inside_));
  }

 private:
  bool Enter() {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    ++inside_;
    return true;
  }
  void Leave() {
    absl::MutexLock lock(&mu_);
    --inside_;
  }

  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal
