#include "src/worker/task_executor.h"

#include <cxxabi.h>
#include <stdlib.h>

#include <exception>
#include <memory>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/common/environment.h"
#include "src/common/gpu_memory_caps.h"
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

// Every return of the task holds `error`; a TASK_EXCEPTION is an application error.
void FailAll(const rpc::TaskSpec& spec, const rpc::ErrorInfo& error, rpc::PushTaskReply* reply) {
  reply->clear_returns();
  for (auto& value : ErrorReturns(spec, error)) *reply->add_returns() = std::move(value);
  reply->set_application_error(error.type() == rpc::TASK_EXCEPTION);
}

}  // namespace

std::string CudaVisibleDevices(const rpc::GpuAssignment& gpus) {
  return absl::StrJoin(gpus.device_ids(), ",");
}

void ExportGpuMemoryCaps(const rpc::GpuAssignment& gpus) {
  static const std::string mode = std::getenv("SHOAL_GPU_MEMORY_CAPS") ? std::getenv("SHOAL_GPU_MEMORY_CAPS") : "off";
  static const std::string memory = std::getenv("SHOAL_GPU_MEMORY_MIB") ? std::getenv("SHOAL_GPU_MEMORY_MIB") : "";
  if (mode == "off") return;
  std::vector<int> ids(gpus.device_ids().begin(), gpus.device_ids().end());
  std::vector<int64_t> shares(gpus.shares().begin(), gpus.shares().end());
  for (const auto& [name, value] : GpuMemoryCapEnv(mode, memory, ids, shares)) {
    if (value.empty()) {
      UnsetEnvironmentVariable(name);
    } else {
      SetEnvironmentVariable(name, value);
    }
  }
}

std::string TaskExecutor::SetUpDevices(const rpc::PushTaskRequest& request) {
  const rpc::TaskSpec& spec = request.spec();
  const bool actor_method = !spec.actor_id().empty() && !spec.actor_creation();
  std::string devices;
  if (!actor_method) {
    devices = CudaVisibleDevices(request.gpus());
    SetEnvironmentVariable("CUDA_VISIBLE_DEVICES", devices);
    ExportGpuMemoryCaps(request.gpus());
  }
  absl::MutexLock lock(&mu_);
  if (spec.actor_creation()) actor_devices_ = devices;
  if (actor_method) devices = actor_devices_;
  return devices;
}

std::optional<std::vector<ObjectBuffer>> TaskExecutor::ReadArguments(const rpc::TaskSpec& spec,
                                                                     rpc::PushTaskReply& reply) {
  std::vector<ObjectBuffer> args;
  args.reserve(spec.args_size());
  for (int i = 0; i < spec.args_size(); ++i) {
    const rpc::TaskArg& arg = spec.args(i);
    if (arg.kind_case() != rpc::TaskArg::kObject) {
      auto owned = std::make_shared<const std::string>(arg.inline_value());
      args.push_back({owned->data(), owned->size(), owned});
      continue;
    }
    const rpc::ObjectValue& value = arg.object();
    if (value.has_error()) {  // the owner normally fails such a task before pushing it
      FailAll(spec, value.error(), &reply);
      return std::nullopt;
    }
    if (!value.in_store()) {
      auto owned = std::make_shared<const std::string>(value.inline_data());
      args.push_back({owned->data(), owned->size(), owned});
      continue;
    }
    auto buffer = store_.ReadBuffer(value, absl::InfiniteFuture());
    if (!buffer.ok()) {
      rpc::ErrorInfo error = MakeError(rpc::OBJECT_LOST, absl::StrCat(DescribeTask(spec), ": argument ", i,
                                                                      " could not be read: ", buffer.status().message()));
      error.set_lost_argument(i + 1);
      FailAll(spec, error, &reply);
      return std::nullopt;
    }
    args.push_back(std::move(*buffer));
  }
  return args;
}

TaskCall TaskExecutor::MakeCall(const rpc::TaskSpec& spec, const std::string& devices, std::vector<ObjectBuffer> args) {
  TaskCall call;
  call.function_name = spec.function_name();
  if (!spec.actor_id().empty()) {
    auto actor = ActorId::FromBinary(spec.actor_id());
    call.actor_id = actor.ok() ? actor->Hex() : std::string();
    call.actor_creation = spec.actor_creation();
  }
  auto task_id = TaskId::FromBinary(spec.task_id());
  call.task_id = task_id.ok() ? task_id->Hex() : std::string();
  call.num_returns = std::max<uint32_t>(spec.num_returns(), 1);
  call.cuda_visible_devices = devices;
  call.retry_exception_filter = spec.retry_exception_filter();
  call.concurrency_group = spec.concurrency_group();
  call.streaming = spec.streaming();
  call.dynamic = spec.generator_dynamic();
  call.args = std::move(args);
  return call;
}

