"""The Python API end to end: `import shoal` (also as `ray`) against real loopback clusters.

Most tests share one three-node cluster for the module and run their driver in this process:
    head    2 CPUs, no GPU
    node A  2 CPUs, 2 GPUs, custom resource A
    node B  2 CPUs, 1 GPU,  custom resource B
Scripts that must own their process (hello world with a private local cluster, output
forwarding, address="auto") run as subprocesses.
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
from test_object_store import raylets, store_of, tool

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402
import numpy as np  # noqa: E402

import shoal  # noqa: E402
import shoal as ray  # noqa: E402

# Functions defined here travel by value: workers do not import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run_script(code, env, timeout=120):
    env = dict(env)
    env["PYTHONPATH"] = PYTHON_DIR
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir())
    return proc


# ---------------------------------------------------------------------------------------------
# As a Ray user writes it


def test_hello_world_as_ray_user_with_private_cluster(tmp_path):
    env = dict(os.environ, SHOAL_TMPDIR=str(tmp_path))
    for var in ("SHOAL_ADDRESS", "RAY_ADDRESS"):
        env.pop(var, None)
    proc = run_script("""
        import shoal as ray
        ray.init(num_cpus=2)

        @ray.remote
        def hello(name):
            print(f"hello from a task, {name}")
            return f"Hello, {name}!"

        @ray.remote
        def square(x):
            return x * x

        print(ray.get(hello.remote("world")))
        futures = [square.remote(i) for i in range(4)]
        print(ray.get(futures))
        ray.shutdown()
    """, env)
    assert proc.returncode == 0, proc.stderr
    assert "Hello, world!" in proc.stdout
    assert "[0, 1, 4, 9]" in proc.stdout
    # The task's own print reached the driver, prefixed with the function and worker pid.
    assert any(line.startswith("(hello pid=") and line.endswith("hello from a task, world")
               for line in proc.stdout.splitlines()), proc.stdout
    # The private cluster is gone with the driver.
    wait_until(lambda: not any(p.is_dir() for p in tmp_path.iterdir() if p.name.startswith("shoal_")), 30,
               what="the private cluster's root to be removed")


def test_init_auto_finds_cluster_started_here(three_nodes):
    proc = run_script("""
        import shoal
        ctx = shoal.init(address="auto")
        print("nodes", len([n for n in shoal.nodes() if n["Alive"]]))
        print("cpus", shoal.cluster_resources()["CPU"])
        shoal.shutdown()
    """, three_nodes.env)
    assert proc.returncode == 0, proc.stderr
    assert "nodes 3" in proc.stdout
    assert "cpus 6.0" in proc.stdout


def test_init_joins_via_environment_and_rejects_bad_addresses(three_nodes):
    proc = run_script("""
        import shoal
        shoal.init()
        print("joined", shoal.cluster_resources()["CPU"])
        shoal.shutdown()
        for bad in ("ray://x:10001", "no-port", "http://127.0.0.1:8265"):
            try:
                shoal.init(address=bad)
            except ValueError as e:
                print("rejected", bad)
        try:
            shoal.init(address="127.0.0.1:1", num_cpus=2)
        except ValueError as e:
            print("rejected num_cpus")
    """, dict(three_nodes.env, RAY_ADDRESS=three_nodes.address))
    assert proc.returncode == 0, proc.stderr
    assert "joined 6.0" in proc.stdout
    assert proc.stdout.count("rejected") == 4, proc.stdout


def init_with(three_nodes, **env):
    """A driver that calls shoal.init() with `env` added and prints why init refused, if it did."""
    proc = run_script("""
        import shoal
        try:
            shoal.init()
        except ValueError as e:
            print("refused:", e)
    """, dict(three_nodes.env, RAY_ADDRESS=three_nodes.address, **env))
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_python_worker_logs_to_its_session(three_nodes):
    # As a C++ worker does: logs/worker-<id>-<pid>.log in the session (warnings also on stderr).
    proc = run_script("""
        import os, shoal
        shoal.init()

        @shoal.remote
        def log_file():
            logs = os.path.join(os.environ["SHOAL_SESSION_DIR"], "logs")
            mine = [n for n in os.listdir(logs) if n.startswith("worker-") and n.endswith(f"-{os.getpid()}.log")]
            return mine, os.environ["SHOAL_WORKER_ID"][:8]

        print(shoal.get(log_file.remote(), timeout=60))
    """, dict(three_nodes.env, RAY_ADDRESS=three_nodes.address))
    assert proc.returncode == 0, proc.stderr
    files, worker = eval(proc.stdout.strip().splitlines()[-1])
    assert len(files) == 1 and files[0].startswith(f"worker-{worker}-"), files


def test_an_unknown_push_transport_is_refused_by_name(three_nodes):
    # SHOAL_PUSH_STREAMS picks how task pushes travel (a benchmark switch): any value it does not
    # know is refused when the driver starts, naming it, instead of being ignored.
    proc = init_with(three_nodes, SHOAL_PUSH_STREAMS="sockets")
    assert "refused: SHOAL_PUSH_STREAMS must be 'direct', 'grpc' or '0', got 'sockets'" in proc.stdout, proc.stdout
    for mode in ("grpc", "0", "direct"):
        proc = run_script("""
            import shoal
            shoal.init()
            print(sum(shoal.get([shoal.remote(lambda x: x + 1).remote(i) for i in range(10)])))
        """, dict(three_nodes.env, RAY_ADDRESS=three_nodes.address, SHOAL_PUSH_STREAMS=mode))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == "55", (mode, proc.stdout)


def test_the_spin_budget_is_refused_by_name_when_bad_and_calls_are_right_at_any_budget(three_nodes):
    # SHOAL_SPIN_WAIT_US bounds how long a sync call's waits spin before they sleep
    # (src/common/spin.h): a value out of range is refused when the driver starts, naming it; with
    # the driver's waits at 0 (never spin), the default and the largest budget, sync tasks and
    # actor calls answer right. (The workers here keep their nodes' budget, the default; a node
    # started with 0 is test_node_cli's.)
    proc = init_with(three_nodes, SHOAL_SPIN_WAIT_US="20000")
    assert "refused: SHOAL_SPIN_WAIT_US must be a whole number of microseconds from 0 to 10000" in proc.stdout, \
        proc.stdout
    assert "got '20000'" in proc.stdout, proc.stdout
    for budget in ("0", "", "10000"):
        proc = run_script("""
            import shoal

            @shoal.remote
            class Counter:
                def __init__(self):
                    self.n = 0

                def add(self, k):
                    self.n += k
                    return self.n

            shoal.init()
            inc = shoal.remote(lambda x: x + 1)
            c = Counter.remote()
            tasks = sum(shoal.get(inc.remote(i)) for i in range(200))
            calls = [shoal.get(c.add.remote(1)) for _ in range(300)]
            print(tasks, calls == list(range(1, 301)))
        """, dict(three_nodes.env, RAY_ADDRESS=three_nodes.address, SHOAL_SPIN_WAIT_US=budget))
        assert proc.returncode == 0, (budget, proc.stderr)
        assert proc.stdout.strip().splitlines()[-1] == "20100 True", (budget, proc.stdout)


# ---------------------------------------------------------------------------------------------
# Tasks


def test_many_tasks_and_options(driver):
    @ray.remote
    def add(a, b=0, *, c=0):
        return a + b + c

    refs = [add.remote(i, b=1, c=2) for i in range(3000)]
    assert ray.get(refs) == [i + 3 for i in range(3000)]
    assert ray.get(add.options(num_cpus=0.5, max_retries=0).remote(1, 2)) == 3

    @ray.remote(num_returns=3)
    def three():
        return 1, "two", [3]

    a, b, c = three.remote()
    assert ray.get([a, b, c]) == [1, "two", [3]]
    @ray.remote
    def pair(t):
        return t

    x, y = pair.options(num_returns=2).remote((5, 6))
    assert ray.get(x) == 5 and ray.get(y) == 6


def test_nested_tasks(driver):
    @ray.remote
    def leaf(x):
        return x + 1

    @ray.remote
    def middle(x):
        return sum(ray.get([leaf.remote(x), leaf.remote(x + 10)]))

    @ray.remote
    def top(depth):
        if depth == 0:
            return ray.get(middle.remote(1))
        return ray.get(top.remote(depth - 1)) + 1

    # Deeper than the 6 CPUs of the cluster: blocked workers lend their CPUs.
    assert ray.get(top.remote(8), timeout=120) == (2 + 12) + 8


def test_refs_as_arguments_across_nodes(driver):
    @ray.remote(resources={"A": 1})
    def make(n):
        return np.arange(n, dtype=np.int64), ray.get_runtime_context().get_node_id()

    @ray.remote(resources={"B": 1})
    def consume(pair, nested):
        arr, made_on = pair
        inner = ray.get(nested["ref"])  # a ref inside a data structure stays a ref
        return int(arr.sum()) + inner, made_on, ray.get_runtime_context().get_node_id()

    big = make.remote(1_000_000)  # 8 MB: travels through the stores
    small = ray.put(5)
    total, made_on, ran_on = ray.get(consume.remote(big, {"ref": small}))
    assert total == sum(range(1_000_000)) + 5
    assert made_on != ran_on


def test_refs_in_results_and_puts(driver):
    @ray.remote
    def inner():
        return "inner value"

    @ray.remote
    def outer():
        return {"ref": inner.remote()}

    result = ray.get(outer.remote())
    assert ray.get(result["ref"]) == "inner value"
    holder = ray.put([ray.put("a"), ray.put("b")])
    assert [ray.get(r) for r in ray.get(holder)] == ["a", "b"]


def test_large_numpy_array_is_shared_not_copied(driver):
    array = np.random.default_rng(1).random(100 * 1024 * 1024 // 8)  # 100 MB
    ref = ray.put(array)
    local = ray.get(ref)
    assert not local.flags.writeable
    assert np.array_equal(local, array)

    @ray.remote(num_cpus=0.5)
    def inspect_array(arr):
        address = arr.__array_interface__["data"][0]
        mapping = ""
        with open("/proc/self/maps") as f:
            for line in f:
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                if lo <= address < hi:
                    mapping = line.strip()
                    break
        return float(arr.sum()), arr.flags.writeable, mapping, os.getpid()

    results = ray.get([inspect_array.remote(ref) for _ in range(8)])
    expected = float(array.sum())
    for total, writeable, mapping, _ in results:
        assert total == expected
        assert not writeable
        assert "shoal-object-store" in mapping, mapping  # the store's shared memory, not a copy
    assert "shoal-object-store" in _mapping_of(local)


def _mapping_of(arr):
    address = arr.__array_interface__["data"][0]
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= address < hi:
                return line
    return ""


def test_fractional_gpus(driver, tmp_path):
    barrier = str(tmp_path)

    @ray.remote(num_gpus=0.5, num_cpus=0, resources={"A": 1})
    def gpu_task(i):
        open(os.path.join(barrier, f"started-{i}"), "w").close()
        deadline = time.time() + 60
        while len(os.listdir(barrier)) < 4 and time.time() < deadline:
            time.sleep(0.02)
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    results = ray.get([gpu_task.remote(i) for i in range(4)], timeout=90)
    per_device = {}
    for ids, visible in results:
        assert len(ids) == 1
        assert visible == str(ids[0])
        per_device[ids[0]] = per_device.get(ids[0], 0) + 1
    assert per_device == {0: 2, 1: 2}  # two halves on each of node A's two GPUs
    assert ray.get_gpu_ids() == []  # the driver holds none


def test_runtime_context_and_cluster_info(driver):
    ctx = ray.get_runtime_context()
    assert ctx.get_task_id() is None

    @ray.remote
    def where():
        c = ray.get_runtime_context()
        return c.get_job_id(), c.get_node_id(), c.get_task_id()

    job, node, task = ray.get(where.remote())
    assert job == ctx.get_job_id()
    assert len(task) > 0
    nodes = ray.nodes()
    assert node in {n["NodeID"] for n in nodes}
    assert sum(1 for n in nodes if n["Alive"]) == 3
    assert ray.cluster_resources()["GPU"] == 3.0
    assert ray.cluster_resources()["A"] == 100.0
    assert ray.is_initialized()


def test_threads_a_task_starts_see_its_task_id_where_it_runs_alone(driver):
    # As in Ray: a thread the user starts inside a task, or inside a method of an actor that runs
    # one call at a time, belongs to that task; in a threaded actor it belongs to none.
    def ids_from_a_thread():
        seen = []
        thread = threading.Thread(target=lambda: seen.append(ray.get_runtime_context().get_task_id()))
        thread.start()
        thread.join()
        return ray.get_runtime_context().get_task_id(), seen[0]

    @ray.remote
    def task():
        return ids_from_a_thread()

    @ray.remote
    class Actor:
        def call(self):
            return ids_from_a_thread()

    ref = task.remote()
    assert ray.get(ref) == (ref.task_id().hex(), ref.task_id().hex())

    alone = Actor.remote()
    refs = [alone.call.remote() for _ in range(5)]
    assert ray.get(refs) == [(r.task_id().hex(), r.task_id().hex()) for r in refs]

    threaded = Actor.options(max_concurrency=3).remote()
    refs = [threaded.call.remote() for _ in range(5)]
    assert ray.get(refs) == [(r.task_id().hex(), None) for r in refs]
    ray.kill(alone)
    ray.kill(threaded)


def test_a_function_or_actor_capturing_too_much_is_refused_by_name(driver):
    big = np.zeros(5 * 2**20)  # 40 MiB, over the GCS's 32 MiB limit for one exported function

    @ray.remote
    def f():
        return len(big)

    @ray.remote
    class Holder:
        def size(self):
            return len(big)

    with pytest.raises(ValueError, match=r"The remote function .*f is too large"):
        f.remote()
    with pytest.raises(ValueError, match=r"The actor Holder is too large"):
        Holder.remote()
    assert ray.get(ray.put(1)) == 1  # the driver goes on


def test_put_get_wait_and_timeouts(driver):
    values = [None, 1, "s", b"b" * 200_000, {"k": [1, 2]}, np.zeros((3, 3))]
    for v in values:
        got = ray.get(ray.put(v))
        if isinstance(v, np.ndarray):
            assert np.array_equal(got, v)
        else:
            assert got == v

    @ray.remote
    def sleepy(t):
        time.sleep(t)
        return t

    slow = sleepy.remote(30)
    fast = [sleepy.remote(0) for _ in range(3)]
    ready, not_ready = ray.wait(fast + [slow], num_returns=3, timeout=20)
    assert set(ready) == set(fast) and not_ready == [slow]
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(slow, timeout=0.2)
    with pytest.raises(TimeoutError):  # GetTimeoutError is also a TimeoutError
        ray.get([slow], timeout=0)
    ray.cancel(slow, force=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(slow, timeout=30)


def test_wait_answers_in_list_order_and_checks_its_input(driver):
    # As Ray: the first num_returns ready refs in the list's order; the rest keep theirs.
    refs = [ray.put(i) for i in range(6)]

    @ray.remote
    def never():
        time.sleep(600)

    slow = never.remote()
    mixed = refs[:2] + [slow] + refs[2:]
    ready, rest = ray.wait(mixed, num_returns=3, timeout=10)
    assert ready == refs[:3] and rest == [slow] + refs[3:]
    ready, rest = ray.wait(tuple(mixed), num_returns=6, timeout=10)
    assert ready == refs and rest == [slow]
    ready, rest = ray.wait([slow], timeout=0)
    assert ready == [] and rest == [slow]
    with pytest.raises(ValueError, match="unique"):
        ray.wait([refs[0], refs[1], refs[0]])
    with pytest.raises(TypeError):
        ray.wait([refs[0], 3])
    with pytest.raises(ValueError):
        ray.wait(refs, num_returns=7)
    with pytest.raises(ValueError):
        ray.wait(refs, num_returns=0)
    assert ray.wait([]) == ([], [])
    ray.cancel(slow, force=True)


def test_cancel_breaks_a_blocking_sleep(driver, tmp_path):
    """As Ray's KeyboardInterrupt: a cancel reaches a task blocked in one long sleep, not only
    one that runs Python code (the worker signals its main thread)."""
    started = tmp_path / "started"

    @ray.remote(max_retries=0)
    def sleeper():
        started.write_text(str(os.getpid()))
        time.sleep(600)
        return "slept"

    ref = sleeper.remote()
    wait_until(started.exists, 30, what="the task to start")
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=60)
    assert process_alive(int(started.read_text()))


def test_cancel_reaches_a_task_blocked_in_get(driver, tmp_path):
    """As Ray: a cancel without force interrupts a task waiting in ray.get (the worker's signal
    handler runs while the get waits), and the worker lives on."""
    started = tmp_path / "started"

    @ray.remote(num_cpus=0)
    class Gate:
        def __init__(self):
            import asyncio
            self.open = asyncio.Event()

        async def wait(self):
            await self.open.wait()

        def release(self):
            self.open.set()

    @ray.remote(max_retries=0)
    def waiter(gate):
        started.write_text(str(os.getpid()))
        ray.get(gate.wait.remote())
        return "released"

    gate = Gate.remote()
    ref = waiter.remote(gate)
    wait_until(started.exists, 30, what="the task to start")
    time.sleep(0.3)  # into its get
    ray.cancel(ref, recursive=False)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=60)
    assert process_alive(int(started.read_text()))
    ray.get(gate.release.remote(), timeout=30)
    ray.kill(gate)


def test_ctrl_c_interrupts_a_drivers_get(three_nodes, tmp_path):
    """Ctrl-C (SIGINT) stops a driver blocked in ray.get with KeyboardInterrupt, as in Ray; the
    driver goes on (here: it says so and exits cleanly)."""
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(f"""
        import shoal as ray
        ray.init(address="{three_nodes.address}")

        @ray.remote(num_cpus=0)
        class Never:
            async def wait(self):
                import asyncio
                await asyncio.Event().wait()

        never = Never.remote()
        ray.get(never.__ray_ready__.remote())
        print("waiting", flush=True)
        try:
            ray.get(never.wait.remote())
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        ray.kill(never)
        ray.shutdown()
    """))
    env = dict(three_nodes.env, PYTHONPATH=PYTHON_DIR)
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "waiting", proc.stderr.read()[-3000:]
        time.sleep(0.5)  # into the get
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert "interrupted" in out, (out, err[-3000:])


def test_cancel_running_task_interrupts_it(driver, tmp_path):
    started, interrupted = tmp_path / "started", tmp_path / "interrupted"

    @ray.remote(max_retries=0)
    def spin():
        started.write_text(str(os.getpid()))
        try:
            while True:
                time.sleep(0.01)
        except BaseException as e:
            interrupted.write_text(type(e).__name__)
            raise

    ref = spin.remote()
    wait_until(started.exists, 30, what="the task to start")
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    # The running task itself was interrupted (not merely dropped from a queue), and a
    # non-force cancel leaves its worker alive.
    wait_until(interrupted.exists, 30, what="the task to see the interrupt")
    assert interrupted.read_text() == "TaskCancelledError"
    assert process_alive(int(started.read_text()))

    @ray.remote
    def quick():
        return "still works"

    assert ray.get(quick.remote(), timeout=30) == "still works"


# ---------------------------------------------------------------------------------------------
# Failures


class CustomError(Exception):
    pass


def test_exceptions_carry_type_and_traceback(driver):
    @ray.remote
    def fails(x):
        def deeper():
            raise CustomError(f"bad value {x}")
        deeper()

    with pytest.raises(CustomError) as info:
        ray.get(fails.remote(7))
    err = info.value
    assert isinstance(err, ray.exceptions.RayTaskError)
    assert "bad value 7" in str(err)
    assert "in deeper" in str(err) and "Traceback" in str(err)

    @ray.remote
    def zero():
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        ray.get(zero.remote())

    # An error flows through dependent tasks without running them.
    @ray.remote
    def never(x):
        return x

    with pytest.raises(CustomError):
        ray.get(never.remote(fails.remote(1)))


def test_unpicklable_exception_still_reported(driver):
    @ray.remote
    def raises_unpicklable():
        class Local(Exception):
            def __reduce__(self):
                raise TypeError("no pickling")
        raise Local("local failure")

    with pytest.raises(ray.exceptions.TaskError) as info:
        ray.get(raises_unpicklable.remote())
    assert "local failure" in str(info.value)


def test_worker_killed_mid_task_is_retried(driver, tmp_path):
    marker = str(tmp_path / "pids")

    @ray.remote(max_retries=2)
    def fragile():
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        with open(marker) as f:
            attempts = len(f.read().split())
        if attempts == 1:
            time.sleep(120)  # killed here
        return attempts

    ref = fragile.remote()
    wait_until(lambda: os.path.exists(marker), 30, what="the task to start")
    with open(marker) as f:
        pid = int(f.read().split()[0])
    os.kill(pid, signal.SIGKILL)
    assert ray.get(ref, timeout=60) == 2

    @ray.remote(max_retries=0)
    def doomed(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)

    path = str(tmp_path / "doomed")
    ref = doomed.remote(path)
    wait_until(lambda: os.path.exists(path) and open(path).read(), 30, what="the task to start")
    os.kill(int(open(path).read()), signal.SIGKILL)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(ref, timeout=60)


def test_bad_input_gives_clear_errors(driver):
    @ray.remote
    def f(x):
        return x

    with pytest.raises(TypeError, match="could not serialize"):
        f.remote(threading.Lock())
    with pytest.raises(ValueError):
        f.options(num_gpus=-1).remote(1)
    with pytest.raises(ValueError, match="whole number"):
        f.options(num_gpus=1.5).remote(1)
    with pytest.raises(ValueError, match="num_cpus"):
        f.options(resources={"CPU": 2}).remote(1)
    with pytest.raises(TypeError):
        f.options(num_cpus="two").remote(1)
    with pytest.raises(ValueError, match="Invalid option"):
        f.options(num_cpu=1).remote(1)
    with pytest.raises(TypeError, match="cannot be called directly"):
        f(1)

    def plain(x):
        return x

    with pytest.raises(AttributeError):
        plain.remote(1)
    with pytest.raises(TypeError):
        ray.get("not a ref")
    with pytest.raises(TypeError):
        ray.put(ray.put(1))
    with pytest.raises(ValueError):
        ray.wait([ray.put(1)], num_returns=2)
    # The driver and the cluster are fine afterwards.
    assert ray.get(f.remote(5)) == 5


def test_infeasible_task_times_out_and_shows_as_demand(driver):
    @ray.remote(num_gpus=4)
    def too_big():
        return 1

    ref = too_big.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=1)
    wait_until(lambda: any(d.get("infeasible") for d in driver.status().get("demands", [])), 20,
               what="the 4-GPU request to show as infeasible demand")
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)


def test_resources_return_after_work(driver):
    @ray.remote(num_gpus=0.5)
    def g():
        return 1

    ray.get([g.remote() for _ in range(6)])
    wait_until(lambda: ray.available_resources().get("CPU") == 6.0 and ray.available_resources().get("GPU") == 3.0,
               30, what="every CPU and GPU to be free again")


def test_runtime_env_env_vars_and_working_dir(driver, tmp_path):
    (tmp_path / "helper_mod.py").write_text("VALUE = 'imported from the working dir'\n")

    @ray.remote(runtime_env={"env_vars": {"SHOAL_TEST_VAR": "set"}, "working_dir": str(tmp_path)})
    def probe():
        import helper_mod
        return os.environ.get("SHOAL_TEST_VAR"), os.getcwd(), helper_mod.VALUE

    var, cwd, value = ray.get(probe.remote(), timeout=60)
    assert var == "set"
    # The node's unpacked copy of the uploaded working_dir (tests/integration/test_runtime_env.py).
    assert "/runtime_resources/packages/_shoal_pkg_" in cwd
    assert os.path.exists(os.path.join(cwd, "helper_mod.py"))
    assert value == "imported from the working dir"

    @ray.remote
    def plain():
        return os.environ.get("SHOAL_TEST_VAR")

    assert ray.get(plain.remote()) is None  # workers of other environments are not shared
    assert ray.get(plain.options(runtime_env={"env_vars": {"SHOAL_TEST_VAR": "other"}}).remote()) == "other"
    with pytest.raises(ValueError, match="not supported"):
        plain.options(runtime_env={"conda": "myenv"}).remote()
    with pytest.raises(ValueError, match="working_dir"):
        plain.options(runtime_env={"working_dir": str(tmp_path / "missing")}).remote()


def test_init_runtime_env_reaches_every_worker(three_nodes):
    proc = run_script("""
        import os
        import shoal
        shoal.init(address="auto", runtime_env={"env_vars": {"FROM_INIT": "yes"}})

        @shoal.remote
        def read():
            return os.environ.get("FROM_INIT")

        print("seen", shoal.get([read.remote() for _ in range(4)]))
        shoal.shutdown()
    """, three_nodes.env)
    assert proc.returncode == 0, proc.stderr
    assert "seen ['yes', 'yes', 'yes', 'yes']" in proc.stdout


def test_cancel_is_recursive_by_default_and_not_when_told(driver, tmp_path):
    """As Ray: cancelling a task cancels the tasks it submitted that still run (recursive=True
    by default); with recursive=False they run on."""

    @ray.remote(max_retries=0)
    def child(marker, gate):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        try:
            while not os.path.exists(gate):
                time.sleep(0.01)
        except BaseException as e:
            with open(marker + ".cancelled", "w") as f:
                f.write(type(e).__name__)
            raise
        return "child done"

    @ray.remote(max_retries=0)
    def parent(marker, gate):
        return ray.get(child.remote(marker, gate))

    for recursive in (True, False):
        marker, gate = str(tmp_path / f"child-{recursive}"), str(tmp_path / f"gate-{recursive}")
        ref = parent.remote(marker, gate)
        wait_until(lambda: os.path.exists(marker) and open(marker).read(), 30, what="the child to start")
        ray.cancel(ref, recursive=recursive)
        if recursive:
            # Written in two steps (open, write): wait for its text.
            wait_until(lambda: os.path.exists(marker + ".cancelled") and open(marker + ".cancelled").read(), 30,
                       what="the child to be cancelled")
            assert open(marker + ".cancelled").read() == "TaskCancelledError"
        else:
            # The parent is interrupted in its get; the child runs on until the gate opens.
            time.sleep(1.0)  # bounded look: nothing reaches the child meanwhile
            assert not os.path.exists(marker + ".cancelled")
            open(gate, "w").close()
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref, timeout=60)
        if not recursive:
            assert not os.path.exists(marker + ".cancelled")
    with pytest.raises(TypeError, match="bools"):
        ray.cancel(ref, recursive="yes")


def test_wait_fetch_local_copies_ready_values_to_this_node(driver):
    """As Ray: wait(fetch_local=True), the default, counts a value held on another node as ready
    once it is copied to this node's store; fetch_local=False does not copy it."""

    @ray.remote(resources={"B": 1})
    def big(seed):
        return bytes([seed]) * (2 * 1024 * 1024)

    head_store = store_of(raylets(driver)[0])  # the driver's node

    def here(ref):
        return "error" not in tool("get", "--socket", head_store, "--id", ref.hex(), check=False)

    ref = big.remote(7)
    ready, _ = ray.wait([ref], fetch_local=False, timeout=60)
    assert ready == [ref]
    assert not here(ref)
    ready, _ = ray.wait([ref], timeout=60)
    assert ready == [ref]
    assert here(ref)
    assert ray.get(ref)[:1] == bytes([7])
    with pytest.raises(TypeError, match="fetch_local"):
        ray.wait([ref], fetch_local="yes")


