"""Ray's utilities and compatibility names on Shoal: shoal.util.ActorPool, shoal.util.queue,
implicit init, the id types, exit_actor and the actor built-in methods.

In the shape of Ray's own tests (python/ray/tests/test_actor_pool.py, test_queue.py,
test_actor.py, test_basic.py), written for Shoal. Most run in this process as a driver of the
module's three-node cluster (conftest `driver`): head 2 CPUs; node A 2 CPUs, resource A; node B
2 CPUs, resource B. Implicit init runs in subprocesses, which own their Shoal connection.
Waiting is by files created on the shared filesystem, never by sleeping for a duration.
"""
import asyncio
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from conftest import PYTHON_DIR, wait_until

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal as ray  # noqa: E402
import task_helpers  # noqa: E402
from task_helpers import touch, wait_for_file  # noqa: E402
from shoal.util import ActorPool  # noqa: E402
from shoal.util.queue import Empty, Full, Queue  # noqa: E402

# Functions defined here travel by value: workers do not import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(task_helpers)


def actor_state(handle):
    """The GCS's view of an actor: (state, num_restarts)."""
    info = ray._private.runtime.core().get_actor_info(handle._actor_id)
    return info["state"], info["num_restarts"]


def wait_dead(handle):
    wait_until(lambda: actor_state(handle)[0] == "DEAD", 60, what="the actor to be DEAD")


@ray.remote
class Doubler:
    def __init__(self, gate=None):
        self.gate = gate

    def double(self, x):
        # Value 0 waits for the gate file when there is one, so the test decides when it ends.
        if x == 0 and self.gate:
            wait_for_file(self.gate)
        return 2 * x

    @ray.method(num_returns=2)
    def pair(self, x):
        return x, x + 1


# ---------------------------------------------------------------------------------------------
# ActorPool


def test_actor_pool_map_keeps_order_and_map_unordered_answers_as_finished(driver, tmp_path):
    pool = ActorPool([Doubler.remote() for _ in range(3)])
    assert list(pool.map(lambda a, v: a.double.remote(v), range(10))) == [2 * v for v in range(10)]
    assert not pool.has_next()

    # Value 0 is held by its gate; the others finish first and come out of map_unordered first.
    gate = str(tmp_path / "gate")
    pool = ActorPool([Doubler.remote(gate) for _ in range(3)])
    results = pool.map_unordered(lambda a, v: a.double.remote(v), range(6))
    first = [next(results) for _ in range(5)]
    assert sorted(first) == [2, 4, 6, 8, 10]
    touch(gate)
    assert list(results) == [0]

    # submit/get_next one at a time, as in Ray's test_get_next.
    for i in range(5):
        pool.submit(lambda a, v: a.double.remote(v), i + 1)
        assert pool.get_next() == 2 * (i + 1)
    # Results not fetched before map() are dropped, not mixed into its results.
    pool.submit(lambda a, v: a.double.remote(v), 100)
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2])) == [2, 4]


def test_actor_pool_timeouts_and_ignore_if_timedout(driver, tmp_path):
    gate = str(tmp_path / "gate")
    pool = ActorPool([Doubler.remote(gate), Doubler.remote(gate)])
    pool.submit(lambda a, v: a.double.remote(v), 0)  # held by the gate
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.1)
    assert pool.has_next()  # still pending
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.1)
    assert pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True) is None
    assert pool.has_next()
    assert pool.has_free()  # the other actor
    # Giving up on it: TimeoutError, nothing pending any more, its actor idle again.
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next()
    assert len(pool._idle_actors) == 2
    touch(gate)
    assert sorted(pool.map(lambda a, v: a.double.remote(v), [3, 4])) == [6, 8]

    # Several returns per call: the result is the list of values.
    pool = ActorPool([Doubler.remote() for _ in range(2)])
    for v in range(4):
        pool.submit(lambda a, v: a.pair.remote(v), v)
    assert [pool.get_next(timeout=60) for _ in range(4)] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    for v in range(3):
        pool.submit(lambda a, v: a.pair.remote(v), v)
    assert sorted(pool.get_next_unordered(timeout=60) for _ in range(3)) == [[0, 1], [1, 2], [2, 3]]


