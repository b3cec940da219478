"""The state API in the shape of Ray's `ray.util.state`: what the cluster's GCS knows of its
actors, tasks, nodes, jobs and placement groups, the raylets' workers, and the objects every
worker and driver refers to.

    from shoal.util.state import list_actors, list_tasks, summarize_tasks
    list_actors(filters=[("state", "=", "ALIVE")], limit=10)
    list_tasks(filters=[("name", "!=", "f")], detail=True)

Rows are `StateRow`s: dicts that also answer attributes (`row.state`, `row["state"]`), with Ray's
column names. Filters are (key, "=" or "!=", value) triples on the resource's columns, compared
as text in any case. A bad resource, filter key, predicate or limit raises ValueError naming
what is allowed. Workers come from the raylets of the alive nodes; objects from every worker and
driver (a row per process and object it refers to, as in Ray).

The calls use this process's connection (implicit init, as elsewhere); `address` names the
cluster to connect to when there is none yet, and must be the connected one otherwise.
The same lists are on the command line: `shoal list actors --filter state=ALIVE`.
"""
import json

from shoal import exceptions
from shoal._private import runtime

DEFAULT_LIMIT = 100
DEFAULT_TIMEOUT = 30


class StateRow(dict):
    """One entry: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _gcs_address(address):
    if address is None or address == "auto":
        return runtime.connect().gcs_address
    if not runtime.is_initialized():
        runtime.init(address=address)
    connected = runtime.core().gcs_address
    if runtime._normalize_address(address) != runtime._normalize_address(connected):
        raise ValueError(f"address={address!r} is not the cluster this process is connected to ({connected}); "
                         f"the state API reads the connected cluster")
    return connected


def _call(fn, *args):
    try:
        return fn(*args)
    except runtime._core.StatusError as e:
        code, message = e.args[0], e.args[1]
        if code == "INVALID_ARGUMENT":
            raise ValueError(message) from None
        if code == "UNIMPLEMENTED":
            raise NotImplementedError(message) from None
        if code == "NOT_FOUND":
            return None
        raise runtime.status_to_exception(e) from None


def _filters(filters):
    out = []
    for f in filters or ():
        if not isinstance(f, (tuple, list)) or len(f) != 3:
            raise ValueError(f"a filter is a (key, predicate, value) triple such as ('state', '=', 'ALIVE'), got {f!r}")
        key, predicate, value = f
        out.append((str(key), str(predicate), str(value)))
    return out


def _check_limit(limit):
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an integer, got {limit!r}")


def _no_explain(explain):
    """Ray's _explain prints how a list was gathered; Shoal has nothing to explain, so it is refused."""
    if explain:
        raise NotImplementedError("_explain=True is not supported by Shoal's state API")


def _list(resource, address, filters, limit, timeout, detail, raise_on_missing_output, explain=False):
    _no_explain(explain)
    _check_limit(limit)
    answer = json.loads(_call(runtime._core.state_list, _gcs_address(address), resource, _filters(filters), limit,
                              bool(detail), float(timeout)))
    if answer["partial"] and raise_on_missing_output:
        why = ("a node's raylet did not answer in time" if resource == "workers"
               else "a raylet or a process did not answer in time" if resource == "objects"
               else f"the GCS holds more {resource} than one list answers")
        raise exceptions.ShoalError(f"{why}, so some rows are missing; pass raise_on_missing_output=False to take the "
                                    f"partial list")
    return [StateRow(row) for row in answer["rows"]]


