// shoal-worker: the default C++ worker process. A raylet starts it (as a lease request's
// worker_command) with the SHOAL_* environment; it loads user code from shared libraries, whose
// static initializers register task functions, then serves tasks until told to exit or its
// raylet goes away.
//
//   shoal-worker --library /path/libtasks.so [--library /path/libmore.so ...]
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/common/daemon.h"
#include "src/common/session.h"
#include "src/common/system.h"
#include "src/worker/core_worker.h"

namespace {

int Usage(const char* program) {
  std::fprintf(stderr, "usage: %s --library LIB.so [--library LIB.so ...]\n"
                       "Runs as a Shoal worker; started by a raylet with SHOAL_WORKER_MODE=1.\n", program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> libraries;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Usage(argv[0]);
      return 0;
    }
    if (arg == "--library" && i + 1 < argc) {
      libraries.push_back(argv[++i]);
    } else if (arg.rfind("--library=", 0) == 0) {
      libraries.push_back(arg.substr(10));
    } else {
      std::fprintf(stderr, "error: unknown argument '%s'\n", arg.c_str());
      return Usage(argv[0]);
    }
  }
  if (const char* mode = std::getenv("SHOAL_WORKER_MODE"); mode == nullptr || std::string(mode) != "1") {
    shoal::ReportFatal("shoal-worker runs only as a worker started by a raylet (SHOAL_WORKER_MODE=1)");
    return 2;
  }
  shoal::InstallCrashHandler();
  if (const char* session = std::getenv("SHOAL_SESSION_DIR"); session != nullptr && *session != '\0') {
    const char* id = std::getenv("SHOAL_WORKER_ID");
    std::string name = absl::StrCat("worker-", id != nullptr ? std::string(id).substr(0, 8) : "", "-", getpid());
    (void)shoal::InitLogging(name, absl::StrCat(session, "/logs"));
  }
  for (const auto& lib : libraries) {
    if (dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      shoal::ReportFatal(absl::StrCat("cannot load ", lib, ": ", dlerror()));
      return 1;
    }
  }
  auto worker = shoal::CoreWorker::CreateWorkerFromEnvironment();
  if (!worker.ok()) {
    shoal::ReportFatal(absl::StrCat("cannot start the worker: ", worker.status().ToString()));
    return 1;
  }
  absl::Status s = (*worker)->RunTaskLoop();
  worker->reset();
  if (!s.ok()) {
    shoal::ReportFatal(absl::StrCat("worker exiting: ", s.ToString()));
    return 1;
  }
  return 0;
}