def test_actor_pool_bad_input(driver):
    pool = ActorPool([Doubler.remote()])
    with pytest.raises(StopIteration):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()
    with pytest.raises(TypeError, match="ObjectRef"):
        pool.submit(lambda a, v: v, 1)  # not a call of the actor
    with pytest.raises(TypeError):
        pool.submit("not a function", 1)
    assert pool.has_free()  # the actor was not lost to the bad submits
    pool.submit(lambda a, v: a.double.remote(v), 1)
    with pytest.raises(ValueError):
        pool.get_next(timeout=-1)
    assert pool.get_next() == 2

    # A call's own error is raised as by get, and the actor stays in the pool.
    @ray.remote
    class Fails:
        def run(self, v):
            raise KeyError(v)

    pool = ActorPool([Fails.remote()])
    pool.submit(lambda a, v: a.run.remote(v), "k")
    with pytest.raises(KeyError):
        pool.get_next()
    assert pool.has_free()


def test_actor_pool_push_pop_idle_and_dead_actors(driver):
    # As Ray's test_pop_idle and test_push.
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.double.remote(v), 1)
    assert pool.pop_idle() is None
    assert pool.has_free() is False
    assert pool.get_next() == 2
    assert pool.has_free()
    assert pool.pop_idle() is not None
    assert pool.has_free() is False

    a1, a2, a3 = Doubler.remote(), Doubler.remote(), Doubler.remote()
    pool = ActorPool([a1])
    pool.submit(lambda a, v: a.double.remote(v), 1)
    assert pool.has_free() is False
    with pytest.raises(ValueError):
        pool.push(a1)  # busy in this pool
    pool.push(a2)
    assert pool.has_free()
    with pytest.raises(ValueError):
        pool.push(a2)  # idle in this pool
    pool.submit(lambda a, v: a.double.remote(v), 2)
    pool.submit(lambda a, v: a.double.remote(v), 3)  # waits for an actor
    assert pool.has_free() is False
    pool.push(a3)  # takes the waiting value at once
    assert pool.has_free() is False
    assert sorted(pool.get_next_unordered() for _ in range(3)) == [2, 4, 6]

    # An actor whose call fails with ActorDiedError leaves the pool.
    live, doomed = Doubler.remote(), Doubler.remote()
    pool = ActorPool([live, doomed])
    ray.kill(doomed)
    pool.submit(lambda a, v: a.double.remote(v), 1)  # goes to `doomed` (the last idle actor)
    with pytest.raises(ray.exceptions.RayActorError):
        pool.get_next(timeout=60)
    assert pool.pop_idle() == live
    assert pool.pop_idle() is None


# ---------------------------------------------------------------------------------------------
# Queue


def test_queue_basics_and_errors(driver):
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and q.qsize() == 0 and len(q) == 0
    for i in range(3):
        q.put(i)
    assert q.full() and q.size() == 3
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, block=False)
    with pytest.raises(Full):
        q.put(3, timeout=0.2)
    assert [q.get(), q.get_nowait(), q.get(block=False)] == [0, 1, 2]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(timeout=0.2)
    assert issubclass(Empty, __import__("queue").Empty) and issubclass(Full, __import__("queue").Full)

    # Batches go in or out whole, or not at all.
    with pytest.raises(Full):
        q.put_nowait_batch([1, 2, 3, 4])
    assert q.empty()
    q.put_nowait_batch(["a", "b"])
    with pytest.raises(Empty):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == ["a", "b"]
    assert q.get_nowait_batch(0) == []

    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    with pytest.raises(TypeError):
        Queue(maxsize="big")
    with pytest.raises(ValueError, match="Invalid option"):
        Queue(actor_options={"num_cpu": 1})

    # Unbounded, with values of every size (a large one goes through the object store).
    big = Queue()
    values = [None, "s", {"k": [1, 2]}, b"x" * 300_000] + list(range(50))
    for v in values:
        big.put(v)
    assert [big.get(timeout=30) for _ in values] == values


def test_queue_producer_and_consumer_across_processes(driver, tmp_path):
    q = Queue(maxsize=2)

    @ray.remote(resources={"A": 1})
    def producer(queue, n):
        for i in range(n):
            queue.put(i, timeout=60)  # blocks while the consumer is behind
        return "produced"

    @ray.remote(resources={"B": 1})
    def consumer(queue, n):
        return [queue.get(timeout=60) for _ in range(n)]

    p, c = producer.remote(q, 30), consumer.remote(q, 30)
    assert ray.get(c, timeout=120) == list(range(30))
    assert ray.get(p, timeout=60) == "produced"
    assert q.empty()

    # A consumer blocked on the empty queue does not hold up the producer that releases it.
    gate = str(tmp_path / "waiting")

    @ray.remote
    def blocked_get(queue, gate):
        touch(gate)
        return queue.get(timeout=60)

    got = blocked_get.remote(q, gate)
    wait_until(lambda: os.path.exists(gate), 60, what="the consumer to start")
    q.put("hello")
    assert ray.get(got, timeout=60) == "hello"

    # Timeouts inside tasks raise Empty / Full there.
    @ray.remote
    def times_out(queue):
        out = []
        try:
            queue.get(timeout=0.2)
        except Empty:
            out.append("empty")
        queue.put_nowait_batch([1, 2])
        try:
            queue.put(3, timeout=0.2)
        except Full:
            out.append("full")
        return out

    assert ray.get(times_out.remote(q), timeout=60) == ["empty", "full"]
    assert q.get_nowait_batch(2) == [1, 2]

    # From async code.
    async def async_round_trip():
        await q.put_async("x")
        await q.put_async("y", timeout=5)
        with pytest.raises(Full):
            await q.put_async("z", timeout=0.1)
        first = await q.get_async()
        second = await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        return [first, second]

    assert asyncio.run(async_round_trip()) == ["x", "y"]


