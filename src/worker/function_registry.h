// The process-wide table of task functions by name (RegisterTaskFunction in core_worker.h).
// Registration usually happens in static initializers (of the program or of libraries that
// shoal-worker loads), so the table is built on first use.
// Threading: any thread.
#pragma once

#include <string>

#include "src/worker/core_worker.h"

namespace shoal {

// The function registered under `name`, or nullptr. The pointer stays valid for the
// process's lifetime (functions are never unregistered).
const TaskFunction* FindTaskFunction(const std::string& name);

}  // namespace shoal
