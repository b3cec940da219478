// `shoal microbenchmark [flags]`: runs the Python harness (shoal/_private/microbenchmark.py) with
// this build's package on the path: <dir of this binary>/../python when it holds `shoal` (the
// build tree), else whatever `import shoal` finds (an installed package). $SHOAL_PYTHON names
// the interpreter (default python3). The C++ shapes (--api cpp) run the bench binaries next to
// this one.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "src/cli/commands.h"

namespace shoal::cli {

int RunMicrobenchmark(int argc, char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path bin_dir = ec ? std::filesystem::path(".") : self.parent_path();
  const std::filesystem::path python_dir = bin_dir / ".." / "python";
  if (std::filesystem::exists(python_dir / "shoal" / "__init__.py", ec)) {
    const char* existing = std::getenv("PYTHONPATH");
    std::string path = std::filesystem::weakly_canonical(python_dir, ec).string();
    if (existing != nullptr && *existing != '\0') path += std::string(":") + existing;
    setenv("PYTHONPATH", path.c_str(), 1);
  }
  setenv("SHOAL_BIN_DIR", bin_dir.c_str(), 0);
  const char* python = std::getenv("SHOAL_PYTHON");
  std::string interpreter = python != nullptr && *python != '\0' ? python : "python3";
  std::vector<std::string> args = {interpreter, "-m", "shoal._private.microbenchmark"};
  for (int i = 2; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  execvp(cargs[0], cargs.data());
  std::cerr << "error: cannot run " << interpreter << " for the microbenchmark: " << std::strerror(errno)
            << " (set SHOAL_PYTHON to a Python with numpy)" << std::endl;
  return kExitFailure;
}

}  // namespace shoal::cli