def test_queue_actor_options_and_shutdown(driver):
    node_a = next(n for n in ray.nodes() if "A" in n["Resources"])["NodeID"]
    q = Queue(actor_options={"resources": {"A": 1}})
    where = ray.get(q.actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
    assert where == node_a
    q.put(1)
    actor = q.actor
    q.shutdown()
    assert q.actor is None
    with pytest.raises(ValueError, match="shut down"):
        q.put(2)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.qsize.remote(), timeout=60)
    wait_dead(actor)

    forced = Queue()
    actor = forced.actor
    forced.shutdown(force=True)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(actor.qsize.remote(), timeout=60)


# ---------------------------------------------------------------------------------------------
# exit_actor and the built-in actor methods


def test_actor_builtin_methods(driver, tmp_path):
    @ray.remote
    class Counter:
        def __init__(self, start):
            self.count = start

        def get(self):
            return self.count

    c = Counter.remote(5)
    assert ray.get(c.__ray_ready__.remote(), timeout=60) is True
    assert ray.get(c.__ray_call__.remote(lambda self: self.count)) == 5
    assert ray.get(c.__ray_call__.remote(lambda self, x, y=0: self.count + x + y, 10, y=100)) == 115

    def bump(self, by):
        self.count += by
        return self.count

    assert ray.get(c.__ray_call__.remote(bump, 2)) == 7
    assert ray.get(c.get.remote()) == 7  # the instance itself changed

    async def async_read(self):
        await asyncio.sleep(0)
        return self.count

    assert ray.get(c.__ray_call__.remote(async_read)) == 7

    # Bad arguments: refused at the call where Shoal knows the signature, else raised by get.
    with pytest.raises(TypeError):
        c.__ray_call__.remote()
    with pytest.raises(TypeError):
        c.__ray_ready__.remote(1)
    with pytest.raises(TypeError):
        ray.get(c.__ray_call__.remote(5))
    with pytest.raises(AttributeError):
        c.__ray_not_a_builtin__.remote()
    with pytest.raises(TypeError, match="cannot be called directly"):
        c.__ray_ready__()

    # Handles passed to tasks have them too.
    @ray.remote
    def via_task(handle):
        return ray.get(handle.__ray_call__.remote(lambda self: self.count * 2))

    assert ray.get(via_task.remote(c)) == 14

    # __ray_terminate__ ends the actor after the calls made before it.
    @ray.remote(max_restarts=2)
    class Slow:
        def work(self, gate):
            wait_for_file(gate)
            return "done"

    s = Slow.remote()
    gate = str(tmp_path / "gate")
    work = s.work.remote(gate)
    end = s.__ray_terminate__.remote()
    ready, _ = ray.wait([end], timeout=0.2)
    assert not ready  # waits behind `work`
    touch(gate)
    assert ray.get(work, timeout=60) == "done"
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(end, timeout=60)
    wait_dead(s)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(s.work.remote(gate), timeout=60)
    assert actor_state(s) == ("DEAD", 0)  # not restarted, though max_restarts=2