rpc::PushTaskReply TaskExecutor::Execute(const rpc::PushTaskRequest& request) {
  const rpc::TaskSpec& spec = request.spec();
  rpc::PushTaskReply reply;
  const std::string devices = SetUpDevices(request);
  const TaskFunction* fn = FindTaskFunction(spec.function_name());
  TaskHandler handler;
  {
    absl::MutexLock lock(&mu_);
    handler = handler_;
  }
  if (fn == nullptr && !handler) {
    FailAll(spec,
            TaskException("FunctionNotRegisteredError",
                          absl::StrCat("function '", spec.function_name(), "' is not registered in this worker")),
            &reply);
    return reply;
  }
  // Arguments: copies for registered functions, buffers (zero-copy for store values) for the
  // handler.
  std::optional<std::vector<ObjectBuffer>> args = ReadArguments(spec, reply);
  if (!args) return reply;

  absl::StatusOr<std::vector<std::string>> results;
  try {
    if (fn != nullptr) {
      std::vector<std::string> copies;
      copies.reserve(args->size());
      for (const auto& a : *args) copies.emplace_back(a.data, a.size);
      args->clear();
      auto one = (*fn)(copies);
      if (one.ok()) {
        results = std::vector<std::string>{std::move(*one)};
      } else {
        results = one.status();
      }
    } else {
      results = handler(MakeCall(spec, devices, *std::move(args)));
    }
  } catch (const std::exception& e) {
    results = ErrorStatus(TaskException(CurrentExceptionType(), e.what()));
  } catch (...) {
    results = ErrorStatus(
        TaskException(CurrentExceptionType(), "an exception that is not a std::exception escaped the task"));
  }
  FillReply(spec, std::move(results), reply);
  return reply;
}

void TaskExecutor::ExecuteAsync(const rpc::PushTaskRequest& request, Finished finished) {
  const rpc::TaskSpec& spec = request.spec();
  AsyncTaskHandler handler;
  {
    absl::MutexLock lock(&mu_);
    handler = async_handler_;
  }
  if (!handler || FindTaskFunction(spec.function_name()) != nullptr) {
    finished(Execute(request));
    return;
  }
  const std::string devices = SetUpDevices(request);
  rpc::PushTaskReply failed;
  std::optional<std::vector<ObjectBuffer>> args = ReadArguments(spec, failed);
  if (!args) {
    finished(std::move(failed));
    return;
  }
  auto done = [this, &spec, finished = std::move(finished)](absl::StatusOr<std::vector<std::string>> results) {
    rpc::PushTaskReply reply;
    FillReply(spec, std::move(results), reply);
    finished(std::move(reply));
  };
  try {
    handler(MakeCall(spec, devices, *std::move(args)), std::move(done));
  } catch (const std::exception& e) {  // the handler did not take the call: it never completes
    rpc::PushTaskReply reply;
    FillReply(spec, ErrorStatus(TaskException(CurrentExceptionType(), e.what())), reply);
    finished(std::move(reply));
  }
}

void TaskExecutor::FillReply(const rpc::TaskSpec& spec, absl::StatusOr<std::vector<std::string>> results,
                             rpc::PushTaskReply& reply) {
  const uint32_t num_returns = std::max<uint32_t>(spec.num_returns(), 1);
  if (!results.ok()) {
    FailAll(spec, TaskFailureInfo(results.status()), &reply);
    return;
  }
  if (results->size() != num_returns) {
    FailAll(spec,
            TaskException("ValueError", absl::StrCat(DescribeTask(spec), " returned ", results->size(),
                                                     " values, but num_returns is ", num_returns)),
            &reply);
    return;
  }
  for (uint32_t i = 1; i <= num_returns; ++i) {
    std::string& result = (*results)[i - 1];
    const ObjectId return_id = ReturnObjectId(spec, i);
    if (result.size() <= kMaxInlineObjectSize) {
      *reply.add_returns() = InlineValue(return_id, std::move(result));
      continue;
    }
    auto stored = store_.Write(return_id, result);
    if (!stored.ok()) {
      FailAll(spec,
              MakeError(absl::IsResourceExhausted(stored.status()) ? rpc::OBJECT_STORE_FULL : rpc::SYSTEM_ERROR,
                        absl::StrCat(DescribeTask(spec), ": its ", result.size(),
                                     "-byte result could not be stored: ", stored.status().message())),
              &reply);
      return;
    }
    *reply.add_returns() = std::move(*stored);
  }
}

void TaskExecutor::SetHandler(TaskHandler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

void TaskExecutor::SetAsyncHandler(AsyncTaskHandler handler) {
  absl::MutexLock lock(&mu_);
  async_handler_ = std::move(handler);
}

}  // namespace shoal
