// The time source, injected so that logic driven by time can be tested without sleeping.
// Threading: implementations are safe to call from any thread.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace shoal {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace shoal
