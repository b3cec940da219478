"""Actors end to end through the Python API, on a three-node loopback cluster:
    head    2 CPUs, no GPU
    node A  2 CPUs, 2 GPUs, custom resources A and W
    node B  2 CPUs, 1 GPU,  custom resources B and W
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from conftest import PYTHON_DIR, process_alive, wait_until

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal as ray  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self, n=1):
        self.value += n
        return self.value

    def get(self):
        return self.value

    def pid(self):
        return os.getpid()

    def where(self):
        ctx = ray.get_runtime_context()
        return ctx.get_node_id(), ctx.get_actor_id(), ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    @ray.method(num_returns=2)
    def pair(self):
        return self.value, -self.value


def test_counter_runs_calls_in_order(driver):
    c = Counter.remote(10)
    refs = [c.incr.remote() for _ in range(500)]
    assert ray.get(refs) == list(range(11, 511))  # one caller: submission order
    assert ray.get(c.get.remote()) == 510
    a, b = c.pair.remote()
    assert ray.get([a, b]) == [510, -510]
    node, actor_id, _, _ = ray.get(c.where.remote())
    assert actor_id == c._actor_id.hex()


def test_many_callers_get_correct_totals(driver):
    c = Counter.remote()

    @ray.remote
    def hammer(counter, n):
        return ray.get([counter.incr.remote() for _ in range(n)])[-1]

    results = ray.get([hammer.remote(c, 100) for _ in range(5)])
    assert max(results) == 500
    assert ray.get(c.get.remote()) == 500

    # Threads of the driver too.
    def call():
        ray.get([c.incr.remote() for _ in range(50)])

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ray.get(c.get.remote()) == 700


def test_handles_passed_to_tasks_and_actors(driver):
    c = Counter.remote()

    @ray.remote
    def use(counter):
        return ray.get(counter.incr.remote(5))

    assert ray.get(use.remote(c)) == 5

    @ray.remote
    class Caller:
        def __init__(self, counter):
            self.counter = counter

        def go(self):
            return ray.get(self.counter.incr.remote(100))

    caller = Caller.remote(c)
    assert ray.get(caller.go.remote()) == 105
    assert ray.get(ray.put([c])) [0] == c


def test_fractional_gpu_actors_pack_onto_declared_gpus(driver):
    actors = [Counter.options(num_gpus=0.5, resources={"A": 1}).remote() for _ in range(4)]
    placements = ray.get([a.where.remote() for a in actors], timeout=60)
    per_device = {}
    for node, _, ids, visible in placements:
        assert len(ids) == 1 and visible == str(ids[0])
        per_device[ids[0]] = per_device.get(ids[0], 0) + 1
    assert per_device == {0: 2, 1: 2}
    assert len({p[0] for p in placements}) == 1  # all on node A
    # A fifth half-GPU actor on node A does not fit until one goes.
    fifth = Counter.options(num_gpus=0.5, resources={"A": 1}).remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(fifth.get.remote(), timeout=2)
    ray.kill(actors[0])
    assert ray.get(fifth.get.remote(), timeout=60) == 0
    for a in actors[1:] + [fifth]:
        ray.kill(a)


def test_worker_kill_restarts_actor_when_allowed(driver):
    c = Counter.options(max_restarts=1, max_task_retries=-1).remote(5)
    assert ray.get(c.incr.remote()) == 6
    pid = ray.get(c.pid.remote())
    os.kill(pid, signal.SIGKILL)
    # Restarted: the constructor ran again (state reset), and calls work.
    assert ray.get(c.incr.remote(), timeout=60) == 6
    assert ray.get(c.pid.remote()) != pid
    # A second death is one too many.
    os.kill(ray.get(c.pid.remote()), signal.SIGKILL)
    with pytest.raises(ray.exceptions.ActorDiedError):
        for _ in range(100):
            ray.get(c.incr.remote(), timeout=60)
            time.sleep(0.1)


def test_worker_kill_without_restarts_raises_actor_died(driver):
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ray.exceptions.ActorDiedError) as info:
        for _ in range(100):
            ray.get(c.incr.remote(), timeout=60)
            time.sleep(0.1)
    assert "died" in str(info.value)


def test_raylet_kill_restarts_actor_on_another_node(cluster):
    # A cluster of its own: this test kills one of its nodes.
    cluster.start_head("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 1, "--resources", '{"W": 100}')
    cluster.start_worker("--num-cpus", 1, "--resources", '{"W": 100}')
    wait_until(lambda: len(cluster.alive_nodes()) == 3, 20, what="3 alive nodes")
    ray.init(address=cluster.address)
    try:
        c = Counter.options(max_restarts=2, max_task_retries=-1, resources={"W": 1}).remote()
        node_before, _, _, _ = ray.get(c.where.remote())
        pid_before = ray.get(c.pid.remote())
        raylet = next(n for n in cluster.alive_nodes() if n["node_id"] == node_before)
        os.kill(raylet["raylet_pid"], signal.SIGKILL)
        # The worker dies a moment after its raylet (PR_SET_PDEATHSIG); a call made before then
        # rightly runs on the first incarnation. Wait, so the next call can only reach the restart.
        wait_until(lambda: not process_alive(pid_before), 20, what="the dead node's actor worker to exit")
        node_after, _, _, _ = ray.get(c.where.remote(), timeout=90)
        assert node_after != node_before
        assert ray.get(c.incr.remote(), timeout=30) == 1
    finally:
        ray.shutdown()


def test_named_and_detached_actors(driver, three_nodes):
    Counter.options(name="shared", lifetime="detached").remote(42)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import shoal
        shoal.init(address="{three_nodes.address}")
        c = shoal.get_actor("shared")
        print("value", shoal.get(c.incr.remote()))
        try:
            shoal.get_actor("no-such-actor")
        except ValueError as e:
            print("missing", e)
        shoal.shutdown()
    """)], env=dict(three_nodes.env, PYTHONPATH=PYTHON_DIR), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "value 43" in proc.stdout
    assert "missing" in proc.stdout
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="shared").remote()
    same = Counter.options(name="shared", get_if_exists=True).remote()
    assert ray.get(same.incr.remote()) == 44
    ray.kill(ray.get_actor("shared"))
    with pytest.raises(ValueError):
        ray.get_actor("shared")


