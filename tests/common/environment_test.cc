#include "src/common/environment.h"

#include <catch2/catch.hpp>
#include <stdlib.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace shoal {
namespace {

std::string Get(const char* name) {
  const char* v = getenv(name);
  return v != nullptr ? std::string(v) : std::string("(unset)");
}

int Count(const std::string& name) {
  int n = 0;
  for (char** e = environ; *e != nullptr; ++e) n += std::string(*e).rfind(name + "=", 0) == 0 ? 1 : 0;
  return n;
}

// Readers walk the environment the whole time the writer adds, changes and removes names: with
// glibc's setenv, adding names moves the array under them (freed memory; under ASan a
// use-after-free, without it a crash or garbage now and then). Each reader checks that a variable
// nobody touches keeps its value throughout.
TEST_CASE("environment: names added, changed and removed while other threads read", "[environment]") {
  setenv("SHOAL_ENV_TEST_STEADY", "steady", 1);
  PrepareEnvironment();
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::atomic<int64_t> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        if (Get("SHOAL_ENV_TEST_STEADY") != "steady") wrong.fetch_add(1);
        (void)getenv("http_proxy");  // what gRPC looked up when the worker crashed
        (void)getenv("SHOAL_ENV_TEST_NAME_99");
        reads.fetch_add(1);
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    // 300 names, more than the spare slots: a larger array is made under the readers too.
    for (int i = 100; i < 400 && round == 10; ++i) SetEnvironmentVariable(absl::StrCat("SHOAL_ENV_TEST_MORE_", i), "m");
    for (int i = 0; i < 100; ++i) SetEnvironmentVariable(absl::StrCat("SHOAL_ENV_TEST_NAME_", i), std::to_string(round));
    for (int i = 0; i < 100; i += 2) UnsetEnvironmentVariable(absl::StrCat("SHOAL_ENV_TEST_NAME_", i));
    SetEnvironmentVariable("CUDA_VISIBLE_DEVICES", round % 2 == 0 ? "0,1" : "");
  }
  done.store(true);
  for (auto& t : readers) t.join();
  CHECK(wrong.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(Get("SHOAL_ENV_TEST_NAME_1") == "19");
  CHECK(Get("SHOAL_ENV_TEST_NAME_98") == "(unset)");
  CHECK(Get("CUDA_VISIBLE_DEVICES") == "");
  CHECK(Count("SHOAL_ENV_TEST_NAME_1") == 1);  // changed in place, never added twice
  CHECK(Get("SHOAL_ENV_TEST_MORE_399") == "m");
}

TEST_CASE("environment: a name present twice is removed entirely", "[environment]") {
  PrepareEnvironment();
  SetEnvironmentVariable("SHOAL_ENV_TEST_TWICE", "a");
  SetEnvironmentVariable("SHOAL_ENV_TEST_OTHER", "b");
  // A second entry of the same name, as an environment passed by execve may hold.
  char** slot = environ;
  while (*slot != nullptr) ++slot;
  static char twice[] = "SHOAL_ENV_TEST_TWICE=again";
  *slot = twice;  // the slot after it is null: PrepareEnvironment left spare null slots
  CHECK(Count("SHOAL_ENV_TEST_TWICE") == 2);
  UnsetEnvironmentVariable("SHOAL_ENV_TEST_TWICE");
  CHECK(Count("SHOAL_ENV_TEST_TWICE") == 0);
  CHECK(Get("SHOAL_ENV_TEST_OTHER") == "b");
}

TEST_CASE("environment: glibc's setenv and unsetenv keep working on the prepared array", "[environment]") {
  PrepareEnvironment();
  char** prepared = environ;
  SetEnvironmentVariable("SHOAL_ENV_TEST_GLIBC", "ours");
  setenv("SHOAL_ENV_TEST_GLIBC", "theirs", 1);  // a name that is there: replaced in place
  CHECK(environ == prepared);
  CHECK(Get("SHOAL_ENV_TEST_GLIBC") == "theirs");
  unsetenv("SHOAL_ENV_TEST_GLIBC");
  CHECK(Get("SHOAL_ENV_TEST_GLIBC") == "(unset)");
  CHECK(environ == prepared);
}

// glibc adding a name takes the array into one of its own; a new name added here afterwards
// goes into a new array of this module's, never through glibc (whose next add frees its array).
TEST_CASE("environment: after glibc added a name, a new name goes into an array of this module's again",
          "[environment]") {
  PrepareEnvironment();
  SetEnvironmentVariable("SHOAL_ENV_TEST_BEFORE", "1");
  setenv("SHOAL_ENV_TEST_GLIBC_NEW", "x", 1);
  char** glibcs = environ;
  SetEnvironmentVariable("SHOAL_ENV_TEST_GLIBC_NEW", "y");  // there already: in place, in glibc's array
  CHECK(environ == glibcs);
  CHECK(Get("SHOAL_ENV_TEST_GLIBC_NEW") == "y");
  SetEnvironmentVariable("SHOAL_ENV_TEST_AFTER", "z");  // a new name: into an array of this module's
  CHECK(environ != glibcs);
  char** ours = environ;
  CHECK(Get("SHOAL_ENV_TEST_AFTER") == "z");
  CHECK(Get("SHOAL_ENV_TEST_GLIBC_NEW") == "y");
  CHECK(Get("SHOAL_ENV_TEST_BEFORE") == "1");
  SetEnvironmentVariable("SHOAL_ENV_TEST_AFTER_2", "w");  // room there: the same array
  CHECK(environ == ours);
  UnsetEnvironmentVariable("SHOAL_ENV_TEST_AFTER");
  CHECK(Get("SHOAL_ENV_TEST_AFTER") == "(unset)");
  CHECK(Get("SHOAL_ENV_TEST_AFTER_2") == "w");
  CHECK(Count("SHOAL_ENV_TEST_GLIBC_NEW") == 1);
}

TEST_CASE("environment: more new names than spare slots go into a larger array, values intact", "[environment]") {
  PrepareEnvironment();
  char** prepared = environ;
  const int n = static_cast<int>(kSpareSlots) + 20;
  for (int i = 0; i < n; ++i) SetEnvironmentVariable(absl::StrCat("SHOAL_ENV_TEST_MANY_", i), std::to_string(i));
  CHECK(environ != prepared);
  for (int i = 0; i < n; ++i) CHECK(Get(absl::StrCat("SHOAL_ENV_TEST_MANY_", i).c_str()) == std::to_string(i));
}

}  // namespace
}  // namespace shoal
