// Parallel sum: split 1..N into chunks, sum each chunk in its own task, add up the results.
//
//   build/bin/shoal-example-parallel-sum [N] [TASKS]     (defaults: 100000000, 1000)
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "shoal/api.h"

// The sum of lo..hi-1.
int64_t SumRange(int64_t lo, int64_t hi) {
  int64_t sum = 0;
  for (int64_t i = lo; i < hi; ++i) sum += i;
  return sum;
}
SHOAL_REMOTE(SumRange);

int main(int argc, char** argv) {
  shoal::Init();
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 100'000'000;
  const int64_t tasks = argc > 2 ? std::atoll(argv[2]) : 1000;
  if (n < 1 || tasks < 1) {
    std::cerr << "usage: " << argv[0] << " [N >= 1] [TASKS >= 1]\n";
    return 2;
  }

  auto start = std::chrono::steady_clock::now();
  std::vector<shoal::ObjectRef<int64_t>> parts;
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t lo = 1 + n * t / tasks, hi = 1 + n * (t + 1) / tasks;
    parts.push_back(shoal::Task(SumRange).Remote(lo, hi));
  }
  int64_t total = 0;
  for (const std::shared_ptr<int64_t>& part : shoal::Get(parts)) total += *part;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const int64_t expected = n * (n + 1) / 2;
  std::cout << "sum of 1.." << n << " over " << tasks << " tasks = " << total << " (expected " << expected
            << ") in " << seconds << " s" << std::endl;
  shoal::Shutdown();
  return total == expected ? 0 : 1;
}
