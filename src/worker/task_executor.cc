#include "src/worker/task_executor.h"

#include <cxxabi.h>
#include <stdlib.h>

#include <exception>
#include <memory>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/worker/core_worker.h"
#include "src/worker/function_registry.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

std::string Demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && out != nullptr ? std::string(out.get()) : std::string(name);
}

// The type name of the exception being handled (inside a catch block).
std::string CurrentExceptionType() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  return type != nullptr ? Demangle(type->name()) : "unknown exception";
}

void FailAll(const rpc::TaskSpec& spec, const std::string& type, const std::string& message, bool application,
             rpc::PushTaskReply* reply) {
  reply->clear_returns();
  for (uint32_t i = 1; i <= std::max<uint32_t>(spec.num_returns(), 1); ++i) {
    *reply->add_returns() = ErrorValue(ReturnObjectId(spec, i), type, message);
  }
  reply->set_application_error(application);
}

}  // namespace

std::string CudaVisibleDevices(const rpc::GpuAssignment& gpus) {
  return absl::StrJoin(gpus.device_ids(), ",");
}

rpc::PushTaskReply TaskExecutor::Execute(const rpc::PushTaskRequest& request) {
  const rpc::TaskSpec& spec = request.spec();
  rpc::PushTaskReply reply;
  setenv("CUDA_VISIBLE_DEVICES", CudaVisibleDevices(request.gpus()).c_str(), /*overwrite=*/1);

  std::vector<std::string> args;
  args.reserve(spec.args_size());
  for (int i = 0; i < spec.args_size(); ++i) {
    const rpc::TaskArg& arg = spec.args(i);
    if (arg.kind_case() != rpc::TaskArg::kObject) {
      args.push_back(arg.inline_value());
      continue;
    }
    const rpc::ObjectValue& value = arg.object();
    if (value.is_error()) {  // the owner normally fails such a task before pushing it
      FailAll(spec, value.error_type(), value.error_message(), !IsSystemErrorType(value.error_type()), &reply);
      return reply;
    }
    if (!value.in_store()) {
      args.push_back(value.inline_data());
      continue;
    }
    auto bytes = store_.Read(value);
    if (!bytes.ok()) {
      FailAll(spec, kObjectLostError,
              absl::StrCat(DescribeTask(spec), ": argument ", i, " could not be read: ", bytes.status().message()),
              /*application=*/false, &reply);
      return reply;
    }
    args.push_back(std::move(*bytes));
  }

  const TaskFunction* fn = FindTaskFunction(spec.function_name());
  if (fn == nullptr) {
    FailAll(spec, "FunctionNotRegisteredError",
            absl::StrCat("function '", spec.function_name(), "' is not registered in this worker"),
            /*application=*/true, &reply);
    return reply;
  }
  absl::StatusOr<std::string> result;
  try {
    result = (*fn)(args);
  } catch (const std::exception& e) {
    absl::Status s = absl::AbortedError(e.what());
    s.SetPayload(kErrorTypeUrl, absl::Cord(CurrentExceptionType()));
    result = std::move(s);
  } catch (...) {
    absl::Status s = absl::AbortedError("an exception that is not a std::exception escaped the task");
    s.SetPayload(kErrorTypeUrl, absl::Cord(CurrentExceptionType()));
    result = std::move(s);
  }
  const ObjectId return_id = ReturnObjectId(spec, 1);
  if (!result.ok()) {
    *reply.add_returns() = ErrorValueFromStatus(return_id, result.status());
    reply.set_application_error(true);
    return reply;
  }
  if (result->size() <= kMaxInlineObjectSize) {
    *reply.add_returns() = InlineValue(return_id, std::move(*result));
    return reply;
  }
  auto stored = store_.Write(return_id, *result);
  if (!stored.ok()) {
    FailAll(spec, absl::IsResourceExhausted(stored.status()) ? kObjectStoreFullError : kSystemError,
            absl::StrCat(DescribeTask(spec), ": its ", result->size(),
                         "-byte result could not be stored: ", stored.status().message()),
            /*application=*/false, &reply);
    return reply;
  }
  *reply.add_returns() = std::move(*stored);
  return reply;
}

}  // namespace shoal
