"""Async actors, concurrency groups and max_pending_calls on Shoal, in the shape of Ray's own
tests (python/ray/tests/test_asyncio.py, test_concurrency_group.py, test_actor.py), written for
Shoal.

Concurrency is shown by calls that wait for each other (an asyncio.Event or a threading.Event
inside the actor, or a signal actor), never by timing: a test that needs N calls to overlap
blocks N calls until the last one arrives, which can only finish if they all run at once.
"""
import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import PYTHON_DIR

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal as ray  # noqa: E402
from shoal.exceptions import PendingCallsLimitExceeded, TaskCancelledError  # noqa: E402

# Functions defined here travel by value: workers do not import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GET_TIMEOUT_S = 60


@ray.remote
class Signal:
    """Ray's SignalActor: wait() returns once send() was called."""

    def __init__(self):
        self.ready = asyncio.Event()

    async def wait(self):
        await self.ready.wait()
        return True

    def send(self):
        self.ready.set()


@ray.remote
class Rendezvous:
    """arrive(n) returns once n calls are inside it at once; counts the peak of calls inside."""

    def __init__(self):
        self.inside = 0
        self.peak = 0
        self.changed = asyncio.Condition()

    async def arrive(self, n):
        async with self.changed:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.changed.notify_all()
            await self.changed.wait_for(lambda: self.inside >= n)
        return self.inside

    async def sleep(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    def sync_thread(self):
        return threading.get_ident(), id(asyncio.get_event_loop())

    async def async_thread(self):
        return threading.get_ident(), id(asyncio.get_event_loop())

    def get_peak(self):
        return self.peak


def test_async_actor_runs_many_calls_at_once(driver):
    actor = Rendezvous.remote()
    # 50 calls that can only return once all 50 are inside at once.
    refs = [actor.arrive.remote(50) for _ in range(50)]
    assert ray.get(refs, timeout=GET_TIMEOUT_S) == [50] * 50
    assert ray.get(actor.get_peak.remote(), timeout=GET_TIMEOUT_S) == 50
    # 50 calls sleeping 0.5 s overlap (the overlap, not the time, is what is checked above).
    assert sum(ray.get([actor.sleep.remote(0.01) for _ in range(50)], timeout=GET_TIMEOUT_S)) == pytest.approx(0.5)


def test_calls_in_flight_on_an_async_actor_take_no_thread_each(driver):
    @ray.remote
    class Holder:
        def __init__(self):
            self.go = asyncio.Event()
            self.inside = 0

        async def hold(self):
            self.inside += 1
            await self.go.wait()
            return True

        async def inside_and_threads(self):
            return self.inside, len(os.listdir("/proc/self/task"))  # the process's threads, C++ ones too

        async def release(self):
            self.go.set()

    actor = Holder.remote()
    refs = [actor.hold.remote() for _ in range(300)]
    deadline = time.monotonic() + GET_TIMEOUT_S
    while True:
        inside, threads = ray.get(actor.inside_and_threads.remote(), timeout=GET_TIMEOUT_S)
        if inside == 300:
            break
        assert time.monotonic() < deadline, f"only {inside} of 300 calls got in"
        time.sleep(0.05)
    # 300 calls wait at once on the actor's event loop; none holds a thread of its own (Ray's
    # async actors run theirs on the loop too).
    assert threads < 40, threads
    ray.get(actor.release.remote(), timeout=GET_TIMEOUT_S)
    assert ray.get(refs, timeout=GET_TIMEOUT_S) == [True] * 300


def test_async_actor_sync_and_async_methods_share_one_event_loop(driver):
    actor = Rendezvous.remote()
    sync_thread, sync_loop = ray.get(actor.sync_thread.remote(), timeout=GET_TIMEOUT_S)
    async_thread, async_loop = ray.get(actor.async_thread.remote(), timeout=GET_TIMEOUT_S)
    # As in Ray: a sync method of an async actor runs on the loop's thread, in its loop.
    assert sync_thread == async_thread and sync_loop == async_loop


def test_signal_actor_releases_waiters_in_another_actor(driver):
    # Ray's SignalActor pattern: waiters block in one async actor until send() reaches it.
    signal = Signal.remote()
    waiters = [signal.wait.remote() for _ in range(10)]
    ready, not_ready = ray.wait(waiters, timeout=0.5)
    assert not ready
    ray.get(signal.send.remote(), timeout=GET_TIMEOUT_S)
    assert ray.get(waiters, timeout=GET_TIMEOUT_S) == [True] * 10


@ray.remote
class Awaiter:
    async def await_ref(self, refs):
        return await refs[0]

    async def await_actor(self, signal):
        return await signal.wait.remote()

    async def gather(self, refs):
        return sum(await asyncio.gather(*refs))


@ray.remote
def square(x):
    return x * x


def test_await_refs_and_actor_calls_inside_an_async_actor(driver):
    awaiter = Awaiter.remote()
    assert ray.get(awaiter.await_ref.remote([square.remote(7)]), timeout=GET_TIMEOUT_S) == 49
    assert ray.get(awaiter.gather.remote([square.remote(i) for i in range(5)]), timeout=GET_TIMEOUT_S) == 30
    signal = Signal.remote()
    waiting = awaiter.await_actor.remote(signal)
    assert not ray.wait([waiting], timeout=0.5)[0]
    signal.send.remote()
    assert ray.get(waiting, timeout=GET_TIMEOUT_S) is True


def test_async_actor_max_concurrency_is_a_bound(driver):
    @ray.remote(concurrency_groups={"monitor": 1})
    class Bounded:
        def __init__(self):
            self.inside = 0
            self.peak = 0
            self.go = asyncio.Event()

        async def hold(self):
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            await self.go.wait()
            self.inside -= 1
            return True

        @ray.method(concurrency_group="monitor")
        def inside_now(self):
            return self.inside

        @ray.method(concurrency_group="monitor")
        def release(self):
            # Runs on the monitor group's loop: hand the set to the default loop's thread.
            self.go_loop.call_soon_threadsafe(self.go.set)
            return self.peak

        async def remember_loop(self):
            self.go_loop = asyncio.get_running_loop()

    actor = Bounded.options(max_concurrency=3).remote()
    ray.get(actor.remember_loop.remote(), timeout=GET_TIMEOUT_S)
    refs = [actor.hold.remote() for _ in range(6)]
    deadline = time.monotonic() + GET_TIMEOUT_S
    while ray.get(actor.inside_now.remote(), timeout=GET_TIMEOUT_S) < 3:
        assert time.monotonic() < deadline, "three calls never got in"
        time.sleep(0.05)
    assert ray.get(actor.release.remote(), timeout=GET_TIMEOUT_S) == 3
    assert ray.get(refs, timeout=GET_TIMEOUT_S) == [True] * 6
    assert ray.get(actor.release.remote(), timeout=GET_TIMEOUT_S) == 3  # never more than 3 inside


@ray.remote(concurrency_groups={"io": 2, "compute": 4})
class Grouped:
    def __init__(self):
        self.default_loop = asyncio.get_event_loop()

    @ray.method(concurrency_group="io")
    async def io_async(self):
        return threading.get_ident(), id(asyncio.get_event_loop())

    @ray.method(concurrency_group="io")
    def io_sync(self):
        return threading.get_ident(), id(asyncio.get_event_loop())

    @ray.method(concurrency_group="compute")
    def compute(self):
        return threading.get_ident(), id(asyncio.get_event_loop())

    def default(self):
        assert asyncio.get_event_loop() is self.default_loop
        return threading.get_ident(), id(asyncio.get_event_loop())


def test_concurrency_groups_of_an_async_actor_run_on_their_own_loops(driver):
    actor = Grouped.remote()
    io_a = ray.get(actor.io_async.remote(), timeout=GET_TIMEOUT_S)
    io_s = ray.get(actor.io_sync.remote(), timeout=GET_TIMEOUT_S)
    compute = ray.get(actor.compute.remote(), timeout=GET_TIMEOUT_S)
    default = ray.get(actor.default.remote(), timeout=GET_TIMEOUT_S)
    assert io_a == io_s                      # one loop, one thread per group
    assert compute != io_a and default not in (io_a, compute)
    # The group can be chosen per call.
    assert ray.get(actor.io_sync.options(concurrency_group="compute").remote(), timeout=GET_TIMEOUT_S) == compute


def test_a_blocked_group_does_not_block_the_others(driver):
    @ray.remote(concurrency_groups={"slow": 1, "fast": 1})
    class Blocking:
        def __init__(self):
            self.release = threading.Event()

        @ray.method(concurrency_group="slow")
        async def stuck(self):
            self.release.wait(GET_TIMEOUT_S)  # blocks the slow group's loop, as time.sleep would
            return "released"

        @ray.method(concurrency_group="fast")
        def ok(self):
            return "ok"

        async def stuck_default(self):
            self.release.wait(GET_TIMEOUT_S)
            return "released"

        @ray.method(concurrency_group="fast")
        def unblock(self):
            self.release.set()

    actor = Blocking.remote()
    stuck = [actor.stuck.remote(), actor.stuck.remote(), actor.stuck_default.remote()]
    assert not ray.wait(stuck, timeout=0.5)[0]
    assert ray.get(actor.ok.remote(), timeout=GET_TIMEOUT_S) == "ok"
    ray.get(actor.unblock.remote(), timeout=GET_TIMEOUT_S)
    assert ray.get(stuck, timeout=GET_TIMEOUT_S) == ["released"] * 3


def test_threaded_actor_groups_bound_their_calls(driver):
    @ray.remote(concurrency_groups={"io": 2, "monitor": 1})
    class Threaded:
        def __init__(self):
            self.lock = threading.Lock()
            self.inside = {"io": 0, "": 0}
            self.peak = {"io": 0, "": 0}
            self.go = threading.Event()

        def _hold(self, group):
            with self.lock:
                self.inside[group] += 1
                self.peak[group] = max(self.peak[group], self.inside[group])
            self.go.wait(GET_TIMEOUT_S)
            with self.lock:
                self.inside[group] -= 1
            return threading.get_ident()

        @ray.method(concurrency_group="io")
        def io(self):
            return self._hold("io")

        def plain(self):
            return self._hold("")

        @ray.method(concurrency_group="monitor")
        def peaks(self):
            with self.lock:
                return dict(self.peak)

        @ray.method(concurrency_group="monitor")
        def release(self):
            self.go.set()

    actor = Threaded.options(max_concurrency=3).remote()
    io_calls = [actor.io.remote() for _ in range(4)]
    plain_calls = [actor.plain.remote() for _ in range(5)]
    deadline = time.monotonic() + GET_TIMEOUT_S
    while ray.get(actor.peaks.remote(), timeout=GET_TIMEOUT_S) != {"io": 2, "": 3}:
        assert time.monotonic() < deadline, ray.get(actor.peaks.remote())
        time.sleep(0.05)
    ray.get(actor.release.remote(), timeout=GET_TIMEOUT_S)
    ray.get(io_calls + plain_calls, timeout=GET_TIMEOUT_S)
    assert ray.get(actor.peaks.remote(), timeout=GET_TIMEOUT_S) == {"io": 2, "": 3}  # never above the limits
    assert len(set(ray.get(io_calls))) <= 2  # two io threads at most
    # A threaded actor's builtin call can be sent to a group too.
    assert ray.get(actor.__ray_call__.options(concurrency_group="monitor").remote(lambda self: self.go.is_set()),
                   timeout=GET_TIMEOUT_S)


def test_max_pending_calls_raises_pending_calls_limit_exceeded(driver):
    signal = Signal.remote()

    @ray.remote
    class Waiter:
        async def wait(self, signal):
            return await signal.wait.remote()

    actor = Waiter.options(max_pending_calls=2).remote()
    first = [actor.wait.remote(signal) for _ in range(2)]
    with pytest.raises(PendingCallsLimitExceeded):
        actor.wait.remote(signal)
    with pytest.raises(ray.exceptions.RayError):  # Ray's base class
        actor.wait.remote(signal)
    signal.send.remote()
    assert ray.get(first, timeout=GET_TIMEOUT_S) == [True, True]
    deadline = time.monotonic() + GET_TIMEOUT_S
    while True:  # the replies reach the handle just after the values: calls are allowed again
        try:
            assert ray.get(actor.wait.remote(signal), timeout=GET_TIMEOUT_S) is True
            break
        except PendingCallsLimitExceeded:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_cancelling_an_async_call_cancels_its_asyncio_task(driver):
    @ray.remote
    class Sleeper:
        def __init__(self):
            self.cancelled = 0

        async def sleep(self):
            try:
                await asyncio.sleep(GET_TIMEOUT_S)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return "slept"

        async def count(self):
            return self.cancelled

    actor = Sleeper.remote()
    ref = actor.sleep.remote()
    assert not ray.wait([ref], timeout=0.5)[0]
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=GET_TIMEOUT_S)
    assert ray.get(actor.count.remote(), timeout=GET_TIMEOUT_S) == 1  # the actor lives on