def test_actor_dies_with_its_owner_unless_detached(three_nodes):
    script = textwrap.dedent(f"""
        import shoal, os
        shoal.init(address="{three_nodes.address}")
        @shoal.remote
        class A:
            def pid(self):
                return os.getpid()
        a = A.remote()
        d = A.options(name="keeper", lifetime="detached").remote()
        print(shoal.get(a.pid.remote()), shoal.get(d.pid.remote()), flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=dict(three_nodes.env, PYTHONPATH=PYTHON_DIR),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    owned_pid, detached_pid = map(int, proc.stdout.split())
    wait_until(lambda: not process_alive(owned_pid), 30, what="the owned actor to die with its driver")
    assert process_alive(detached_pid)
    ray.init(address=three_nodes.address)
    try:
        keeper = ray.get_actor("keeper")
        assert ray.get(keeper.pid.remote()) == detached_pid
        ray.kill(keeper)
        wait_until(lambda: not process_alive(detached_pid), 30, what="the killed actor's worker to exit")
    finally:
        ray.shutdown()


def test_actor_ends_when_its_last_handle_goes(driver):
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    del c
    wait_until(lambda: not process_alive(pid), 30, what="the actor's worker to exit once its handle went")
    # The handle goes at once here, but the call made through it still runs first.
    assert ray.get(Counter.remote(5).incr.remote(), timeout=60) == 6
    # ...and the actor ends once that call's result is in (its ref still held here).
    call = Counter.remote().pid.remote()
    pid = ray.get(call, timeout=60)
    wait_until(lambda: not process_alive(pid), 30, what="the actor to end after the call made through its last handle")
    # A handle passed to a task is not counted, so the actor stays: it still answers after
    # the creator's handle went.
    keep = Counter.options(name="kept-by-name").remote()
    c = Counter.remote(1)

    @ray.remote
    def use(counter):
        return ray.get(counter.incr.remote())

    assert ray.get(use.remote(c)) == 2
    ray.kill(keep)


def test_bad_input(driver):
    c = Counter.remote()
    with pytest.raises(AttributeError, match="no method"):
        c.missing.remote()
    with pytest.raises(TypeError):
        Counter()
    with pytest.raises(TypeError):
        c.incr()

    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("constructor exploded")

        def ping(self):
            return "pong"

    b = Broken.remote()
    with pytest.raises(ray.exceptions.ActorDiedError, match="constructor exploded"):
        ray.get(b.ping.remote(), timeout=60)
    with pytest.raises(ValueError):
        Counter.options(max_concurrency=0).remote()
    with pytest.raises(ValueError):
        Counter.options(lifetime="forever").remote()

    @ray.remote
    class Raises:
        def boom(self):
            raise KeyError("inside a method")

        def ok(self):
            return "ok"

    r = Raises.remote()
    with pytest.raises(KeyError):
        ray.get(r.boom.remote())
    assert ray.get(r.ok.remote()) == "ok"  # an exception does not kill the actor


def test_a_threaded_actors_threads_keep_their_thread_local_data(driver):
    # As in Ray's thread pool: a threaded actor's calls run on long-lived threads, so what a call
    # keeps in threading.local() is there for the next call on the same thread (Shoal used to
    # give every call a fresh Python thread state).
    import threading

    @ray.remote(max_concurrency=3)
    class Local:
        def __init__(self):
            self.local = threading.local()

        def count(self):
            self.local.n = getattr(self.local, "n", 0) + 1
            return threading.get_ident(), self.local.n, threading.current_thread().name

    a = Local.remote()
    seen = {}
    for _ in range(30):
        ident, n, name = ray.get(a.count.remote())
        seen.setdefault(ident, []).append(n)
    for counts in seen.values():
        assert counts == list(range(1, len(counts) + 1)), seen
    assert max(len(c) for c in seen.values()) > 1, seen


def test_the_worker_module_leaves_asyncio_to_async_actors():
    # asyncio (with ssl and subprocess) is ~3 MiB of every idle worker: a worker loads it on the
    # first async actor call or async iteration (test_concurrent_and_async_actors), not at start.
    probe = subprocess.run([sys.executable, "-c", "import sys, shoal.worker; print('asyncio' in sys.modules)"],
                           env=dict(os.environ, PYTHONPATH=PYTHON_DIR), capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"


def test_concurrent_and_async_actors(driver):
    @ray.remote(max_concurrency=4)
    class Gate:
        def __init__(self):
            self.inside = 0
            self.peak = 0
            self.lock = threading.Lock()

        def enter(self):
            with self.lock:
                self.inside += 1
                self.peak = max(self.peak, self.inside)
            time.sleep(0.3)
            with self.lock:
                self.inside -= 1
            return True

        def peak_seen(self):
            return self.peak

    g = Gate.remote()
    ray.get([g.enter.remote() for _ in range(8)])
    assert ray.get(g.peak_seen.remote()) > 1

    @ray.remote
    class AsyncActor:
        async def double(self, x):
            import asyncio
            await asyncio.sleep(0.01)
            return 2 * x

    a = AsyncActor.remote()
    assert ray.get([a.double.remote(i) for i in range(10)]) == [2 * i for i in range(10)]


def test_create_kill_cycles_leave_resources_free(driver):
    @ray.remote(num_cpus=1, num_gpus=0.5, resources={"A": 1})
    class Holder:
        def ping(self):
            return 1

    # 200 cycles (each a Python worker process): enough for a leak of a CPU, a GPU share or a
    # custom unit per cycle to show; the C++ test runs 1,000 (test_cpp_actors.py).
    for _ in range(200):
        h = Holder.remote()
        assert ray.get(h.ping.remote(), timeout=60) == 1
        ray.kill(h)
    wait_until(lambda: ray.available_resources().get("CPU") == 6.0 and ray.available_resources().get("GPU") == 3.0,
               30, what="every CPU and GPU to be free again")


def test_default_actor_holds_no_resources(driver):
    before = ray.available_resources().get("CPU")
    actors = [Counter.remote() for _ in range(8)]  # more than the 6 CPUs: none are held
    assert ray.get([a.incr.remote() for a in actors], timeout=60) == [1] * 8
    assert ray.available_resources().get("CPU") == before
    for a in actors:
        ray.kill(a)


def test_actor_and_task_rpcs_refuse_bad_input_and_keep_serving(driver, gcs_stubs):
    import grpc
    pb, pb_grpc, _ = gcs_stubs
    import shoalpb.worker_pb2 as worker_pb2
    import shoalpb.worker_pb2_grpc as worker_pb2_grpc
    channel = driver.channel()
    actors = pb_grpc.ActorServiceStub(channel)
    tasks = pb_grpc.TaskEventServiceStub(channel)

    def code(call):
        with pytest.raises(grpc.RpcError) as info:
            call()
        return info.value.code()

    unknown = b"\x01" * 16
    assert code(lambda: actors.GetActorInfo(pb.GetActorInfoRequest(actor_id=unknown), timeout=10)) == \
        grpc.StatusCode.NOT_FOUND
    assert code(lambda: actors.GetActorInfo(pb.GetActorInfoRequest(actor_id=b"short"), timeout=10)) in \
        (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert code(lambda: actors.KillActor(pb.KillActorRequest(actor_id=b"bad"), timeout=10)) in \
        (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert code(lambda: actors.RegisterActor(pb.RegisterActorRequest(), timeout=10)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: actors.GetNamedActor(pb.GetNamedActorRequest(name="nope"), timeout=10)) == \
        grpc.StatusCode.NOT_FOUND
    # Task events: garbage entries are skipped, limits are clamped.
    tasks.ReportTaskEvents(pb.ReportTaskEventsRequest(events=[pb.TaskEvent(), pb.TaskEvent(name="x" * 1000)],
                                                      dropped=-5), timeout=10)
    assert len(tasks.ListTasks(pb.ListTasksRequest(limit=-3), timeout=10).tasks) <= 100
    assert len(tasks.ListTasks(pb.ListTasksRequest(limit=10**9), timeout=10).tasks) <= 10000

    # An actor's worker refuses a malformed cancel and keeps serving its actor.
    c = Counter.remote()
    assert ray.get(c.incr.remote()) == 1
    worker = [a for a in actors.ListActors(pb.ListActorsRequest(), timeout=10).actors
              if a.actor_id == c._actor_id][0].worker_address
    stub = worker_pb2_grpc.CoreWorkerServiceStub(driver.channel(worker))
    with pytest.raises(grpc.RpcError) as info:
        stub.CancelTask(worker_pb2.CancelTaskRequest(task_id=b"garbage"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reply = stub.CancelTask(worker_pb2.CancelTaskRequest(task_id=b"\x02" * 24), timeout=10)
    assert not reply.running  # not a task it runs: nothing happens
    stub.PrintLogs(worker_pb2.PrintLogsRequest(lines=["stray line"] * 3), timeout=10)
    assert ray.get(c.incr.remote(), timeout=30) == 2
    # And the GCS still answers.
    assert ray.cluster_resources()["CPU"] == 6.0


@ray.remote
class Graceful:
    """Leaves a file for each way it ends: its __ray_shutdown__ hook and an atexit handler."""

    def __init__(self, where, exit_in_constructor=False):
        import atexit
        self.where = where
        atexit.register(lambda: open(os.path.join(where, "atexit"), "w").close())
        if exit_in_constructor:
            ray.actor.exit_actor()
            open(os.path.join(where, "after-exit"), "w").close()  # never runs

    def __ray_shutdown__(self):
        open(os.path.join(self.where, "shutdown"), "w").close()

    def pid(self):
        return os.getpid()

    def exit_but_catch(self):
        try:
            ray.actor.exit_actor()
        except BaseException:  # noqa: BLE001 - the test swallows it on purpose
            pass
        return "swallowed"

    def sleep(self):
        time.sleep(3600)


@ray.remote
class AsyncGraceful:
    def __init__(self, where):
        import atexit
        atexit.register(lambda: open(os.path.join(where, "atexit"), "w").close())

    async def exit_later(self):
        import asyncio

        async def later():
            await asyncio.sleep(0.2)
            ray.actor.exit_actor()

        asyncio.get_running_loop().create_task(later())  # outside any call when it exits
        return "scheduled"

    async def exit_but_catch(self):
        try:
            ray.actor.exit_actor()
        except ray.exceptions.AsyncioActorExit:
            pass
        return "swallowed"


def _ends(tmp_path, name):
    where = tmp_path / name
    where.mkdir()
    return str(where)


def test_actors_end_gracefully_as_in_ray(driver, tmp_path):
    files = lambda d: sorted(os.listdir(d))  # noqa: E731
    # __ray_terminate__, and the last handle going: __ray_shutdown__ then atexit handlers.
    term, dropped, killed = (_ends(tmp_path, n) for n in ("term", "dropped", "killed"))
    a = Graceful.remote(term)
    ray.get(a.pid.remote())
    a.__ray_terminate__.remote()
    b = Graceful.remote(dropped)
    b_pid = ray.get(b.pid.remote())
    del b
    # ray.kill ends it at once: neither runs.
    c = Graceful.remote(killed)
    c_pid = ray.get(c.pid.remote())
    c.sleep.remote()
    ray.kill(c)
    for d in (term, dropped):
        wait_until(lambda: files(d) == ["atexit", "shutdown"], 30, what=f"{d}'s hooks")
    wait_until(lambda: not process_alive(b_pid) and not process_alive(c_pid), 30, what="the actors' workers to exit")
    assert files(killed) == []
    # exit_actor() in the constructor: the actor ends, its atexit handlers run, the rest does not.
    ctor = _ends(tmp_path, "ctor")
    d = Graceful.remote(ctor, exit_in_constructor=True)
    wait_until(lambda: "atexit" in files(ctor), 30, what="the atexit handler of an actor that exited in __init__")
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(d.pid.remote(), timeout=30)
    assert "after-exit" not in files(ctor)
    # exit_actor() whose exception the code catches still ends the actor (sync and async).
    for cls in (Graceful, AsyncGraceful):
        e = cls.remote(_ends(tmp_path, f"caught-{cls.__name__}"))
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(e.exit_but_catch.remote(), timeout=30)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(e.exit_but_catch.remote(), timeout=30)
    # ...and so does one called in an asyncio task of the actor, outside any call.
    nested = _ends(tmp_path, "nested")
    f = AsyncGraceful.remote(nested)
    assert ray.get(f.exit_later.remote()) == "scheduled"
    wait_until(lambda: files(nested) == ["atexit"], 30, what="the async actor to exit from its own task")


@ray.remote
class Holder:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


@ray.remote
class Creator:
    def create_waiting(self):
        never = Forever.remote()
        self.keep = never
        self.held = Holder.remote(never.block.remote())  # an argument that never comes
        return [self.held]

    def pid(self):
        return os.getpid()


@ray.remote
class Forever:
    async def block(self):
        import asyncio
        await asyncio.Event().wait()


def test_actor_creation_does_not_wait_for_its_arguments(driver):
    @ray.remote
    def slow(value):
        time.sleep(2)
        return value

    start = time.monotonic()
    h = Holder.remote(slow.remote(7))
    assert time.monotonic() - start < 1.5  # registered at once, as in Ray
    assert ray.get(h.get.remote(), timeout=60) == 7

    @ray.remote
    def fails():
        raise ValueError("bad argument")

    broken = Holder.remote(fails.remote())
    with pytest.raises(ray.exceptions.RayActorError, match="bad argument"):
        ray.get(broken.get.remote(), timeout=60)
    # Its owner dies before the argument is ready: the actor ends (it would never be created).
    creator = Creator.remote()
    [waiting] = ray.get(creator.create_waiting.remote(), timeout=60)
    os.kill(ray.get(creator.pid.remote()), signal.SIGKILL)
    with pytest.raises(ray.exceptions.RayActorError, match="owner"):
        ray.get(waiting.get.remote(), timeout=60)
