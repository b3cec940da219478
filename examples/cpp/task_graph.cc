// A task graph: tasks take other tasks' results by reference, so values flow from worker to
// worker (through the object store when large) without coming back to the driver.
//
//   Make(seed) ──► Normalize ──┐
//                               ├─► Dot ──► Describe
//   Make(seed) ──► Normalize ──┘        ▲
//                     Put(label) ───────┘
//
//   build/bin/shoal-example-task-graph
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "shoal/api.h"

// A deterministic vector of `n` values in [-1, 1).
std::vector<double> Make(uint32_t seed, int n) {
  std::vector<double> v(n);
  uint64_t x = seed * 2654435761u + 1;
  for (double& e : v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    e = static_cast<double>(x >> 11) / static_cast<double>(1ull << 53) * 2 - 1;
  }
  return v;
}

std::vector<double> Normalize(std::vector<double> v) {
  double norm = 0;
  for (double e : v) norm += e * e;
  norm = std::sqrt(norm);
  for (double& e : v) e /= norm;
  return v;
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) sum += a[i] * b[i];
  return sum;
}

std::string Describe(const std::string& label, double cosine) {
  return label + ": cosine similarity " + std::to_string(cosine);
}

SHOAL_REMOTE(Make, Normalize, Dot, Describe);

int main() {
  shoal::Init();
  constexpr int kSize = 100'000;  // 800 KB per vector: travels through the object store
  auto a = shoal::Task(Normalize).Remote(shoal::Task(Make).Remote(1u, kSize));
  auto b = shoal::Task(Normalize).Remote(shoal::Task(Make).Remote(2u, kSize));
  shoal::ObjectRef<double> cosine = shoal::Task(Dot).Remote(a, b);
  shoal::ObjectRef<std::string> label = shoal::Put(std::string("vectors 1 and 2"));
  shoal::ObjectRef<std::string> report = shoal::Task(Describe).Remote(label, cosine);
  std::cout << *shoal::Get(report) << std::endl;

  // The same graph computed here, to check.
  double expected = Dot(Normalize(Make(1, kSize)), Normalize(Make(2, kSize)));
  double got = *shoal::Get(cosine);
  std::cout << "checked against a local computation: " << (got == expected ? "equal" : "DIFFERENT") << std::endl;
  shoal::Shutdown();
  return got == expected ? 0 : 1;
}