def test_bad_concurrency_options_are_refused_with_clear_errors(driver):
    @ray.remote
    class Plain:
        def f(self):
            return 1

    with pytest.raises(ValueError, match="concurrency group 'io'"):
        Plain.options(concurrency_groups={"io": 0}).remote()
    with pytest.raises(TypeError, match="concurrency_groups"):
        Plain.options(concurrency_groups=["io"]).remote()
    with pytest.raises(ValueError, match="max_pending_calls"):
        Plain.options(max_pending_calls=0).remote()
    with pytest.raises(ValueError, match="concurrency_group"):
        ray.method(concurrency_group="")
    with pytest.raises(ValueError, match="bogus"):
        ray.method(bogus=1)

    @ray.remote
    class Undeclared:
        @ray.method(concurrency_group="io")
        def f(self):
            return 1

    with pytest.raises(ValueError, match="'io'"):
        Undeclared.remote()
    actor = Plain.options(max_pending_calls=-1).remote()  # Ray's "no limit"
    with pytest.raises(ValueError, match="no concurrency group 'nope'"):
        actor.f.options(concurrency_group="nope").remote()
    assert ray.get(actor.f.remote(), timeout=GET_TIMEOUT_S) == 1  # the actor is fine


def test_output_of_async_methods_reaches_the_driver(three_nodes, tmp_path):
    script = tmp_path / "drv.py"
    script.write_text(textwrap.dedent("""
        import asyncio, shoal
        shoal.init(address=%r)

        @shoal.remote
        class Talker:
            async def talk(self, i):
                await asyncio.sleep(0.01)
                print("async-says", i)
                return i

        t = Talker.remote()
        assert shoal.get([t.talk.remote(i) for i in range(3)]) == [0, 1, 2]
        shoal.shutdown()
    """ % three_nodes.address))
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, SHOAL_AUTH_TOKEN=three_nodes.auth_token())
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for i in range(3):
        assert f"async-says {i}" in proc.stdout, proc.stdout + proc.stderr