def test_calls_are_checked_against_the_signature_at_remote(driver):
    @ray.remote
    def f(x, y=0, *, z=1):
        return x + y + z

    for bad, match in ((lambda: f.remote(), "missing a required argument: 'x'"),
                       (lambda: f.remote(1, 2, 3), "too many positional"),
                       (lambda: f.remote(1, w=0), "unexpected keyword argument 'w'"),
                       (lambda: f.options(num_cpus=0).remote(), "missing")):
        with pytest.raises(TypeError, match=match):
            bad()
    assert ray.get(f.remote(1, z=5)) == 6

    @ray.remote
    class Actor:
        def __init__(self, start):
            self.start = start

        def add(self, value, *, twice=False):
            return self.start + value * (2 if twice else 1)

        @staticmethod
        def plain(x):
            return x

        @classmethod
        def named(cls, y):
            return cls.__name__ + y

    with pytest.raises(TypeError, match="Actor.remote\\(\\): missing a required argument: 'start'"):
        Actor.remote()
    a = Actor.remote(10)
    with pytest.raises(TypeError, match="Actor.add.remote\\(\\): too many positional"):
        a.add.remote(1, 2)
    with pytest.raises(TypeError, match="missing a required argument: 'x'"):
        a.plain.remote()
    assert ray.get([a.add.remote(1, twice=True), a.plain.remote(3), a.named.remote("!")]) == [12, 3, "Actor!"]
    # A handle got by name checks calls too (the signatures travel with it).
    named = Actor.options(name="checked-signatures").remote(1)
    again = ray.get_actor("checked-signatures")
    with pytest.raises(TypeError, match="unexpected keyword argument 'thrice'"):
        again.add.remote(1, thrice=True)
    # Ray's dir() of actor classes and handles, no subclassing of actor classes, kill of a non-actor.
    assert [n for n in dir(Actor) if not n.startswith("_")] == ["add", "named", "options", "plain", "remote"]
    assert dir(a) == ["__init__", "__ray_terminate__", "add", "named", "plain"]
    with pytest.raises(TypeError, match="Inheriting from actor classes is not currently supported"):
        class Derived(Actor):
            pass
    with pytest.raises(ValueError, match="only supported for actors"):
        ray.kill("not an actor handle")
    ray.kill(named)


