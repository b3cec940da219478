#include "src/raylet/runtime_env_agent.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "src/common/fake_clock.h"
#include "src/common/runtime_env.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"
#include "tests/test_util/zip_builder.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
using test_util::BuildZip;
using test_util::TempDir;

constexpr char kWorkingDir[] = "gcs://_shoal_pkg_00000000000000000000000000000001.zip";
constexpr char kModule[] = "gcs://_shoal_pkg_00000000000000000000000000000002.zip";
constexpr char kHostile[] = "gcs://_shoal_pkg_00000000000000000000000000000003.zip";
constexpr char kWheel[] = "gcs://_shoal_pkg_00000000000000000000000000000004_shoalwheeltest-1.0-py3-none-any.whl";

std::string Wheel() {
  const std::string info = "shoalwheeltest-1.0.dist-info/";
  return BuildZip({{.name = "shoalwheeltest/__init__.py", .data = "VALUE = 42\n"},
                   {.name = info + "METADATA", .data = "Metadata-Version: 2.1\nName: shoalwheeltest\nVersion: 1.0\n"},
                   {.name = info + "WHEEL",
                    .data = "Wheel-Version: 1.0\nGenerator: shoal-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
                   {.name = info + "RECORD",
                    .data = "shoalwheeltest/__init__.py,,\n" + info + "METADATA,,\n" + info + "WHEEL,,\n" + info +
                            "RECORD,,\n"}});
}

// An agent over an in-memory package store, with a way to wait for its setup jobs.
struct Fixture {
  TempDir dir{"shoal-renv"};
  FakeClock clock;
  std::map<std::string, std::string> packages = {
      {kWorkingDir, BuildZip({{.name = "app.py", .data = "ANSWER = 42\n"}, {.name = "data/x.txt", .data = "x"}})},
      {kModule, BuildZip({{.name = "mymod/__init__.py", .data = ""}})},
      {kHostile, BuildZip({{.name = "ok.txt", .data = "ok"}, {.name = "../escape.txt", .data = "gotcha"}})},
      {kWheel, Wheel()},
  };
  absl::Mutex mu;
  int changes = 0;
  std::unique_ptr<RuntimeEnvAgent> agent;

  explicit Fixture(int max_unused_packages = 32, int max_unused_envs = 4) {
    RuntimeEnvAgentOptions options;
    options.root_dir = (fs::path(dir.path) / "root").string();
    options.fetch_package = [this](const std::string& uri) -> absl::StatusOr<std::string> {
      auto it = packages.find(uri);
      if (it == packages.end()) return absl::NotFoundError("no such package");
      return it->second;
    };
    options.on_change = [this] {
      absl::MutexLock lock(&mu);
      ++changes;
    };
    options.max_unused_packages = max_unused_packages;
    options.max_unused_envs = max_unused_envs;
    agent = std::make_unique<RuntimeEnvAgent>(clock, options);
  }

  std::string Root() const { return (fs::path(dir.path) / "root").string(); }

  // Prepares until the setup ends (or a minute passes).
  absl::StatusOr<RuntimeEnvContext> PrepareAndWait(const rpc::RuntimeEnv& env) {
    for (int i = 0; i < 1200; ++i) {
      int seen;
      {
        absl::MutexLock lock(&mu);
        seen = changes;
      }
      auto prepared = agent->Prepare(env);
      if (!prepared.ok()) return prepared.status();
      if (prepared->has_value()) return **prepared;
      absl::MutexLock lock(&mu);
      auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return changes != seen; };
      mu.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(100));
    }
    return absl::DeadlineExceededError("setup did not end");
  }
};

std::map<std::string, std::string> EnvMap(const RuntimeEnvContext& c) { return {c.env.begin(), c.env.end()}; }

TEST_CASE("working_dir and py_modules are fetched, unpacked and put on the import path") {
  Fixture f;
  rpc::RuntimeEnv env;
  env.set_working_dir(kWorkingDir);
  env.add_py_modules(kModule);
  env.add_python_path("/driver/code");
  (*env.mutable_env_vars())["MY_VAR"] = "hello";
  env.set_serialized("{\"x\": 1}");
  auto first = f.agent->Prepare(env);
  REQUIRE_OK(first);
  CHECK_FALSE(first->has_value());  // being set up
  auto context = f.PrepareAndWait(env);
  REQUIRE_OK(context);
  CHECK(fs::exists(fs::path(context->cwd) / "app.py"));
  CHECK(fs::exists(fs::path(context->cwd) / "data" / "x.txt"));
  CHECK(absl::StartsWith(context->cwd, f.Root()));
  auto vars = EnvMap(*context);
  CHECK(vars["MY_VAR"] == "hello");
  CHECK(vars["SHOAL_RUNTIME_ENV"] == "{\"x\": 1}");
  const std::string path = vars["PYTHONPATH"];
  CHECK(absl::StartsWith(path, context->cwd + ":"));
  CHECK(absl::StrContains(path, ":/driver/code"));
  const std::string module_dir = path.substr(context->cwd.size() + 1, path.find(":/driver/code") - context->cwd.size() - 1);
  CHECK(fs::exists(fs::path(module_dir) / "mymod" / "__init__.py"));
  CHECK(context->python.empty());
  CHECK(f.agent->stats().packages == 2);
}