def _get(resource, id, address, timeout, explain=False):
    _no_explain(explain)
    if not isinstance(id, str) or not id:
        raise ValueError(f"the id must be a non-empty hex string, got {id!r}")
    text = _call(runtime._core.state_get, _gcs_address(address), resource, id, float(timeout))
    return None if text is None else StateRow(json.loads(text))


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                raise_on_missing_output=True, _explain=False):
    return _list("actors", address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
               raise_on_missing_output=True, _explain=False):
    return _list("tasks", address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
               raise_on_missing_output=True, _explain=False):
    return _list("nodes", address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_jobs(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
              raise_on_missing_output=True, _explain=False):
    return _list("jobs", address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_placement_groups(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                          raise_on_missing_output=True, _explain=False):
    return _list("placement_groups", address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_objects(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                 raise_on_missing_output=True, _explain=False):
    """The objects every worker and driver refers to, a row per (process, object): object_id,
    object_size (bytes, -1 when the process does not know it), task_status (PENDING, FINISHED,
    FAILED; NIL for a borrowed object), reference_type (LOCAL_REFERENCE, USED_BY_PENDING_TASK,
    PINNED_IN_MEMORY), call_site ("disabled"), type (DRIVER or WORKER), pid, ip; with detail
    node_id, worker_id, owned, owner_address, local_refs, submitted_task_refs, in_store,
    stored_on_node."""
    return _list("objects", address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_workers(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                 raise_on_missing_output=True, _explain=False):
    """The worker processes of every alive node, from its raylet (worker_id, node_id, ip, pid,
    state STARTING/IDLE/LEASED; with detail job_id, address, start_time_ms)."""
    return _list("workers", address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def get_worker(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get("workers", id, address, timeout, _explain)


def get_objects(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    """Every row of one object (a row per process that refers to it); [] when none does."""
    _no_explain(_explain)
    if not isinstance(id, str) or not id:
        raise ValueError(f"the id must be a non-empty hex string, got {id!r}")
    text = _call(runtime._core.state_get, _gcs_address(address), "objects", id, float(timeout))
    if text is None:
        return []
    rows = json.loads(text)
    return [StateRow(r) for r in (rows if isinstance(rows, list) else [rows])]


def get_actor(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get("actors", id, address, timeout, _explain)


def get_task(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get("tasks", id, address, timeout, _explain)


def get_node(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get("nodes", id, address, timeout, _explain)


def get_job(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get("jobs", id, address, timeout, _explain)


def get_placement_group(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get("placement_groups", id, address, timeout, _explain)


def _summarize(resource, address, timeout, raise_on_missing_output, explain):
    _no_explain(explain)
    answer = json.loads(_call(runtime._core.state_summarize, _gcs_address(address), resource, float(timeout)))
    if answer["partial"] and raise_on_missing_output:
        why = ("a raylet or a process did not answer in time" if resource == "objects"
               else f"the GCS holds more {resource} than one list answers")
        raise exceptions.ShoalError(f"{why}, so the summary misses some; pass raise_on_missing_output=False to take "
                                    f"it anyway")
    if resource == "objects":
        return {"cluster": {key: answer[key] for key in
                            ("summary", "total_objects", "total_size_mb", "callsite_enabled", "summary_by")}}
    key = "total_tasks" if resource == "tasks" else "total_actors"
    return {"cluster": {"summary": answer["summary"], key: answer["total"], "summary_by": "func_name"
                        if resource == "tasks" else "class"}}


def summarize_tasks(address=None, timeout=DEFAULT_TIMEOUT, raise_on_missing_output=True, _explain=False):
    """{"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}}, "total_tasks": n}}"""
    return _summarize("tasks", address, timeout, raise_on_missing_output, _explain)


def summarize_actors(address=None, timeout=DEFAULT_TIMEOUT, raise_on_missing_output=True, _explain=False):
    """{"cluster": {"summary": {class: {"class_name", "state_counts"}}, "total_actors": n}}"""
    return _summarize("actors", address, timeout, raise_on_missing_output, _explain)


def summarize_objects(address=None, timeout=DEFAULT_TIMEOUT, raise_on_missing_output=True, _explain=False):
    """{"cluster": {"summary": {"disabled": {"total_objects", "total_size_mb", "total_num_workers",
    "total_num_nodes", "task_state_counts", "ref_type_counts"}}, "total_objects", "total_size_mb",
    "callsite_enabled": False, "summary_by": "callsite"}} (call sites are not recorded)."""
    return _summarize("objects", address, timeout, raise_on_missing_output, _explain)


def timeline(filename=None):
    """The recent tasks that ran, as a Chrome trace (a list of events chrome://tracing and
    Perfetto load); written to `filename` as JSON when given (then None is answered)."""
    trace = json.loads(_call(runtime._core.state_timeline, runtime.connect().gcs_address, float(DEFAULT_TIMEOUT)))
    if filename is None:
        return trace
    with open(filename, "w") as f:
        json.dump(trace, f)
    return None


def list_named_actors(all_namespaces=False):
    """Names of the live named actors in this job's namespace, or with all_namespaces=True a
    list of {"name", "namespace"} dicts for every namespace (Ray's ray.util.list_named_actors)."""
    rows = list_actors(filters=[("state", "!=", "DEAD")], limit=10000, detail=False)
    named = [r for r in rows if r["name"]]
    if all_namespaces:
        return [{"name": r["name"], "namespace": r["ray_namespace"]} for r in named]
    namespace = runtime.state.namespace
    return [r["name"] for r in named if r["ray_namespace"] == namespace]