def test_omp_num_threads_follows_the_task_cpus_unless_set(driver):
    @ray.remote
    def omp():
        return os.environ.get("OMP_NUM_THREADS")

    @ray.remote
    class Holder:
        def omp(self):
            return os.environ.get("OMP_NUM_THREADS")

    assert ray.get(omp.options(num_cpus=2).remote()) == "2"
    assert ray.get([omp.remote(), omp.options(num_cpus=0.25).remote()]) == ["1", "1"]
    assert ray.get(omp.options(runtime_env={"env_vars": {"OMP_NUM_THREADS": "3"}}).remote()) == "3"
    holders = [Holder.remote(), Holder.options(num_cpus=2).remote()]
    assert ray.get([h.omp.remote() for h in holders]) == ["1", "2"]
    for h in holders:
        ray.kill(h)


def test_gpu_work_gets_its_own_workers(driver):
    @ray.remote(resources={"A": 1})
    def cpu():
        return os.getpid()

    @ray.remote(resources={"A": 1}, num_gpus=1)
    def gpu():
        return os.getpid()

    cpu_pids = set(ray.get([cpu.remote() for _ in range(4)]))
    gpu_pids = set(ray.get([gpu.remote() for _ in range(4)]))
    assert not cpu_pids & gpu_pids, (cpu_pids, gpu_pids)  # as Ray: GPU workers serve only GPU work
    assert not set(ray.get([cpu.remote() for _ in range(4)])) & gpu_pids


