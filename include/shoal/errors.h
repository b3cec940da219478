// The exceptions the C++ task API throws.
//
// The runtime below the API reports failures as statuses; the API turns them into these
// exceptions, so user code handles Shoal failures like any other C++ error:
//
//   Error                  every Shoal failure (bad options, unregistered function, lost object)
//   ├── TaskError          the remote function threw; carries the exception's type and message
//   ├── WorkerCrashedError the worker (or its node) died and the retries ran out
//   ├── OutOfMemoryError   its node's memory monitor killed the worker, past the task's retries
//   ├── ActorDiedError     an actor call could not run: the actor is dead for good
//   │   └── ActorUnschedulableError  no node may ever host it (its strategy cannot be met)
//   ├── ObjectLostError    every copy of a value is gone, or its owner died
//   ├── TaskCancelledError the task was cancelled (shoal::Cancel)
//   └── GetTimeoutError    Get waited longer than its timeout
// Other runtime failures (no node can run the task, the store is full) are Error, with the
// error type's name ("TASK_UNSCHEDULABLE") at the start of what().
//
// Threading: values; any thread.
#pragma once

#include <stdexcept>
#include <string>

namespace shoal {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Raised by Get when the task's function threw. type_name() is the demangled C++ type of what
// was thrown ("std::out_of_range", "my::ParseError"); message() its what().
class TaskError : public Error {
 public:
  TaskError(std::string type_name, std::string message)
      : Error(Describe(type_name, message)), type_name_(std::move(type_name)), message_(std::move(message)) {}
  const std::string& type_name() const { return type_name_; }
  const std::string& message() const { return message_; }

 private:
  static std::string Describe(const std::string& type_name, const std::string& message) {
    std::string out = "remote task raised " + (type_name.empty() ? std::string("an exception") : type_name);
    return message.empty() ? out : out + ": " + message;
  }
  std::string type_name_;
  std::string message_;
};

// Raised by Get when the task could not finish because its worker process or its node died,
// on every attempt (the task's max_retries, default 3). what() names the task and the cause.
class WorkerCrashedError : public Error {
 public:
  explicit WorkerCrashedError(const std::string& what) : Error(what) {}
};

// Raised by Get when the memory monitor of the task's node killed its worker to keep the node
// alive, and the task is not retried again: max_retries=0, or the owner's task_oom_retries
// ($SHOAL_TASK_OOM_RETRIES) are spent. what() names the node, its memory use and the threshold.
class OutOfMemoryError : public Error {
 public:
  explicit OutOfMemoryError(const std::string& what) : Error(what) {}
};

// Raised by Get for an actor method call when the actor is dead for good (killed, its restarts
// used up, its factory threw, its creator exited), or died during the call and the call's
// retries ran out. what() names the cause (e.g. the factory's exception type and message).
class ActorDiedError : public Error {
 public:
  explicit ActorDiedError(const std::string& what) : Error(what) {}
};

// An ActorDiedError for an actor that no node may ever host: its scheduling strategy cannot be
// met (a hard node affinity to a node that is dead or too small).
class ActorUnschedulableError : public ActorDiedError {
 public:
  explicit ActorUnschedulableError(const std::string& what) : ActorDiedError(what) {}
};

// Raised by Get when a value's every copy is gone (its node died) or the process that owned it
// exited.
class ObjectLostError : public Error {
 public:
  explicit ObjectLostError(const std::string& what) : Error(what) {}
};

// Raised by Get for a task that was cancelled before or while it ran.
class TaskCancelledError : public Error {
 public:
  explicit TaskCancelledError(const std::string& what) : Error(what) {}
};

// Raised by Get when the values were not all ready within its timeout. The refs stay valid:
// Get them again later.
class GetTimeoutError : public Error {
 public:
  explicit GetTimeoutError(const std::string& what) : Error(what) {}
};

}  // namespace shoal
