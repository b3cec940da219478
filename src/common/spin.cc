#include "src/common/spin.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shoal {

absl::StatusOr<absl::Duration> SpinBudgetFromEnvironment() {
  const char* value = std::getenv("SHOAL_SPIN_WAIT_US");
  if (value == nullptr || *value == '\0') return kDefaultSpinBudget;
  int64_t us = 0;
  if (!absl::SimpleAtoi(value, &us) || us < 0 || absl::Microseconds(us) > kMaxSpinBudget) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SHOAL_SPIN_WAIT_US must be a whole number of microseconds from 0 to ",
        absl::ToInt64Microseconds(kMaxSpinBudget), " (0: never spin), got '", value, "'"));
  }
  return absl::Microseconds(us);
}

absl::Duration SpinBudget() {
  static const absl::Duration budget = SpinBudgetFromEnvironment().value_or(kDefaultSpinBudget);
  return budget;
}

void AdaptiveSpin::Learn(bool hit) {
  if (hit) {
    rest_.store(0, std::memory_order_relaxed);  // a rest another thread began meanwhile ends too
    misses_.store(0, std::memory_order_relaxed);
    next_rest_.store(kFirstRest, std::memory_order_relaxed);
    return;
  }
  if (misses_.fetch_add(1, std::memory_order_relaxed) + 1 < kMissesBeforeRest) return;
  misses_.store(0, std::memory_order_relaxed);
  const int64_t rest = next_rest_.load(std::memory_order_relaxed);
  rest_.store(rest, std::memory_order_relaxed);
  next_rest_.store(std::min(rest * 2, kLongestRest), std::memory_order_relaxed);
}

}  // namespace shoal
