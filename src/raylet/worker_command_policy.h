// Which programs a raylet starts for lease requests: least authority inside the cluster. A lease
// request names its worker's command line, but the raylet runs only programs its operator
// trusts, so that even an authenticated client cannot make a node run a program of its choice:
//  - a program (argv[0], an absolute path, symlinks resolved) inside one of `program_dirs`:
//    Shoal's own binaries (the raylet's directory), the packages the raylet unpacked for
//    runtime envs, and the directories of C++ drivers, which run as their own workers, given
//    with --worker-program-dirs;
//  - a trusted Python interpreter running exactly `-m shoal.worker`: one whose real path is the
//    real path of one of `python_executables` (a virtualenv's python resolves to the
//    interpreter it was made from, so drivers in virtualenvs of that Python are served).
// A runtime env's interpreter (the raylet runs it to build a virtualenv) must be trusted too.
//
// Threading: immutable after construction; any thread.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace shoal {

struct WorkerCommandPolicyOptions {
  std::vector<std::string> program_dirs;
  std::vector<std::string> python_executables;
  // Bare interpreter names a runtime env may give, resolved on the node's PATH ("python3" when
  // the default, python3 on PATH, is what the node trusts).
  std::vector<std::string> python_names;
};

class WorkerCommandPolicy {
 public:
  // Resolves every entry's real path now; entries that do not exist are left out (and logged).
  explicit WorkerCommandPolicy(const WorkerCommandPolicyOptions& options);

  // OK when the raylet may start `argv`; PermissionDenied naming the program and how a node's
  // operator would allow it otherwise.
  absl::Status CheckCommand(const std::vector<std::string>& argv) const;
  // OK when `interpreter` (a runtime env's Python) is a trusted interpreter.
  absl::Status CheckInterpreter(const std::string& interpreter) const;

  // The real paths trusted, for logs and tests.
  const std::vector<std::string>& program_dirs() const { return dirs_; }
  const std::set<std::string>& python_executables() const { return pythons_; }

  // The interpreter `python3` on this process's PATH reports itself to be (sys.executable),
  // asked once by running it; "" when there is none or it does not answer.
  static std::string DiscoverPython();

 private:
  bool IsTrustedPython(const std::string& path) const;

  std::vector<std::string> dirs_;  // real paths, each ending in '/'
  std::set<std::string> pythons_;  // real paths
  std::set<std::string> python_names_;
};

}  // namespace shoal
