"""Options mean what they say: every option the Python API takes works as Ray's does, or is
refused with an error that names it. And failures arrive typed: the exception class comes from
the error's type (proto ErrorType), not from its message.

Runs its drivers in this process against the module's three-node cluster (conftest).
"""
import os
import sys

import pytest

from conftest import PYTHON_DIR

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal as ray  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ray.remote(num_cpus=1, resources={"A": 0.01})
def pid():
    return os.getpid()


def test_max_calls_starts_a_new_worker_after_the_limit(driver):
    # Without max_calls one worker serves every call (the lease is reused)...
    reused = {ray.get(pid.remote()) for _ in range(4)}
    assert len(reused) == 1
    # ...with max_calls=1 each call gets a fresh worker, which exits after its reply.
    fresh = [ray.get(pid.options(max_calls=1).remote()) for _ in range(3)]
    assert len(set(fresh)) == 3
    # max_calls=2: two calls per worker.
    pairs = [ray.get(pid.options(max_calls=2).remote()) for _ in range(4)]
    assert pairs[0] == pairs[1] and pairs[2] == pairs[3] and pairs[0] != pairs[2]
    for p in fresh[:-1]:
        # The workers that reached their limit are gone, not idle in the pool.
        ray_util_wait_gone(p)
    # Every lease went back; the GCS hears it with the raylets' next report (once a second).
    from conftest import wait_until
    wait_until(lambda: ray.available_resources().get("CPU") == ray.cluster_resources().get("CPU"), 20,
               what="every CPU to be free again")


def ray_util_wait_gone(pid_, timeout=20):
    from conftest import process_alive, wait_until
    wait_until(lambda: not process_alive(pid_), timeout, what=f"worker {pid_} to exit after max_calls")


def test_gpu_tasks_default_to_one_call_per_worker(driver):
    @ray.remote(num_gpus=0.5, num_cpus=0, resources={"A": 0.01})
    def gpu_pid():
        return os.getpid()

    pids = [ray.get(gpu_pid.remote()) for _ in range(3)]
    assert len(set(pids)) == 3  # Ray's default: max_calls=1 for GPU tasks returns their GPU memory
    again = [ray.get(gpu_pid.options(max_calls=0).remote()) for _ in range(3)]
    assert len(set(again)) == 1  # max_calls=0: no limit


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n

    def get(self):
        return self.n


def test_retry_exceptions_list_retries_only_listed_types(driver):
    @ray.remote(max_retries=3)
    def fail(counter, exc):
        ray.get(counter.incr.remote())
        raise exc("boom")

    counter = Counter.remote()
    with pytest.raises(Flaky):
        ray.get(fail.options(retry_exceptions=[Flaky]).remote(counter, Flaky))
    assert ray.get(counter.get.remote()) == 4  # the first try and 3 retries

    counter = Counter.remote()
    with pytest.raises(Fatal):
        ray.get(fail.options(retry_exceptions=[Flaky]).remote(counter, Fatal))
    assert ray.get(counter.get.remote()) == 1  # not listed: not retried

    counter = Counter.remote()
    with pytest.raises(Fatal):
        ray.get(fail.options(retry_exceptions=True).remote(counter, Fatal))
    assert ray.get(counter.get.remote()) == 4  # True: every exception is retried

    with pytest.raises(TypeError):
        fail.options(retry_exceptions=["Flaky"])


@pytest.mark.parametrize("option, value", [
    ("accelerator_type", "A100"),
    ("object_store_memory", 10**8),
    ("_metadata", {"x": 1}),
])
def test_unimplemented_task_options_are_refused_by_name(driver, option, value):
    with pytest.raises(ValueError, match=option):
        pid.options(**{option: value}).remote()
    with pytest.raises(ValueError, match=option):
        ray.remote(**{option: value})(lambda: 1)
    # The unset value is fine.
    assert ray.get(pid.options(**{option: None}).remote()) > 0