TEST_CASE("an archive that writes outside its directory is refused, and nothing is written") {
  Fixture f;
  rpc::RuntimeEnv env;
  env.set_working_dir(kHostile);
  auto context = f.PrepareAndWait(env);
  REQUIRE_CODE(context, kFailedPrecondition);
  CHECK(absl::StrContains(context.status().message(), "refused"));
  CHECK(absl::StrContains(context.status().message(), "../escape.txt"));
  CHECK_FALSE(fs::exists(fs::path(f.Root()) / "packages" / "escape.txt"));
  CHECK_FALSE(fs::exists(fs::path(f.Root()) / "escape.txt"));
  CHECK_FALSE(fs::exists(fs::path(f.dir.path) / "escape.txt"));
  // The failure is remembered a while, then tried again.
  CHECK_CODE(f.agent->Prepare(env), kFailedPrecondition);
  f.clock.Advance(absl::Seconds(11));
  auto again = f.agent->Prepare(env);
  REQUIRE_OK(again);
  CHECK_FALSE(again->has_value());
}

TEST_CASE("a package that is not in the store fails the setup") {
  Fixture f;
  rpc::RuntimeEnv env;
  env.set_working_dir("gcs://_shoal_pkg_ffffffffffffffffffffffffffffffff.zip");
  auto context = f.PrepareAndWait(env);
  REQUIRE_CODE(context, kFailedPrecondition);
  CHECK(absl::StrContains(context.status().message(), "cannot fetch"));
}

TEST_CASE("an invalid environment is refused before anything is set up") {
  Fixture f;
  rpc::RuntimeEnv env;
  env.set_working_dir("s3://bucket/x.zip");
  CHECK_CODE(f.agent->Prepare(env), kInvalidArgument);
}

TEST_CASE("a virtualenv needs the worker's interpreter on this node") {
  Fixture f;
  rpc::RuntimeEnv env;
  env.add_pip_packages("requests");
  env.set_interpreter("/no/such/python3");
  auto context = f.PrepareAndWait(env);
  REQUIRE_CODE(context, kFailedPrecondition);
  CHECK(absl::StrContains(context.status().message(), "does not exist on this node"));
}

// The python3 first on PATH (the one the tests' workers run).
std::string Python() {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':', absl::SkipEmpty())) {
    const fs::path candidate = fs::path(std::string(dir)) / "python3";
    if (fs::exists(candidate)) return candidate.string();
  }
  return "";
}

TEST_CASE("pip installs a wheel into a virtualenv that sees the system's packages, a bad requirement fails") {
  const std::string python = Python();
  REQUIRE_FALSE(python.empty());  // Python workers need it on every node
  Fixture f;
  rpc::RuntimeEnv env;
  env.add_py_module_wheels(kWheel);
  env.add_pip_install_options("--no-index");
  env.set_interpreter(python);
  auto context = f.PrepareAndWait(env);
  REQUIRE_OK(context);
  CHECK(context->interpreter == python);
  REQUIRE(absl::StartsWith(context->python, f.Root()));
  CHECK(EnvMap(*context)["VIRTUAL_ENV"] + "/bin/python" == context->python);
  const std::string check = context->python + " -c 'import shoalwheeltest, json; assert shoalwheeltest.VALUE == 42'";
  CHECK(std::system(check.c_str()) == 0);
  CHECK(f.agent->stats().envs == 1);

  rpc::RuntimeEnv bad;
  bad.add_pip_packages("shoal-no-such-package-for-tests==9.9");
  bad.add_pip_install_options("--no-index");
  bad.add_pip_install_options("--extra-index-url");
  bad.add_pip_install_options("https://someone:hunter2secret@index.invalid/simple");
  bad.set_interpreter(python);
  auto failed = f.PrepareAndWait(bad);
  REQUIRE_CODE(failed, kFailedPrecondition);
  CHECK(absl::StrContains(failed.status().message(), "pip install failed"));
  CHECK(absl::StrContains(failed.status().message(), "shoal-no-such-package-for-tests"));
  // The index's credentials never reach the caller (nor the env's log).
  CHECK_FALSE(absl::StrContains(failed.status().message(), "hunter2secret"));
  // Nothing half-built is left.
  CHECK(f.agent->stats().envs == 1);
}

TEST_CASE("unused packages are deleted beyond the cache size, least recently used first, used ones stay") {
  Fixture f(/*max_unused_packages=*/0);
  rpc::RuntimeEnv a, b;
  a.set_working_dir(kWorkingDir);
  b.set_working_dir(kModule);
  auto ca = f.PrepareAndWait(a);
  auto cb = f.PrepareAndWait(b);
  REQUIRE_OK(ca);
  REQUIRE_OK(cb);
  f.agent->Tick({});
  CHECK(fs::exists(ca->cwd));  // prepared a moment ago
  f.clock.Advance(absl::Seconds(30));
  f.agent->Tick({RuntimeEnvKey(a)});  // a worker of `a` lives
  CHECK(fs::exists(ca->cwd));
  CHECK_FALSE(fs::exists(cb->cwd));
  CHECK(f.agent->stats().packages == 1);
  f.agent->Tick({});
  CHECK_FALSE(fs::exists(ca->cwd));
  CHECK(f.agent->stats().packages == 0);
  // Prepared again, it is fetched again.
  auto again = f.PrepareAndWait(a);
  REQUIRE_OK(again);
  CHECK(fs::exists(fs::path(again->cwd) / "app.py"));
}

}  // namespace
}  // namespace shoal
