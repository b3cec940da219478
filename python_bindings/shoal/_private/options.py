"""Validation of the options of remote functions (and actors): Ray's names and rules."""
import numbers
import re

from shoal.util import scheduling_strategies

TASK_OPTIONS = {"num_cpus", "num_gpus", "memory", "resources", "max_retries", "retry_exceptions",
                "scheduling_strategy", "num_returns", "name", "runtime_env", "accelerator_type",
                "max_calls", "object_store_memory", "_metadata", "label_selector", "placement_group",
                "placement_group_bundle_index", "placement_group_capture_child_tasks",
                "_generator_backpressure_num_objects"}

# Ray's options that Shoal knows but does not implement yet: refused (naming the option) unless
# given their "unset" value, never accepted and ignored.
UNSUPPORTED_OPTIONS = {
    "accelerator_type": "nodes do not advertise accelerator types",
    "object_store_memory": "per-task object store quotas are not implemented",
    "_metadata": "task metadata is not implemented",
}


def refuse_unsupported(options, what="remote functions"):
    for key, why in UNSUPPORTED_OPTIONS.items():
        value = options.get(key)
        if value is None or (key == "_metadata" and not value):
            continue
        raise ValueError(f"The option {key}={value!r} for {what} is not supported by Shoal: {why}.")

TASK_DEFAULTS = {"num_cpus": 1, "num_gpus": 0, "max_retries": 3, "retry_exceptions": False, "num_returns": 1}


# A placement group's formatted resource names ("CPU_group_0_<group hex>", "CPU_group_<hex>").
_BUNDLE_NAME = re.compile(r"^.+_group_(\d+_)?[0-9a-f]{16,}$")


def check_retry_count(key, value):
    """max_retries, max_restarts, max_task_retries: None, 0, -1 (no limit) or positive, in
    Ray's words."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"The type of keyword '{key}' must be {(int, type(None))}, but received type {type(value)}")
    if value < -1:
        raise ValueError(f"The keyword '{key}' only accepts None, 0, -1 or a positive integer, where -1 represents "
                         "infinity.")


def _check_precision(name, value):
    """Ray's resolution of fractional resource amounts: 0.0001."""
    if value != int(value) and abs(round(value, 4) - value) > 1e-12:
        raise ValueError(f"The precision of the fractional quantity of resource {name} cannot go beyond 0.0001")


def _number(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    _check_precision(name.replace("resources[", "").replace("]", "").strip("'"), value)
    return value


def validate(options, allowed=TASK_OPTIONS):
    """Checks option names and values; raises TypeError/ValueError with Ray's wording."""
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(f"Invalid option keyword {key} for remote functions. Valid ones are "
                             f"{sorted(allowed)}.")
    refuse_unsupported(options)
    if "num_cpus" in options:
        _number("num_cpus", options["num_cpus"])
    if "num_gpus" in options:
        gpus = _number("num_gpus", options["num_gpus"])
        if gpus is not None and gpus > 1 and gpus != int(gpus):
            raise ValueError(f"num_gpus above 1 must be a whole number of GPUs, got {gpus}")
    if "memory" in options:
        _number("memory", options["memory"])
    if options.get("resources") is not None:
        resources = options["resources"]
        if not isinstance(resources, dict):
            raise TypeError(f"resources must be a dict, got {type(resources).__name__}")
        for k, v in resources.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"resource names must be non-empty strings, got {k!r}")
            if k in ("CPU", "GPU"):
                raise ValueError("Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' in "
                                 "'resources' keyword")
            if k == "bundle" or _BUNDLE_NAME.match(k):
                raise ValueError(f"resources: {k!r} is a resource name Shoal reserves for placement groups")
            _number(f"resources[{k!r}]", v, allow_none=False)
    if "max_retries" in options:
        check_retry_count("max_retries", options["max_retries"])
    if "retry_exceptions" in options:
        r = options["retry_exceptions"]
        if not isinstance(r, bool) and not (isinstance(r, (list, tuple)) and
                                            all(isinstance(c, type) and issubclass(c, BaseException) for c in r)):
            raise TypeError("retry_exceptions must be a bool or a list of exception types")
    if options.get("max_calls") is not None:
        m = options["max_calls"]
        if isinstance(m, bool) or not isinstance(m, int):
            raise TypeError(f"The type of keyword 'max_calls' must be {(int, type(None))}, but received type {type(m)}")
        if m < 0:
            raise ValueError("The keyword 'max_calls' only accepts None, 0 or a positive integer")
    if "num_returns" in options:
        validate_num_returns(options["num_returns"])
    if options.get("_generator_backpressure_num_objects") is not None:
        validate_backpressure(options["_generator_backpressure_num_objects"])
    if options.get("runtime_env") is not None:
        validate_runtime_env(options["runtime_env"])
    if "scheduling_strategy" in options:
        scheduling_strategies.validate(options["scheduling_strategy"])
    if options.get("label_selector") is not None:
        scheduling_strategies.validate_label_selector(options["label_selector"])
    strategy_of(options)  # the placement_group options, checked as Ray does
    return options


def validate_num_returns(n):
    """An integer 0..1000, "streaming" (a generator whose values reach the caller as it yields
    them) or "dynamic" (Ray's older form: one ref to the list of the generator's refs)."""
    if n in ("streaming", "dynamic"):
        return
    if isinstance(n, bool) or not isinstance(n, (int, str)):
        raise TypeError(f"The type of keyword 'num_returns' must be {(int, str, type(None))}, but received type "
                        f"{type(n)}")
    if isinstance(n, str) or n < 0 or n > 1000:
        raise ValueError('The keyword \'num_returns\' only accepts None, a non-negative integer, or "dynamic" (or '
                         f'"streaming"); Shoal takes at most 1000 returns. Got {n!r}.')