def test_exit_actor(driver, tmp_path):
    marker = str(tmp_path / "atexit-ran")

    @ray.remote(max_restarts=3)
    class Quitter:
        def __init__(self, marker):
            import atexit
            atexit.register(lambda: touch(marker))

        def ping(self):
            return "pong"

        def quit(self):
            ray.actor.exit_actor()
            return "not reached"

    q = Quitter.remote(marker)
    assert ray.get(q.ping.remote()) == "pong"
    before, exiting, after = q.ping.remote(), q.quit.remote(), q.ping.remote()
    assert ray.get(before) == "pong"
    with pytest.raises(ray.exceptions.RayActorError, match="exit_actor"):
        ray.get(exiting, timeout=60)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(after, timeout=60)
    wait_dead(q)
    assert actor_state(q) == ("DEAD", 0)  # not restarted
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(q.ping.remote(), timeout=60)
    wait_until(lambda: os.path.exists(marker), 30, what="the actor's atexit handler")

    # From an async method, and for a named detached actor: its name is free afterwards.
    @ray.remote
    class AsyncQuitter:
        async def quit(self):
            ray.actor.exit_actor()

    a = AsyncQuitter.options(name="util-quitter", lifetime="detached").remote()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.quit.remote(), timeout=60)
    wait_dead(a)
    with pytest.raises(ValueError):
        ray.get_actor("util-quitter")

    # A threaded actor finishes the calls already running before it exits.
    gate = str(tmp_path / "gate")

    started = str(tmp_path / "started")

    @ray.remote(max_concurrency=2)
    class Threaded:
        def slow(self, started, gate):
            touch(started)
            wait_for_file(gate)
            return "finished"

        def quit(self):
            ray.actor.exit_actor()

    t = Threaded.remote()
    slow = t.slow.remote(started, gate)
    wait_until(lambda: os.path.exists(started), 60, what="the slow call to start")
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(t.quit.remote(), timeout=60)
    assert actor_state(t)[0] == "ALIVE"  # still running `slow`
    touch(gate)
    assert ray.get(slow, timeout=60) == "finished"
    wait_dead(t)

    # Outside an actor: TypeError, in the driver and in a task.
    with pytest.raises(TypeError):
        ray.actor.exit_actor()

    @ray.remote
    def task():
        ray.actor.exit_actor()

    with pytest.raises(TypeError):
        ray.get(task.remote())


# ---------------------------------------------------------------------------------------------
# Compatibility names


def test_id_types():
    assert ray.ObjectID is ray.ObjectRef
    for cls, size in ((ray.ActorID, 16), (ray.TaskID, 24), (ray.ObjectRef, 28), (ray.JobID, 4),
                      (ray.NodeID, 28), (ray.WorkerID, 28)):
        assert cls.size() == size
        nil = cls.nil()
        assert nil.is_nil() and nil.binary() == b"\xff" * size and nil.hex() == "ff" * size
        some = cls.from_hex("ab" * size)
        assert not some.is_nil()
        assert some == cls.from_binary(b"\xab" * size) and hash(some) == hash(cls.from_binary(b"\xab" * size))
        assert some != nil and cls.from_random() != cls.from_random()
        assert cls.from_hex(some.hex()) == some
        with pytest.raises(ValueError):
            cls.from_hex("ab")  # wrong length
        with pytest.raises(ValueError):
            cls.from_hex("zz" * size)  # not hex
        with pytest.raises(TypeError):
            cls.from_hex(123)
        with pytest.raises(ValueError):
            cls.from_binary(b"123")
        with pytest.raises(TypeError):
            cls.from_binary("ab" * size)
    actor = ray.ActorID.from_hex("01" * 16)
    assert pickle.loads(pickle.dumps(actor)) == actor
    assert repr(actor) == "ActorID(" + "01" * 16 + ")"
    assert ray.ActorID.from_hex("01" * 16) != ray.TaskID.from_hex("01" * 24)
    assert ray.JobID.from_int(7).int() == 7
    with pytest.raises(ValueError):
        ray.ObjectRef(b"12")
    assert ray.cloudpickle is cloudpickle
    assert ray.cloudpickle.loads(ray.cloudpickle.dumps(lambda x: x + 1))(1) == 2


def test_ids_of_refs_and_node_ip(driver):
    @ray.remote(num_returns=2)
    def two():
        return 1, 2

    a, b = two.remote()
    assert isinstance(a.task_id(), ray.TaskID)
    assert a.task_id() == b.task_id() and a != b
    assert ray.ObjectRef.from_hex(a.hex()) == a
    assert ray.get(ray.ObjectRef.from_binary(a.binary())) == 1

    by_id = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    assert ray.util.get_node_ip_address() == by_id[ray.get_runtime_context().get_node_id()]

    @ray.remote(resources={"B": 1})
    def where():
        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()

    node, ip = ray.get(where.remote())
    assert ip == by_id[node]


# ---------------------------------------------------------------------------------------------
# Implicit init


def run_script(code, env, timeout=120):
    env = dict(env)
    env["PYTHONPATH"] = PYTHON_DIR
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir())


FIRST_CALLS = {
    "put": "shoal.put(1)",
    "get": "shoal.get([])",
    "wait": "assert shoal.wait([], num_returns=3) == ([], [])",  # Ray answers an empty list so
    "remote": "shoal.get(f.remote())",
    "actor": "shoal.get(A.remote().ping.remote())",
    "get_actor": "shoal.get_actor('no such actor')",
    # Not get_runtime_context(): as in Ray it starts nothing (test_python_options.py).
}


