#include "src/raylet/worker_command_policy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace shoal {
namespace {

// `path` with every symlink resolved; "" when it does not exist.
std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : std::string();
}

constexpr char kHowToAllow[] =
    "a node starts only Shoal's own programs, programs in its --worker-program-dirs, and "
    "`-m shoal.worker` under the Python interpreters of its --python-executable (default: python3 on "
    "its PATH); start the node with the one this needs";

}  // namespace

WorkerCommandPolicy::WorkerCommandPolicy(const WorkerCommandPolicyOptions& options) {
  for (const std::string& dir : options.program_dirs) {
    std::string real = RealPath(dir);
    if (real.empty()) {
      spdlog::warn("worker program directory {} does not exist: left out", dir);
      continue;
    }
    if (!absl::EndsWith(real, "/")) real += '/';
    dirs_.push_back(std::move(real));
  }
  for (const std::string& python : options.python_executables) {
    std::string real = RealPath(python);
    if (real.empty()) {
      spdlog::warn("Python executable {} does not exist: left out", python);
      continue;
    }
    pythons_.insert(std::move(real));
  }
  python_names_.insert(options.python_names.begin(), options.python_names.end());
}

bool WorkerCommandPolicy::IsTrustedPython(const std::string& path) const {
  if (path.empty() || path[0] != '/') return false;
  const std::string real = RealPath(path);
  return !real.empty() && pythons_.contains(real);
}

absl::Status WorkerCommandPolicy::CheckInterpreter(const std::string& interpreter) const {
  if (IsTrustedPython(interpreter) || python_names_.contains(interpreter)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("the runtime env's Python ", interpreter, " is not an interpreter this node trusts (",
                   pythons_.empty() ? std::string("none") : absl::StrJoin(pythons_, ", "), "); ", kHowToAllow));
}

absl::Status WorkerCommandPolicy::CheckCommand(const std::vector<std::string>& argv) const {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("worker_command must name the worker executable");
  }
  const std::string& program = argv[0];
  if (program[0] != '/') {
    return absl::PermissionDeniedError(
        absl::StrCat("worker program '", program, "' is not an absolute path; ", kHowToAllow));
  }
  if (IsTrustedPython(program)) {
    if (argv.size() == 3 && argv[1] == "-m" && argv[2] == "shoal.worker") return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat("a worker command under the Python interpreter ", program,
                                                    " must be exactly `-m shoal.worker`, got: ",
                                                    absl::StrJoin(argv, " ")));
  }
  const std::string real = RealPath(program);
  if (real.empty()) {
    return absl::PermissionDeniedError(absl::StrCat("worker program ", program, " does not exist on this node"));
  }
  for (const std::string& dir : dirs_) {
    if (absl::StartsWith(real, dir)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("worker program ", program,
                                                  real == program ? "" : absl::StrCat(" (", real, ")"),
                                                  " is not one this node may start: ", kHowToAllow));
}

std::string WorkerCommandPolicy::DiscoverPython() {
  FILE* pipe = popen("python3 -c 'import sys; print(sys.executable)' 2>/dev/null </dev/null", "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  if (pclose(pipe) != 0) return "";
  return std::string(absl::StripAsciiWhitespace(out));
}

}  // namespace shoal
