"""Ray's small test helpers (ray._common.test_utils / ray._private.test_utils), re-implemented
on Ray's public API only, for the Shoal measure. Only the helpers that the measured public tests
use are here; internal ones (get_error_message, make_global_state_accessor, ...) are absent."""
import asyncio
import os
import subprocess
import sys
import time

import ray


@ray.remote(num_cpus=0)
class SignalActor:
    def __init__(self):
        self.ready_event = asyncio.Event()
        self.num_waiters = 0

    def send(self, clear: bool = False):
        self.ready_event.set()
        if clear:
            self.ready_event.clear()

    async def wait(self, should_wait: bool = True):
        if should_wait:
            self.num_waiters += 1
            await self.ready_event.wait()
            self.num_waiters -= 1

    async def cur_num_waiters(self) -> int:
        return self.num_waiters


@ray.remote(num_cpus=0)
class Semaphore:
    def __init__(self, value=1):
        self._sema = asyncio.Semaphore(value=value)

    async def acquire(self):
        await self._sema.acquire()

    async def release(self):
        self._sema.release()

    async def locked(self):
        return self._sema.locked()


def client_test_enabled() -> bool:
    return False


def wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100,
                       raise_exceptions=False, **kwargs):
    start = time.time()
    last_ex = None
    while time.time() - start <= timeout:
        try:
            if condition_predictor(**kwargs):
                return
        except Exception as e:
            if raise_exceptions:
                raise
            last_ex = e
        time.sleep(retry_interval_ms / 1000.0)
    message = "The condition wasn't met before the timeout expired."
    if last_ex is not None:
        message += f" Last exception: {last_ex!r}"
    raise RuntimeError(message)


async def async_wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100, **kwargs):
    start = time.time()
    last_ex = None
    while time.time() - start <= timeout:
        try:
            if asyncio.iscoroutinefunction(condition_predictor):
                ok = await condition_predictor(**kwargs)
            else:
                ok = condition_predictor(**kwargs)
            if ok:
                return
        except Exception as e:
            last_ex = e
        await asyncio.sleep(retry_interval_ms / 1000.0)
    raise RuntimeError(f"The condition wasn't met before the timeout expired. Last exception: {last_ex!r}")


def _pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_for_pid_to_exit(pid: int, timeout: float = 20):
    start = time.time()
    while time.time() - start < timeout:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    raise TimeoutError(f"Timed out while waiting for process {pid} to exit.")


def run_string_as_driver(driver_script: str, env=None, encode: str = "utf-8"):
    proc = subprocess.Popen([sys.executable, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    with proc:
        output = proc.communicate(driver_script.encode(encoding=encode), timeout=120)[0]
        if proc.returncode:
            print(output.decode(encoding=encode, errors="replace"))
            raise subprocess.CalledProcessError(proc.returncode, proc.args, output, proc.stderr)
        out = output.decode(encoding=encode, errors="replace")
    return out


def run_string_as_driver_nonblocking(driver_script, env=None):
    script = "; ".join(["import sys", "script = sys.stdin.read()", "sys.stdin.close()",
                        "del sys", 'exec("del script\\n" + script)'])
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(driver_script.encode("ascii"))
    proc.stdin.close()
    return proc


def kill_actor_and_wait_for_failure(actor, timeout=10, retry_interval_ms=100):
    """ray.kill(actor), then wait until a call on it fails with RayActorError (public-API
    version of Ray's helper, which polls the GCS actor table)."""
    ray.kill(actor)
    start = time.time()
    while time.time() - start <= timeout:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=1)
        except ray.exceptions.RayActorError:
            return
        except ray.exceptions.GetTimeoutError:
            pass
        time.sleep(retry_interval_ms / 1000.0)
    raise RuntimeError("It took too much time to kill an actor")


def placement_group_assert_no_leak(pgs_created_by_test):
    for pg in pgs_created_by_test:
        ray.util.remove_placement_group(pg)

    def wait_for_pg_removed():
        for pg_entry in ray.util.placement_group_table().values():
            if pg_entry["state"] != "REMOVED":
                return False
        return True

    wait_for_condition(wait_for_pg_removed)

    cluster_resources = ray.cluster_resources()
    cluster_resources.pop("memory", None)
    cluster_resources.pop("object_store_memory", None)

    def wait_for_resource_recovered():
        for resource, val in ray.available_resources().items():
            if resource in cluster_resources and cluster_resources[resource] != val:
                return False
            if "_group_" in resource:
                return False
        return True

    wait_for_condition(wait_for_resource_recovered)