@pytest.mark.parametrize("call", sorted(FIRST_CALLS))
def test_first_call_joins_the_cluster_in_ray_address(three_nodes, call):
    env = dict(three_nodes.env, RAY_ADDRESS=three_nodes.address)
    proc = run_script(f"""
        import shoal
        from shoal.util import ActorPool  # imports start nothing
        assert not shoal.is_initialized()

        @shoal.remote
        def f():
            return 1

        @shoal.remote
        class A:
            def ping(self):
                return 1

        try:
            {FIRST_CALLS[call]}
        except ValueError:
            pass  # get_actor of an unknown name, after connecting
        print("cpus", shoal.cluster_resources()["CPU"])
    """, env)
    assert proc.returncode == 0, proc.stderr
    assert "cpus 6.0" in proc.stdout


def test_driver_exits_cleanly_right_after_its_last_actor_handle_goes(three_nodes):
    # The handle's actor is ended by a background thread; exiting while it talks to the core
    # once aborted the interpreter ("terminate called without an active exception") most times.
    for _ in range(5):
        proc = run_script("""
            import shoal

            @shoal.remote
            class A:
                def ping(self):
                    return 1

            print("got", shoal.get(A.remote().ping.remote()))
        """, dict(three_nodes.env, RAY_ADDRESS=three_nodes.address))
        assert proc.returncode == 0, proc.stderr
        assert "got 1" in proc.stdout


def test_implicit_init_starts_a_private_cluster_or_joins_the_current_one(three_nodes, tmp_path):
    # No address anywhere: a new local cluster, gone with the driver.
    env = dict(three_nodes.env, SHOAL_TMPDIR=str(tmp_path))
    for var in ("SHOAL_ADDRESS", "RAY_ADDRESS", "SHOAL_AUTH_TOKEN"):
        env.pop(var, None)
    proc = run_script("""
        import shoal
        ref = shoal.put("value")
        print("got", shoal.get(ref), shoal.is_initialized(), sorted(shoal.cluster_resources()) != [])
        print("nodes", len(shoal.nodes()))
    """, env)
    assert proc.returncode == 0, proc.stderr
    assert "got value True True" in proc.stdout and "nodes 1" in proc.stdout
    wait_until(lambda: not any(p.is_dir() for p in tmp_path.iterdir() if p.name.startswith("shoal_")), 30,
               what="the private cluster's root to be removed")

    # The cluster `shoal start` last started on this machine (its SHOAL_TMPDIR), as Ray's
    # ray_current_cluster; address="local" starts a new one anyway.
    env = dict(three_nodes.env)
    for var in ("SHOAL_ADDRESS", "RAY_ADDRESS"):
        env.pop(var, None)
    proc = run_script("""
        import shoal
        print("joined", shoal.get(shoal.put(1)), shoal.cluster_resources()["CPU"])
        shoal.shutdown()
        shoal.init(address="local", num_cpus=1)
        print("local", shoal.cluster_resources()["CPU"])
    """, env)
    assert proc.returncode == 0, proc.stderr
    assert "joined 1 6.0" in proc.stdout and "local 1.0" in proc.stdout

    # Turned off: calls fail instead of connecting.
    proc = run_script("""
        import shoal
        try:
            shoal.put(1)
        except shoal.exceptions.RayError as e:
            print("refused", shoal.is_initialized(), "init" in str(e))
    """, dict(env, SHOAL_ENABLE_AUTO_CONNECT="0"))
    assert proc.returncode == 0, proc.stderr
    assert "refused False True" in proc.stdout


def test_get_timeout_is_kept_while_work_cannot_start(driver, tmp_path):
    @ray.remote(resources={"nowhere": 1})
    def infeasible():
        return 1

    @ray.remote
    class SlowStart:
        def __init__(self, gate):
            wait_for_file(gate)

        def ping(self):
            return "pong"

    gate = str(tmp_path / "gate")
    slow = SlowStart.remote(gate)
    for ref in (infeasible.remote(), slow.ping.remote(), slow.__ray_ready__.remote()):
        with pytest.raises(ray.exceptions.GetTimeoutError):
            ray.get(ref, timeout=0.3)
        with pytest.raises(ray.exceptions.GetTimeoutError):
            ray.get([ref], timeout=0)
    touch(gate)
    assert ray.get(slow.ping.remote(), timeout=60) == "pong"
    # wait() refuses what Ray's refuses.
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=0)
    with pytest.raises(ValueError):
        ray.wait([ref], timeout=-1)