def test_runtime_context_inside_tasks_and_actors(driver):
    @ray.remote(num_cpus=0.5, num_gpus=0.5, resources={"A": 2})
    def assigned():
        ctx = ray.get_runtime_context()
        return ctx.get_assigned_resources(), ctx.get_task_id()

    resources, task_id = ray.get(assigned.remote(), timeout=GET_TIMEOUT_S)
    assert resources == {"CPU": 0.5, "GPU": 0.5, "A": 2.0}
    assert task_id

    @ray.remote(num_cpus=1, resources={"W": 0.25})
    class Holder:
        def held(self):
            return ray.get_runtime_context().get_assigned_resources()

        async def held_async(self):
            ctx = ray.get_runtime_context()
            return ctx.get_assigned_resources(), ctx.get_task_id()

    holder = Holder.remote()
    assert ray.get(holder.held.remote(), timeout=GET_TIMEOUT_S) == {"CPU": 1.0, "W": 0.25}
    held, call_id = ray.get(holder.held_async.remote(), timeout=GET_TIMEOUT_S)
    assert held == {"CPU": 1.0, "W": 0.25}
    assert call_id and call_id != task_id  # the call's own id, seen from the event loop

    from shoal.util.placement_group import placement_group, remove_placement_group
    from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    pg = placement_group([{"CPU": 1, "B": 1}])
    assert pg.wait(GET_TIMEOUT_S)
    try:
        in_group = assigned.options(num_gpus=0, resources={"B": 1}, num_cpus=1,
                                    scheduling_strategy=PlacementGroupSchedulingStrategy(pg))
        resources, _ = ray.get(in_group.remote(), timeout=GET_TIMEOUT_S)
        assert resources == {"CPU": 1.0, "B": 1.0}  # the request, not the bundle's resource names
    finally:
        remove_placement_group(pg)
    with pytest.raises(AssertionError, match="worker"):
        ray.get_runtime_context().get_assigned_resources()  # a driver holds nothing: Ray asserts