def validate_backpressure(n):
    if isinstance(n, bool) or not isinstance(n, int) or (n <= 0 and n != -1):
        raise ValueError(f"_generator_backpressure_num_objects must be a positive integer or -1 (no limit), got {n!r}")


def generator_options(options):
    """The core options of a call's generator settings: streaming and its backpressure, which
    only a streaming generator takes (refused otherwise, naming the option)."""
    out = {}
    backpressure = options.get("_generator_backpressure_num_objects")
    if options.get("num_returns") == "streaming":
        out["streaming"] = True
        if backpressure is not None:
            out["generator_backpressure_num_objects"] = int(backpressure)
    elif options.get("num_returns") == "dynamic":
        out["streaming"] = out["dynamic"] = True  # the items travel as a stream nobody reads
        if backpressure is not None:
            raise ValueError('_generator_backpressure_num_objects applies to num_returns="streaming" only, '
                             'not "dynamic" (nobody takes its values before it ends).')
    elif backpressure is not None:
        raise ValueError("_generator_backpressure_num_objects applies to streaming generators only: "
                         'set num_returns="streaming" (or make the function a generator) to use it.')
    return out


def num_return_refs(options):
    """How many return ids the core makes for the call (a streaming generator has one)."""
    n = options.get("num_returns", 1)
    return 1 if n in ("streaming", "dynamic") else max(1, int(n))


def strategy_of(options):
    """The strategy the options name: scheduling_strategy, or the placement_group options
    (Ray's older spelling, which may not be mixed with it); None when none is named."""
    strategy = options.get("scheduling_strategy")
    group = options.get("placement_group")
    index = options.get("placement_group_bundle_index")
    capture = options.get("placement_group_capture_child_tasks")
    if group is None or group == "default":
        if index not in (None, -1):
            raise ValueError("placement_group_bundle_index cannot be set without a placement_group")
        return strategy
    if strategy is not None:
        raise ValueError("Placement groups should be specified via the scheduling_strategy option; the "
                         "placement_group option cannot be combined with scheduling_strategy")
    return scheduling_strategies.PlacementGroupSchedulingStrategy(
        group, -1 if index is None else index, capture)


def check_fits_placement_group(options, what, default_cpus=1):
    """ValueError (Ray's words) when the request cannot fit the bundle its placement group
    strategy names (or any bundle, for index -1): such a task or actor would wait forever.
    Checked only where the group's bundles are known here (it was made or looked up in this
    process), so that no submission costs a GCS call."""
    strategy = strategy_of(options)
    group = getattr(strategy, "placement_group", None)
    if group is None or group.bundle_cache is None:
        return
    request = {}
    cpus = options.get("num_cpus")
    cpus = default_cpus if cpus is None else cpus
    for name, amount in (("CPU", cpus), ("GPU", options.get("num_gpus")), ("memory", options.get("memory"))):
        if amount:
            request[name] = amount
    request.update({k: v for k, v in (options.get("resources") or {}).items() if v})
    index = getattr(strategy, "placement_group_bundle_index", -1)
    bundles = [dict(b) for b in group.bundle_cache]
    candidates = bundles if index == -1 else bundles[index:index + 1]
    if not any(all(b.get(k, 0) >= v - 1e-9 for k, v in request.items()) for b in candidates):
        raise ValueError(f"Cannot schedule {what} with the placement group because the resource request {request} "
                         f"cannot fit into any bundles for the placement group, {bundles}.")


def validate_runtime_env(runtime_env):
    """Checks a runtime_env option as it is given (see shoal/_private/runtime_env.py)."""
    from shoal._private import runtime_env as renv
    renv.validate(runtime_env)
    return runtime_env


def resources_of(options, default_cpus=1):
    """The resource request as a dict of floats (zero entries left out)."""
    out = {}
    cpus = options.get("num_cpus")
    cpus = default_cpus if cpus is None else cpus
    if cpus:
        out["CPU"] = float(cpus)
    if options.get("num_gpus"):
        out["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        out["memory"] = float(options["memory"])
    for k, v in (options.get("resources") or {}).items():
        if v:
            out[k] = float(v)
    return out


def core_options(options, default_cpus=1):
    """The dict _core.CoreWorker.submit_task takes."""
    out = {
        "resources": resources_of(options, default_cpus),
        "max_retries": int(3 if options.get("max_retries") is None else options["max_retries"]),
        "retry_exceptions": bool(options.get("retry_exceptions", False)),
        "num_returns": num_return_refs(options),
    }
    out.update(generator_options(options))
    retry = options.get("retry_exceptions")
    if isinstance(retry, (list, tuple)):
        # Only these exceptions are retried: the worker checks them (worker.py _retryable).
        from shoal._private import serialization
        out["retry_exceptions"] = bool(retry)
        out["retry_exception_filter"] = serialization.serialize_to_bytes(tuple(retry))[0]
    max_calls = options.get("max_calls")
    if max_calls is None and options.get("num_gpus"):
        max_calls = 1  # Ray's default for GPU tasks: the worker exits, and its GPU memory goes back
    if max_calls:
        out["max_calls"] = int(max_calls)
    named = strategy_of(options)
    out["explicit_strategy"] = named is not None  # else a parent's captured placement group applies
    strategy = scheduling_strategies.to_proto_json(named, options.get("label_selector"))
    if strategy is not None:
        out["strategy"] = strategy  # rpc::SchedulingStrategy as JSON; the core converts it
    return out