def test_actor_concurrency_options_are_checked(driver):
    # Implemented (tests/integration/test_python_async_actors.py); bad values are refused by name.
    with pytest.raises(ValueError, match="max_pending_calls"):
        Counter.options(max_pending_calls=0).remote()
    with pytest.raises(ValueError, match="bogus"):
        ray.method(bogus=1)
    c = Counter.options(max_pending_calls=-1).remote()  # Ray's "no limit"
    with pytest.raises(ValueError, match="concurrency group 'io'"):
        c.incr.options(concurrency_group="io").remote()
    assert ray.get(c.incr.remote()) == 1


def test_init_refuses_arguments_it_would_ignore(tmp_path):
    with pytest.raises(TypeError, match="_temp_dir"):
        ray.init(_temp_dir=str(tmp_path))
    for bad in (0, -5, "1GB", 1.5):
        with pytest.raises(ValueError, match="object_store_memory"):
            ray.init(object_store_memory=bad)
    with pytest.raises(ValueError, match="include_dashboard"):
        ray.init(include_dashboard=True)
    assert not ray.is_initialized()


def test_init_object_store_memory_sizes_a_private_cluster_store():
    ray.init(num_cpus=1, object_store_memory=80 * 2**20)
    try:
        assert ray.cluster_resources()["object_store_memory"] == 80 * 2**20
    finally:
        ray.shutdown()
    with pytest.raises(ValueError, match="existing cluster, object_store_memory"):
        ray.init(address="127.0.0.1:1", object_store_memory=10**8)


def test_failures_arrive_typed(driver):
    @ray.remote(max_retries=0)
    def die():
        os._exit(1)

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(die.remote())

    @ray.remote
    def cpp_style():
        raise KeyError("missing")

    with pytest.raises(KeyError):
        ray.get(cpp_style.remote())

    # A dependent task fails with its argument's error, typed, without running.
    @ray.remote
    def plus_one(x):
        return x + 1

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(plus_one.remote(die.remote()))

    # Cancelled before it ran.
    @ray.remote(resources={"nowhere": 1})
    def never():
        return 1

    ref = never.remote()
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)

    # An error message that mentions "object" no longer makes an ObjectLostError.
    @ray.remote
    def says_object():
        raise RuntimeError("object of type X has no attribute y")

    with pytest.raises(RuntimeError):
        ray.get(says_object.remote())


# ---------------------------------------------------------------------------------------------
# scheduling_strategy: one policy (src/scheduler) places tasks at the raylets and actors at the GCS.

@ray.remote(num_cpus=1)
def where():
    return ray.get_runtime_context().get_node_id()


@ray.remote(num_cpus=0)
class Where:
    def node(self):
        return ray.get_runtime_context().get_node_id()


def _node_with(resource):
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and resource in n["Resources"]]
    assert len(nodes) == 1, nodes
    return nodes[0]


def _all_cpus_free():
    # The policies see the nodes as their last reports show them (once a second): start from a
    # cluster with nothing left over from earlier tests.
    from conftest import wait_until
    wait_until(lambda: ray.available_resources().get("CPU") == ray.cluster_resources().get("CPU"), 20,
               what="every CPU to be free")


def test_spread_tasks_and_actors_land_on_different_nodes(driver):
    from conftest import wait_until
    _all_cpus_free()

    # max_calls=1: each call gets its own lease, so the head raylet's policy places every one.
    # (A raylet learns the other nodes from the GCS once a second, so a cluster that just
    # started may place the first ones locally.)
    def three_spread_tasks():
        return {ray.get(where.options(scheduling_strategy="SPREAD", max_calls=1).remote()) for _ in range(3)}

    wait_until(lambda: len(three_spread_tasks()) == 3, 30, what="three SPREAD tasks on three nodes")
    # Actors are placed by the GCS with the same policy code.
    actors = [Where.options(scheduling_strategy="SPREAD", num_cpus=1).remote() for _ in range(3)]
    nodes = [ray.get(a.node.remote(), timeout=60) for a in actors]
    assert len(set(nodes)) == 3, nodes
    for a in actors:
        ray.kill(a)


