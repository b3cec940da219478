// The remote functions of this process: what SHOAL_REMOTE registered, by name and by address.
//
// Registrations happen during static initialization (of the program, or of a library that
// shoal-worker loads) and go straight on to the core worker's table (RegisterTaskFunction, safe
// during static initialization), each function wrapped so that a C++ exception becomes an
// TASK_EXCEPTION status (ErrorStatus) whose message is what() and whose exception_type is the
// exception's demangled type. This table adds the function-address -> name map that shoal::Task needs,
// and remembers conflicts, which static initializers cannot report, for shoal::Init.
// Threading: any thread; one mutex.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace shoal::api {

// FailedPrecondition listing the problems when two different functions were registered under
// one name, or a SHOAL_REMOTE could not be read; else OK.
absl::Status CheckRegistrations();

// The status a remote function's exception (the one being handled) becomes.
// REQUIRES: called inside a catch block.
absl::Status StatusFromCurrentException();

}  // namespace shoal::api
