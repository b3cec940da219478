#include "src/worker/task_spec.h"

#include "absl/strings/str_cat.h"
#include "shoal/common.pb.h"
#include "src/common/bundle_resources.h"
#include "src/common/runtime_env.h"
#include "src/scheduler/scheduling_policy.h"

namespace shoal {

absl::StatusOr<ResourceSet> TaskResources(const TaskOptions& options) {
  if (options.resources.IsEmpty() && options.use_default_resources) {
    ResourceSet cpu;
    cpu.Set(kCPU, FixedPoint::FromInt(1));
    return cpu;
  }
  const FixedPoint gpus = options.resources.Get(kGPU);
  if (gpus > FixedPoint::FromInt(1) && !gpus.IsInteger()) {
    return absl::InvalidArgumentError(absl::StrCat("a GPU request above 1 must be a whole number of GPUs, got ",
                                                   gpus.ToString()));
  }
  return options.resources;
}

namespace {

// The fields every task and actor call has, from `options` (checked).
absl::Status SetCallFields(const TaskOptions& options, const std::string& owner_address, rpc::TaskSpec& spec) {
  if (options.max_retries < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_retries must be -1 (no limit) or more, got ", options.max_retries));
  }
  if (options.max_calls < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_calls must be 0 (no limit) or more, got ", options.max_calls));
  }
  spec.set_max_retries(options.max_retries);
  spec.set_retry_exceptions(options.retry_exceptions);
  if (options.retry_exceptions) spec.set_retry_exception_filter(options.retry_exception_filter);
  spec.set_max_calls(options.max_calls);
  spec.set_attempt(0);
  if (options.num_returns < 1 || options.num_returns > kMaxReturns) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_returns must be between 1 and ", kMaxReturns, ", got ", options.num_returns));
  }
  spec.set_num_returns(options.num_returns);
  if (options.streaming && options.num_returns != 1) {
    return absl::InvalidArgumentError("a streaming generator task has one return (its completion), not num_returns > 1");
  }
  if (options.generator_backpressure_num_objects == 0 || options.generator_backpressure_num_objects < -1) {
    return absl::InvalidArgumentError(absl::StrCat("_generator_backpressure_num_objects must be positive or -1, got ",
                                                   options.generator_backpressure_num_objects));
  }
  if (options.generator_dynamic && !options.streaming) {
    return absl::InvalidArgumentError("a dynamic generator task is a streaming one: set streaming too");
  }
  spec.set_streaming(options.streaming);
  spec.set_generator_dynamic(options.generator_dynamic);
  if (options.streaming) spec.set_generator_backpressure_num_objects(options.generator_backpressure_num_objects);
  spec.set_owner_address(owner_address);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<rpc::TaskSpec> BuildTaskSpec(const JobId& job, const std::string& function_name,
                                            const TaskOptions& options, const std::string& owner_address,
                                            const std::vector<std::string>& worker_command) {
  if (function_name.empty()) return absl::InvalidArgumentError("a task needs a function name");
  auto resources = TaskResources(options);
  if (!resources.ok()) return resources.status();
  rpc::TaskSpec spec;
  spec.set_task_id(TaskId::ForNormalTask(job).Binary());
  spec.set_job_id(job.Hex());
  spec.set_function_name(function_name);
  if (options.strategy.kind() == rpc::SchedulingStrategy::PLACEMENT_GROUP) {
    // In a bundle: the scheduler sees the bundle's formatted resources and the default rule.
    auto pg = PlacementGroupId::FromHex(options.strategy.placement_group_id());
    if (!pg.ok() || pg->IsNil()) {
      return absl::InvalidArgumentError(absl::StrCat("placement group strategy: '", options.strategy.placement_group_id(),
                                                     "' is not a placement group id"));
    }
    const int index = options.strategy.placement_group_bundle_index();
    if (index < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat("placement_group_bundle_index must be -1 (any bundle) or a bundle's index, got ", index));
    }
    spec.set_placement_group_id(pg->Binary());
    spec.set_placement_group_bundle_index(index);
    spec.set_placement_group_capture_child_tasks(options.strategy.placement_group_capture_child_tasks());
    resources->ToProto(spec.mutable_bundle_request());
    FormatBundleDemand(*resources, *pg, index).ToProto(spec.mutable_resources());
    // DEFAULT over the bundle resources, still restricted to the nodes the selector allows.
    *spec.mutable_strategy()->mutable_label_selector() = options.strategy.label_selector();
    if (auto s = ValidateStrategy(spec.strategy()); !s.ok()) return s;
  } else {
    resources->ToProto(spec.mutable_resources());
    if (auto s = ValidateStrategy(options.strategy); !s.ok()) return s;
    *spec.mutable_strategy() = options.strategy;
  }
  if (auto s = SetCallFields(options, owner_address, spec); !s.ok()) return s;
  for (const auto& arg : worker_command) spec.add_worker_command(arg);
  if (auto s = ValidateRuntimeEnv(options.runtime_env); !s.ok()) return s;
  *spec.mutable_runtime_env() = options.runtime_env;
  return spec;
}

absl::StatusOr<rpc::TaskSpec> BuildActorCallSpec(const JobId& job, const ActorId& actor, const std::string& method,
                                                 const TaskOptions& options, const std::string& owner_address) {
  if (method.empty()) return absl::InvalidArgumentError("a task needs a function name");
  rpc::TaskSpec spec;
  spec.set_task_id(TaskId::ForActorTask(actor).Binary());
  spec.set_job_id(job.Hex());
  spec.set_function_name(method);
  spec.set_actor_id(actor.Binary());
  if (auto s = SetCallFields(options, owner_address, spec); !s.ok()) return s;
  spec.set_concurrency_group(options.concurrency_group);
  return spec;
}

TaskId SpecTaskId(const rpc::TaskSpec& spec) {
  auto id = TaskId::FromBinary(spec.task_id());
  return id.ok() ? *id : TaskId::Nil();
}

ObjectId ReturnObjectId(const rpc::TaskSpec& spec, uint32_t index) {
  return ObjectId::FromTask(SpecTaskId(spec), index);
}

bool CanRetry(const rpc::TaskSpec& spec) {
  return spec.max_retries() < 0 || spec.attempt() - spec.oom_retries() < spec.max_retries();
}

std::string DescribeTask(const rpc::TaskSpec& spec) {
  return absl::StrCat("task '", spec.function_name(), "' (", SpecTaskId(spec).Hex(), ")");
}

SchedulingKey SchedulingKey::Of(const rpc::TaskSpec& spec) {
  SchedulingKey key;
  // ResourceSet's map is sorted, so equal shapes print equally.
  const ResourceSet resources = ResourceSet::FromProto(spec.resources());
  for (const auto& [name, amount] : resources.entries()) {
    absl::StrAppend(&key.repr_, name, "=", amount.units(), ";");
  }
  // The strategy's canonical bytes (label selector in key order), length-prefixed.
  const std::string strategy = StrategyKey(spec.strategy());
  absl::StrAppend(&key.repr_, "|", strategy.size(), ":", strategy, "|");
  for (const auto& arg : spec.worker_command()) {
    absl::StrAppend(&key.repr_, arg.size(), ":", arg);  // length-prefixed: no separator ambiguity
  }
  // The raylet's memory monitor kills workers of retriable leases first: a lease serves either.
  absl::StrAppend(&key.repr_, spec.max_retries() != 0 ? "|retriable" : "|final");
  absl::StrAppend(&key.repr_, "|env:", RuntimeEnvKey(spec.runtime_env()));
  return key;
}

}  // namespace shoal