def test_cancel_of_a_task_waiting_for_its_arguments_fails_it_at_once(driver):
    @ray.remote
    def forever():
        while True:
            time.sleep(1000)

    @ray.remote
    def square(x):
        return x * x

    blocker = forever.remote()
    for force in (False, True):
        waiting = square.remote(blocker)
        ray.cancel(waiting, force=force)
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(waiting, timeout=30)
    ray.cancel(blocker, force=True)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        ray.get(blocker, timeout=30)


def test_cancel_of_a_borrowed_ref_is_forwarded_to_its_owner(driver):
    @ray.remote
    def forever():
        while True:
            time.sleep(1000)

    @ray.remote
    def start_inner():
        return [forever.remote()]  # this task owns the inner task; the driver borrows its ref

    for force in (False, True):
        inner = ray.get(start_inner.remote())[0]
        with pytest.raises(ray.exceptions.GetTimeoutError):
            ray.get(inner, timeout=1)
        ray.cancel(inner, force=force)
        with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
            ray.get(inner, timeout=30)


def test_get_of_several_raises_the_first_error_without_waiting_for_the_rest(driver):
    @ray.remote
    def fails():
        raise ValueError("boom")

    @ray.remote
    def never():
        time.sleep(3600)

    slow = never.remote()
    start = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        ray.get([slow, fails.remote()], timeout=120)
    assert time.monotonic() - start < 60  # well before the timeout: the error ended the wait
    ray.cancel(slow, force=True)


def test_a_failure_through_nested_gets_keeps_the_root_cause_type(driver):
    @ray.remote
    def inner():
        return 1 / 0

    @ray.remote
    def outer():
        return ray.get(inner.remote())

    with pytest.raises(ZeroDivisionError) as info:
        ray.get(outer.remote())
    assert isinstance(info.value, ray.exceptions.TaskError)
    assert "outer() failed" in str(info.value) and "ZeroDivisionError" in str(info.value)


def test_workers_live_in_their_jobs_namespace(three_nodes):
    code = f"""
        import shoal as ray
        ray.init(address="{three_nodes.address}", namespace="team-x")

        @ray.remote
        class Named:
            def hello(self):
                return "hello"

        @ray.remote
        class Finder:
            def find(self, name):
                return ray.get_runtime_context().namespace, ray.get(ray.get_actor(name).hello.remote())

        @ray.remote
        def namespace():
            return ray.get_runtime_context().namespace

        keep = Named.options(name="in-team-x").remote()
        print(ray.get(Finder.remote().find.remote("in-team-x")), ray.get(namespace.remote()))
    """
    proc = run_script(code, three_nodes.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "('team-x', 'hello') team-x" in proc.stdout, proc.stdout

