// Which programs a raylet may start as workers: real files and symlinks in a temporary tree,
// never run (the policy only resolves paths).
#include "src/raylet/worker_command_policy.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
using test_util::TempDir;

void Touch(const fs::path& path) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << "#!/bin/sh\n";
  fs::permissions(path, fs::perms::owner_all);
}

struct Tree {
  TempDir dir{"shoal-policy"};
  fs::path root{dir.path};
  Tree() {
    Touch(root / "bin/shoal-worker");
    Touch(root / "bin/my_driver");
    Touch(root / "bin2/evil");  // shares a prefix with bin/
    Touch(root / "apps/driver");
    Touch(root / "python/bin/python3.11");
    Touch(root / "other/python3");
    fs::create_directories(root / "venv/bin");
    fs::create_symlink(root / "python/bin/python3.11", root / "venv/bin/python");
    fs::create_symlink(root / "bin/my_driver", root / "apps/link_to_driver");  // into bin: allowed
    fs::create_symlink(root / "bin2/evil", root / "bin/innocent");            // out of bin: not
  }
  WorkerCommandPolicy Policy(std::vector<std::string> extra_dirs = {}) {
    WorkerCommandPolicyOptions o;
    o.program_dirs = {(root / "bin").string(), (root / "missing").string()};
    o.program_dirs.insert(o.program_dirs.end(), extra_dirs.begin(), extra_dirs.end());
    o.python_executables = {(root / "python/bin/python3.11").string(), (root / "missing/python").string()};
    return WorkerCommandPolicy(o);
  }
  std::string P(const std::string& rel) const { return (root / rel).string(); }
};

TEST_CASE("worker commands: programs in the trusted directories run, others are refused", "[worker_command_policy]") {
  Tree t;
  WorkerCommandPolicy policy = t.Policy();
  CHECK(policy.program_dirs().size() == 1);  // the missing one is left out
  CHECK(policy.python_executables().size() == 1);

  CHECK_OK(policy.CheckCommand({t.P("bin/shoal-worker")}));
  CHECK_OK(policy.CheckCommand({t.P("bin/my_driver"), "--any", "args"}));
  CHECK_OK(policy.CheckCommand({t.P("apps/link_to_driver")}));  // a symlink to a trusted program

  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {"/bin/sh", "-c", "touch /tmp/pwned"}, {t.P("bin2/evil")}, {t.P("apps/driver")}, {t.P("bin/innocent")}}) {
    absl::Status s = policy.CheckCommand(argv);
    CHECK(absl::IsPermissionDenied(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("is not one this node may start"));
    CHECK_THAT(std::string(s.message()), Catch::Contains("--worker-program-dirs"));
  }
  CHECK_THAT(std::string(policy.CheckCommand({"bin/shoal-worker"}).message()), Catch::Contains("not an absolute path"));
  CHECK_THAT(std::string(policy.CheckCommand({t.P("bin/nothing")}).message()), Catch::Contains("does not exist"));
  CHECK(absl::IsInvalidArgument(policy.CheckCommand({})));

  // A node that trusts another directory runs the programs there too.
  CHECK_OK(t.Policy({t.P("apps")}).CheckCommand({t.P("apps/driver")}));
}

TEST_CASE("worker commands: a trusted Python runs exactly -m shoal.worker", "[worker_command_policy]") {
  Tree t;
  WorkerCommandPolicy policy = t.Policy();
  CHECK_OK(policy.CheckCommand({t.P("python/bin/python3.11"), "-m", "shoal.worker"}));
  CHECK_OK(policy.CheckCommand({t.P("venv/bin/python"), "-m", "shoal.worker"}));  // a virtualenv of it
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {t.P("python/bin/python3.11"), "-c", "import os; os.system('id')"},
           {t.P("python/bin/python3.11"), "-m", "http.server"},
           {t.P("python/bin/python3.11"), "-m", "shoal.worker", "--extra"},
           {t.P("python/bin/python3.11")}}) {
    absl::Status s = policy.CheckCommand(argv);
    CHECK(absl::IsPermissionDenied(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("must be exactly `-m shoal.worker`"));
  }
  absl::Status other = policy.CheckCommand({t.P("other/python3"), "-m", "shoal.worker"});
  CHECK(absl::IsPermissionDenied(other));
  CHECK_THAT(std::string(other.message()), Catch::Contains("--python-executable"));
}

TEST_CASE("worker commands: a runtime env's interpreter must be trusted", "[worker_command_policy]") {
  Tree t;
  WorkerCommandPolicy policy = t.Policy();
  CHECK_OK(policy.CheckInterpreter(t.P("python/bin/python3.11")));
  CHECK_OK(policy.CheckInterpreter(t.P("venv/bin/python")));
  // A bare name only when the node trusts it by name (its default, python3 on its PATH).
  CHECK(absl::IsPermissionDenied(policy.CheckInterpreter("python3")));
  WorkerCommandPolicyOptions by_name;
  by_name.python_names = {"python3"};
  CHECK_OK(WorkerCommandPolicy(by_name).CheckInterpreter("python3"));
  CHECK(absl::IsPermissionDenied(WorkerCommandPolicy(by_name).CheckInterpreter("python2")));
  for (const std::string& bad : {t.P("other/python3"), std::string("/bin/sh"), std::string("python3"), std::string()}) {
    absl::Status s = policy.CheckInterpreter(bad);
    CHECK(absl::IsPermissionDenied(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("is not an interpreter this node trusts"));
  }
}

TEST_CASE("worker commands: python3 on PATH reports its own executable", "[worker_command_policy]") {
  const std::string python = WorkerCommandPolicy::DiscoverPython();
  if (python.empty()) {
    WARN("no python3 on PATH");
    return;
  }
  CHECK(fs::exists(python));
  CHECK(python.front() == '/');
}

}  // namespace
}  // namespace shoal