def test_runtime_context_knows_its_actor(driver):
    @ray.remote(max_restarts=1)
    class Phoenix:
        def who(self):
            ctx = ray.get_runtime_context()
            return ctx.get_actor_name(), ctx.was_current_actor_reconstructed, ctx.current_actor

        def die(self):
            os._exit(1)

    actor = Phoenix.options(name="phoenix").remote()
    name, reconstructed, handle = ray.get(actor.who.remote(), timeout=GET_TIMEOUT_S)
    assert name == "phoenix" and reconstructed is False
    assert handle == actor  # the same actor, usable from the caller
    actor.die.remote()
    deadline = time.monotonic() + GET_TIMEOUT_S
    while True:  # calls fail until the restart is known; then the restarted actor answers
        try:
            name, reconstructed, _ = ray.get(actor.who.remote(), timeout=GET_TIMEOUT_S)
            if reconstructed:
                break
        except ray.exceptions.RayError:
            pass
        assert time.monotonic() < deadline, "the actor was never restarted"
        time.sleep(0.1)
    assert name == "phoenix"
    unnamed = Phoenix.remote()
    assert ray.get(unnamed.who.remote(), timeout=GET_TIMEOUT_S)[0] == ""

    @ray.remote
    def outside():
        ctx = ray.get_runtime_context()
        try:
            ctx.was_current_actor_reconstructed
        except AssertionError as e:
            return ctx.get_actor_name(), str(e)

    assert ray.get(outside.remote(), timeout=GET_TIMEOUT_S) == (None, "was_current_actor_reconstructed is only "
                                                                      "available inside an actor")