def test_node_affinity_for_tasks_and_actors(driver):
    from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    b = _node_with("B")
    hard = NodeAffinitySchedulingStrategy(b, soft=False)
    assert {ray.get(where.options(scheduling_strategy=hard).remote()) for _ in range(3)} == {b}
    assert ray.get(where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b, soft=True)).remote()) == b
    pinned = Where.options(scheduling_strategy=hard).remote()
    assert ray.get(pinned.node.remote(), timeout=60) == b
    ray.kill(pinned)

    # A hard affinity to a node that can never hold the request fails at once, typed.
    with pytest.raises(ray.exceptions.TaskUnschedulableError):
        ray.get(where.options(num_cpus=8, scheduling_strategy=hard).remote(), timeout=60)
    never = Where.options(num_cpus=8, scheduling_strategy=hard).remote()
    with pytest.raises(ray.exceptions.ActorUnschedulableError, match="cannot be scheduled"):
        ray.get(never.node.remote(), timeout=60)

    # A strategy the scheduler cannot read is refused when the task is submitted.
    with pytest.raises(Exception, match="node affinity"):
        where.options(scheduling_strategy=NodeAffinitySchedulingStrategy("not-a-node-id")).remote()
    with pytest.raises(ValueError, match="scheduling_strategy"):
        where.options(scheduling_strategy="ANYWHERE").remote()


def test_option_errors_use_rays_words():
    def f():
        return 1

    class A:
        pass

    for key in ("max_retries", "max_calls"):
        with pytest.raises(TypeError, match=f"The type of keyword '{key}' must be"):
            ray.remote(**{key: 0.5})(f)
    for key in ("max_restarts", "max_task_retries"):
        with pytest.raises(ValueError, match=f"The keyword '{key}' only accepts None, 0, -1 or a positive integer"):
            ray.remote(**{key: -3})(A)
    with pytest.raises(ValueError, match="'max_calls' only accepts None, 0 or a positive integer"):
        ray.remote(max_calls=-1)(f)
    with pytest.raises(TypeError, match="The type of keyword 'num_returns'"):
        ray.remote(num_returns=0.5)(f)
    with pytest.raises(ValueError, match="precision of the fractional quantity of resource num_gpus"):
        ray.remote(num_gpus=0.0000001)(f)
    with pytest.raises(ValueError, match="precision of the fractional quantity of resource widget"):
        ray.remote(resources={"widget": 0.0000001})(f)
    with pytest.raises(TypeError, match="name must be None or a string"):
        ray.remote(A).options(name=object())
    with pytest.raises(ValueError, match="must be specified to use `get_if_exists`"):
        ray.remote(A).options(num_cpus=1, get_if_exists=True)
    ray.remote(max_retries=None, num_cpus=0.0001)(f)  # Ray's defaults and resolution are fine


def test_runtime_context_does_not_start_a_cluster_and_keeps_rays_older_forms():
    import warnings
    assert not ray.is_initialized()
    context = ray.get_runtime_context()
    assert not ray.is_initialized()
    with pytest.raises(AssertionError, match="Ray has not been initialized"):
        context.get_job_id()
    ray.init(num_cpus=1)
    try:
        context = ray.get_runtime_context()
        assert set(context.get()) == {"job_id", "node_id", "namespace"}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert context.job_id.hex() == context.get_job_id()
            assert context.node_id.hex() == context.get_node_id()
        assert any("Use get_job_id() instead" in str(w.message) for w in caught)
        assert context.get_placement_group_id() is None and context.get_actor_id() is None

        @ray.remote(max_restarts=1)
        class Probe:
            def __init__(self):
                self.in_constructor = (ray.get_runtime_context().get_actor_id(),
                                       ray.get_runtime_context().was_current_actor_reconstructed)

            def report(self):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    c = ray.get_runtime_context()
                    return self.in_constructor, c.actor_id.hex(), sorted(c.get())

        (actor, reconstructed), actor_hex, keys = ray.get(Probe.remote().report.remote())
        assert actor == actor_hex and reconstructed is False
        assert keys == ["actor_id", "job_id", "namespace", "node_id", "task_id"]
    finally:
        ray.shutdown()
