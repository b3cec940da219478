"""A Python worker: `python -m shoal.worker`, started by a raylet for Python tasks.

It creates its core worker from the SHOAL_* environment the raylet set, then serves pushed
tasks one at a time on the main thread: loads the task's function (cloudpickled in the GCS KV,
cached per process), unpacks the arguments (numpy arrays from the store are zero-copy,
read-only views), runs it, and answers the serialized results or the exception with its
traceback.

Output: while a task runs, lines written to sys.stdout / sys.stderr go to the task's owner
(the driver, or the worker that submitted it), prefixed "(name pid=N)", batched every 100 ms and
flushed before the task's reply. Output outside tasks goes to this worker's log file.
"""
import atexit
import concurrent.futures
import contextvars
import ctypes
import functools
import importlib
import importlib.util
import inspect
import os
import signal
import struct
import sys
import threading
import time
import traceback

from shoal import exceptions
from shoal._private import runtime
from shoal._private import serialization
from shoal._private import tensor_transport
from shoal._private.generator import _DynamicItems
from shoal.actor import BUILTIN_METHODS, ActorExit, is_async_class


class _OnFirstUse:
    """A module imported when one of its names is first read. asyncio (with the ssl and
    subprocess modules it loads) adds ~4 MiB to every worker, and only async actors and async
    generators use it: a node of idle sync actors' workers should not pay for it."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


asyncio = _OnFirstUse("asyncio")

# GPU memory cap variables the core exports per task (src/common/gpu_memory_caps.h).
_CAP_VARIABLES = ("SHOAL_GPU_MEMORY_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT",
                  "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE")
_libc_getenv = ctypes.CDLL(None).getenv
_libc_getenv.restype = ctypes.c_char_p
_libc_getenv.argtypes = [ctypes.c_char_p]


def _c_getenv(name):
    """The C environment's value (setenv in the core does not reach os.environ)."""
    value = _libc_getenv(name.encode())
    return value.decode() if value is not None else None


def _set_env(name, value):
    """os.environ[name] = value, safe against the core's threads reading the environment: a new
    name goes in through the core (src/common/environment.h), where glibc's putenv would move the
    array under them; os.environ then replaces it in place."""
    if name not in os.environ:
        runtime._core.set_env(name, value)
    os.environ[name] = value

_FLUSH_PERIOD = 0.1


_PID = os.getpid()  # refreshed in a child a task forks


def _refresh_pid():
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


class _OutputForwarder:
    """Collects complete lines of the running task's output and sends them to its owner."""

    def __init__(self, core):
        self._core = core
        self._lock = threading.Lock()
        self._pending = {}  # (owner, is_stderr) -> lines
        # (owner, prefix) of the task the calling code runs: per thread, and per asyncio task of
        # an async actor's event loop (each asyncio task runs in its own copy of the context).
        self._task = contextvars.ContextVar("shoal_output_task", default=None)
        self._send_lock = threading.Lock()
        # Set when lines are queued: the thread sleeps until then (an idle worker's thread never
        # wakes, and hundreds of idle actors cost no CPU), then sends what one period gathered.
        self._queued = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shoal-output", daemon=True)
        self._thread.start()

    def begin_task(self, owner, name):
        self._task.set(self.task_output(owner, name))

    @staticmethod
    def task_output(owner, name):
        """Where a task's output goes and its prefix: what begin_task sets (or adopt takes)."""
        return (owner, f"({name} pid={_PID}) ")

    def current(self):
        """What begin_task set here: hand it to the code that runs the task elsewhere (adopt)."""
        return self._task.get()

    def adopt(self, task):
        self._task.set(task)

    def end_task(self):
        self.flush()
        self._task.set(None)

    def add(self, lines, is_stderr, raw=False):
        """Queues lines for the running task's owner; answers False when this thread runs no
        task (the caller writes them itself)."""
        task = self._task.get()
        if task is None:
            return False
        owner, task_prefix = task
        prefix = "" if raw else task_prefix
        with self._lock:
            self._pending.setdefault((owner, is_stderr), []).extend(prefix + line for line in lines)
        self._queued.set()
        return True

    def flush(self):
        with self._send_lock:
            with self._lock:
                batches, self._pending = self._pending, {}
            for (owner, is_stderr), lines in batches.items():
                try:
                    self._core.send_logs(owner, lines, is_stderr)
                except Exception:  # noqa: BLE001 - the owner went away: drop the output
                    pass

    def _loop(self):
        while True:
            self._queued.wait()
            time.sleep(_FLUSH_PERIOD)
            self._queued.clear()  # lines queued from now on set it again: the next round sends them
            self.flush()


class _TaskStream:
    """sys.stdout / sys.stderr of a worker: whole lines go to the forwarder during tasks."""

    def __init__(self, forwarder, original, is_stderr):
        self._forwarder = forwarder
        self._original = original
        self._is_stderr = is_stderr
        self._partial = ""
        self._lock = threading.Lock()
        self._wrote_original = False  # since the last flush

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            text = self._partial + text
            lines = text.split("\n")
            self._partial = lines.pop()
        if lines and not self._forwarder.add(lines, self._is_stderr):
            self._original.write("\n".join(lines) + "\n")
            self._original.flush()
        return len(text)

    def flush(self):
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial and not self._forwarder.add([partial], self._is_stderr):
            self._original.write(partial)
            self._wrote_original = True
        if self._wrote_original:  # else nothing waits in its buffer (write() flushes its lines)
            self._wrote_original = False
            self._original.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self._original.fileno()

    @property
    def encoding(self):
        return getattr(self._original, "encoding", "utf-8")

    def writable(self):
        return True


class _AsyncCall:
    """A call of an async actor on an event loop: started from any thread; cancel() from any
    thread, also before it began (its coroutine then never runs: `finished` sees it cancelled)."""

    def __init__(self, loop, coroutine_fn, finished):
        self._loop = loop
        self._coroutine_fn = coroutine_fn
        self._finished = finished
        self._task = None
        self._cancelled = False

    def start(self):
        self._loop.call_soon_threadsafe(self._start)

    def cancel(self):
        self._loop.call_soon_threadsafe(self._cancel)

    def _start(self):  # on the loop
        self._task = self._loop.create_task(self._coroutine_fn())
        self._task.add_done_callback(self._finished)
        if self._cancelled:
            self._task.cancel()

    def _cancel(self):  # on the loop
        if self._task is None:
            self._cancelled = True
        else:
            self._task.cancel()


class Worker:
    def __init__(self):
        self.core = runtime.init_worker()
        self.functions = {}
        self.actor = None        # the instance, once this worker runs an actor
        self.actor_name = None
        self.applied_memory_fraction = None  # the GPU memory fraction torch was last capped to
        self.loop = None         # event loop for async methods of threaded actors and tasks (own thread)
        self.async_actor = False  # the actor has async methods: every call runs on a group's event loop
        self.loops = {}          # an async actor's event loops, by concurrency group ("" the default)
        self.loops_lock = threading.Lock()
        self.running = {}        # task id (hex) -> ident of the thread running it
        self.async_calls = {}    # task id (hex) -> the future (or _AsyncCall) of a call on an event loop
        self.returned_refs = []  # refs put inside results: kept so their borrowers can read them
        self.retry_filters = {}  # pickled retry_exceptions lists -> tuples of classes
        self.coroutine_functions = {}  # function -> whether it is a coroutine function (_call)
        self.exiting = None      # why the actor is ending (exit_actor, __ray_terminate__), once it is
        self.exit_requested_by = None  # the task (hex id) that called exit_actor()
        self.node_id = self.core.node_id
        self.main_thread = threading.main_thread().ident
        # A cancel of the task on the main thread arrives as a signal, as Ray's KeyboardInterrupt:
        # it also breaks a blocking sleep or read there, which an async exception would wait out.
        self.cancel_pending = None  # the task (hex) whose cancel was signalled
        signal.signal(signal.SIGUSR2, self._on_cancel_signal)
        self.forwarder = _OutputForwarder(self.core)
        self.stdout = _TaskStream(self.forwarder, sys.stdout, False)
        self.stderr = _TaskStream(self.forwarder, sys.stderr, True)
        sys.stdout = self.stdout
        sys.stderr = self.stderr
        self.core.set_task_handler(self.execute)
        self.core.set_async_task_handler(self.execute_async)
        self.core.set_interrupt_handler(self.interrupt)
        self.core.set_log_handler(self.forward_nested_output)

    def load_function(self, fid):
        fn = self.functions.get(fid)
        if fn is None:
            with runtime.core_call:
                pickled = self.core.kv_get(runtime.FUNCTION_NAMESPACE, fid)
            if pickled is None:
                raise RuntimeError(f"function {fid} was not exported to the GCS (its driver may have exited)")
            import cloudpickle
            fn = cloudpickle.loads(pickled)
            self.functions[fid] = fn
        return fn

    def execute(self, function_name, task_id, num_returns, cuda_visible_devices, actor_id, actor_creation, args,
                retry_exception_filter=b"", concurrency_group="", streaming=False, dynamic=False):
        from shoal.remote_function import unpack_arguments
        if actor_id and not actor_creation:
            fid, name = "", function_name
            label = f"{self.actor_name}.{function_name}" if self.actor_name else function_name
            prefix_name = self.actor_name or function_name
        else:
            _, fid, name = function_name.split(":", 2) if function_name.startswith("py:") else ("", "", function_name)
            label = name
            prefix_name = name.rsplit(".", 1)[-1]
        # The core exported it with setenv; os.environ is Python's own copy (set when it differs:
        # an actor's calls all run with its creation's devices).
        if os.environ.get("CUDA_VISIBLE_DEVICES") != cuda_visible_devices:
            _set_env("CUDA_VISIBLE_DEVICES", cuda_visible_devices)
        if not (actor_id and not actor_creation):
            self._apply_gpu_memory_cap()
        if actor_id and not actor_creation and self.exiting is not None:
            return (False, self._actor_exited_error(f"{label}() was not run"))  # queued behind the exit
        info = self.core.current_task()
        omp_set = self._set_omp_threads(info, actor_id, actor_creation)
        self.forwarder.begin_task(info["owner_address"], prefix_name)
        self.running[task_id] = threading.get_ident()
        try:
            positional, keywords = unpack_arguments(args)
            del args
            transport = keywords.pop(tensor_transport.RESERVED_KEYWORD, None) if keywords else None
            if actor_id and not actor_creation:
                if self.actor is None:
                    raise RuntimeError(f"this worker runs no actor (call {function_name!r})")
                method, positional = self._actor_method(name, positional, keywords)
                if self.async_actor:
                    result = self._call_on_loop(concurrency_group, method, positional, keywords, task_id)
                else:
                    result = self._call(method, positional, keywords)
            else:
                if not fid:
                    raise RuntimeError(f"'{function_name}' is not a Python task")
                fn = self.load_function(fid)
                if actor_creation:
                    runtime.state.actor_id = actor_id
                    runtime.state.exit_actor = self.request_actor_exit
                    self.actor_name = name.rsplit(".", 1)[-1]
                    if inspect.isclass(fn) and is_async_class(fn):
                        # As in Ray, the constructor runs on the default group's loop, so that
                        # asyncio.get_event_loop() there is the loop its methods run on.
                        self.async_actor = True
                        runtime.state.async_actor = True
                        self.actor = self._call_on_loop("", fn, positional, keywords, task_id)
                    else:
                        self.actor = fn(*positional, **keywords)
                    result = None
                else:
                    result = self._call(fn, positional, keywords)
            if streaming:
                count = self._stream(label, result, info, task_id, concurrency_group)
                # The completion: the values went to the owner one by one; a dynamic task's
                # caller gets the list of their refs from it.
                results = [_DynamicItems(task_id, info["owner_address"], count) if dynamic else None]
            else:
                results = self._returns(result, num_returns, transport, info["task_id"])
            return self._answer(label, results, task_id)
        except (ActorExit, exceptions.AsyncioActorExit) as e:
            self._begin_actor_exit(actor_id, f"{e} in {label}()")
            if actor_creation:
                # The actor is created and ends at once (no restart), after its atexit handlers:
                # a failed creation could be restarted, or its worker killed before they ran.
                self.actor = None
                return (True, [serialization.serialize_to_bytes(None)[0]])
            return (False, self._actor_exited_error(f"{label}() ended there"))
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            if actor_creation:
                self.actor = None
            return (False, self._error(label, e, retry_exception_filter))
        finally:
            if omp_set:
                os.environ.pop("OMP_NUM_THREADS", None)
            # A cancellation that arrived as the task ended must not hit the next one.
            self.running.pop(task_id, None)
            if threading.get_ident() == self.main_thread:
                self.cancel_pending = None
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)
            self._end_output()

    def _end_output(self):
        """Sends what the task that ends here printed, its partial lines too."""
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        self.forwarder.end_task()

    def execute_async(self, function_name, task_id, num_returns, actor_id, args, concurrency_group,
                      retry_exception_filter, complete):
        """Starts a method call of an async actor on its group's event loop and returns at once;
        complete(answer) gets what execute() would answer, when the call ended. No thread waits
        for the call: the core counts the calls in flight against the group's limit."""
        from shoal.remote_function import unpack_arguments
        label = f"{self.actor_name}.{function_name}" if self.actor_name else function_name
        if self.exiting is not None:
            complete((False, self._actor_exited_error(f"{label}() was not run")))  # queued behind the exit
            return
        info = self.core.current_task()
        output = self.forwarder.task_output(info["owner_address"], self.actor_name or function_name)
        try:
            positional, keywords = unpack_arguments(args)
            del args
            transport = keywords.pop(tensor_transport.RESERVED_KEYWORD, None) if keywords else None
            if self.actor is None:
                raise RuntimeError(f"this worker runs no actor (call {function_name!r})")
            method, positional = self._actor_method(function_name, positional, keywords)
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            complete((False, self._error(label, e, retry_exception_filter)))
            return

        def cancelled():
            error = exceptions.TaskCancelledError(f"the call {task_id} was cancelled")
            return (False, self._error(label, error, retry_exception_filter))

        async def run():
            self.forwarder.adopt(output)
            runtime._loop_task.set(info)
            try:
                value = method(*positional, **keywords)
                if inspect.isawaitable(value):
                    value = await value
                return self._answer(label, self._returns(value, num_returns, transport, info["task_id"]), task_id)
            except asyncio.CancelledError:
                return cancelled()
            except (ActorExit, exceptions.AsyncioActorExit) as e:
                self._begin_actor_exit(actor_id, f"{e} in {label}()")
                return (False, self._actor_exited_error(f"{label}() ended there"))
            except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
                return (False, self._error(label, e, retry_exception_filter))
            finally:
                self._end_output()

        def finished(task):
            self.async_calls.pop(task_id, None)
            if task.cancelled():  # before run() began
                answer = cancelled()
            elif task.exception() is not None:
                answer = (False, self._error(label, task.exception(), retry_exception_filter))
            else:
                answer = task.result()
            self.running.pop(task_id, None)  # just before the answer, as execute() does
            complete(answer)

        call = _AsyncCall(self._group_loop(concurrency_group), run, finished)
        self.async_calls[task_id] = call
        self.running[task_id] = None  # no thread to interrupt: interrupt() cancels `call`
        call.start()

    def _returns(self, result, num_returns, transport, task_hex):
        """The values of a call's returns from what it returned (a sequence of num_returns
        values when it is more than one)."""
        if num_returns == 1:
            results = [result]
        else:
            results = list(result) if not isinstance(result, (str, bytes)) else None
            if results is None or len(results) != num_returns:
                got = "a non-sequence" if results is None else f"{len(results)} values"
                raise ValueError(f"Task returned {got}, but num_returns={num_returns}.")
        if transport is not None:
            # Tensors stay here; the stored values carry placeholders (tensor_transport.py).
            base = bytes.fromhex(task_hex)
            results = [tensor_transport.hold(r, (base + struct.pack("<I", i + 1)).hex())
                       for i, r in enumerate(results)]
        return results

    def _answer(self, label, results, task_id):
        """A call's answer to the core: its serialized results, or the actor's exit."""
        if self.exit_requested_by == task_id and self.exiting is not None:
            # exit_actor() was called in this call and its exception caught: it still ends.
            return (False, self._actor_exited_error(f"{label}() ended there"))
        out = []
        for r in results:
            data, refs = serialization.serialize_to_bytes(r)
            self.returned_refs.extend(refs)
            out.append(data)
        return (True, out)

    def _set_omp_threads(self, info, actor_id, actor_creation):
        """As Ray: where nothing (the node's environment, a runtime env) set OMP_NUM_THREADS, a
        task runs with it set to its whole CPUs (at least 1), removed again after it; an actor
        keeps the value its creation set. Answers whether it was set for this task only."""
        if (actor_id and not actor_creation) or os.environ.get("OMP_NUM_THREADS"):
            return False
        cpus = float(info.get("resources", {}).get("CPU", 0) or 0)
        _set_env("OMP_NUM_THREADS", str(max(1, int(cpus))))
        return not actor_creation

    def _stream(self, label, values, info, task_id, group):
        """Runs a streaming generator to its end, reporting each value to the task's owner as it
        comes (the report waits while the owner's consumer is too far behind: backpressure). An
        async generator advances on its event loop, the reports wait on this thread. Answers how many
        values it yielded."""
        report = self.core.report_generator_item
        owner, attempt = info["owner_address"], info["attempt"]

        def send(index, value):
            data, refs = serialization.serialize_to_bytes(value)
            self.returned_refs.extend(refs)
            with runtime.core_call:
                report(task_id, owner, attempt, index, data)

        if inspect.isasyncgen(values):
            loop = self._group_loop(group) if self.async_actor else self._task_loop()
            index = 0
            while True:
                future = asyncio.run_coroutine_threadsafe(values.__anext__(), loop)
                self.async_calls[task_id] = future  # a cancel cancels the step that runs
                try:
                    value = future.result()
                except StopAsyncIteration:
                    return index
                except concurrent.futures.CancelledError:
                    raise exceptions.TaskCancelledError(f"the call {task_id} was cancelled") from None
                finally:
                    self.async_calls.pop(task_id, None)
                send(index, value)
                index += 1
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f'{label}() has num_returns="streaming" but returned {type(values).__name__}, '
                            "not a generator")
        count = 0
        for index, value in enumerate(values):
            send(index, value)
            count = index + 1
        return count

    def _apply_gpu_memory_cap(self):
        """A task given a fraction of a GPU on a node whose caps are "framework" or "mps" is held
        to that fraction of the device's memory (src/common/gpu_memory_caps.h): the core exported
        the variables with setenv; they are copied into os.environ, and torch, when importable,
        gets set_per_process_memory_fraction on every device the task sees."""
        for name in _CAP_VARIABLES:
            value = _c_getenv(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                _set_env(name, value)
        fraction = os.environ.get("SHOAL_GPU_MEMORY_FRACTION")
        if fraction == self.applied_memory_fraction:
            return
        if fraction is None and self.applied_memory_fraction is None:
            return
        try:
            if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
                return
            import torch
            if not torch.cuda.is_available():
                return
            for device in range(torch.cuda.device_count()):
                torch.cuda.set_per_process_memory_fraction(float(fraction or 1.0), device)
            self.applied_memory_fraction = fraction
        except Exception as e:  # noqa: BLE001 - a cap that cannot be set is reported, not fatal
            print(f"shoal: cannot cap GPU memory to {fraction} with torch: {e}", file=sys.stderr)

    def _task_loop(self):
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="shoal-asyncio", daemon=True).start()
        return self.loop

    def _actor_method(self, name, positional, keywords):
        """The callable for a call of `name` on the actor, and its positional arguments: a method
        of the instance, or one of Ray's built-ins (actor.BUILTIN_METHODS), bound to the instance.
        __ray_call__ binds its function argument instead (taken out of the arguments), so that
        an async one runs on the event loop."""
        if name == "__ray_call__":
            if positional:
                fn, positional = positional[0], positional[1:]
            elif "fn" in keywords:
                fn = keywords.pop("fn")
            else:
                raise TypeError("__ray_call__() missing 1 required positional argument: 'fn'")
            if not callable(fn):
                raise TypeError(f"__ray_call__ needs a callable taking the actor instance first, got "
                                f"{type(fn).__name__}")
            return functools.partial(fn, self.actor), positional
        builtin = BUILTIN_METHODS.get(name)
        if builtin is not None:
            return functools.partial(builtin, self.actor), positional
        method = getattr(self.actor, name, None)
        if method is None or not callable(method):
            raise AttributeError(f"'{self.actor_name}' actor has no method '{name}'")
        return method, positional

    def _actor_exited_error(self, what):
        error = exceptions.ActorDiedError(
            f"The actor {self.actor_name} (pid={os.getpid()}) exited intentionally: {self.exiting}; {what}.")
        data, _ = serialization.serialize_to_bytes(error)
        return ("ActorDiedError", str(error), data, "", True)

    def request_actor_exit(self, why):
        """exit_actor()'s hook: the actor ends once the calls running now are answered (the one
        that called it with an ActorDiedError, even if it caught the exception)."""
        task = runtime.current_task()
        self.exit_requested_by = task.get("task_id") if task else None
        self._begin_actor_exit(runtime.state.actor_id, why)

    def _begin_actor_exit(self, actor_id, why):
        """Ends the actor once the exiting call has been answered and the calls running on
        other threads are done: runs the atexit handlers, then has the GCS mark the actor DEAD
        for good (no restart), which ends this worker's lease and process."""
        if self.exiting is not None:
            return
        self.exiting = why
        threading.Thread(target=self._end_actor, args=(bytes.fromhex(actor_id),), name="shoal-actor-exit",
                         daemon=True).start()

    def _end_actor(self, actor_id):
        # execute() drops a call from self.running just before the core sends its reply.
        while self.running:
            time.sleep(0.01)
        atexit.unregister(runtime.shutdown)  # the core must stay up for the kill below
        shutdown = getattr(self.actor, "__ray_shutdown__", None)
        if callable(shutdown):  # Ray's hook for a graceful end (not on a kill)
            try:
                value = shutdown()
                if inspect.isawaitable(value):
                    asyncio.run_coroutine_threadsafe(value, self._group_loop("")).result()
            except BaseException:  # noqa: BLE001 - a failing hook must not keep the actor alive
                traceback.print_exc(file=self.stderr._original)
        try:
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001 - a failing handler must not keep the actor alive
            traceback.print_exc(file=self.stderr._original)
        try:
            self.core.kill_actor(actor_id, True)
        except Exception:  # noqa: BLE001 - the GCS is unreachable: leave without it
            traceback.print_exc(file=self.stderr._original)
            os._exit(1)

    def _group_loop(self, group):
        """The event loop of an async actor's concurrency group, started on first use on a
        thread of its own. The core bounds how many calls of the group run at once (each waits
        on a thread of the group for its call to finish here)."""
        with self.loops_lock:
            loop = self.loops.get(group)
            if loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=f"shoal-asyncio-{group or 'default'}",
                                 daemon=True).start()
                self.loops[group] = loop
            return loop

    def _call_on_loop(self, group, fn, positional, keywords, task_id):
        """Runs a call of an async actor on its group's event loop and waits for it: coroutines
        interleave there at their awaits; a sync method runs on the loop's thread (blocking it,
        as in Ray). A cancel of the call cancels its asyncio task (interrupt)."""
        output = self.forwarder.current()
        task = self.core.current_task()

        async def run():
            self.forwarder.adopt(output)
            runtime._loop_task.set(task)
            if inspect.iscoroutinefunction(fn) or (
                    isinstance(fn, functools.partial) and inspect.iscoroutinefunction(fn.func)):
                return await fn(*positional, **keywords)
            value = fn(*positional, **keywords)
            if inspect.isawaitable(value):  # e.g. __ray_call__ with an async function
                value = await value
            return value

        future = asyncio.run_coroutine_threadsafe(run(), self._group_loop(group))
        self.async_calls[task_id] = future
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise exceptions.TaskCancelledError(f"the call {task_id} was cancelled") from None
        finally:
            self.async_calls.pop(task_id, None)

    def _call(self, fn, positional, keywords):
        if self._is_coroutine_function(fn):
            return asyncio.run_coroutine_threadsafe(fn(*positional, **keywords), self._task_loop()).result()
        return fn(*positional, **keywords)

    def _is_coroutine_function(self, fn):
        """inspect.iscoroutinefunction(fn), remembered per function (a bound method by its
        function): the same few functions run again and again here."""
        key = getattr(fn, "__func__", fn)
        try:
            return self.coroutine_functions[key]
        except KeyError:
            answer = self.coroutine_functions[key] = inspect.iscoroutinefunction(fn)
            return answer
        except TypeError:  # not hashable
            return inspect.iscoroutinefunction(fn)

    def _retryable(self, e, retry_exception_filter):
        """Whether retry_exceptions=[...] (a pickled tuple of classes) lists e's type."""
        if not retry_exception_filter:
            return True
        classes = self.retry_filters.get(retry_exception_filter)
        if classes is None:
            classes = tuple(serialization.deserialize(retry_exception_filter))
            self.retry_filters[retry_exception_filter] = classes
        return isinstance(e, classes)

    def _error(self, name, e, retry_exception_filter=b""):
        # The first frame is execute() itself; the user sees their own frames only.
        frames = e.__traceback__.tb_next if e.__traceback__ is not None else None
        tb = "".join(traceback.format_exception(type(e), e, frames or e.__traceback__))
        error = exceptions.TaskError(name, tb, e, os.getpid(), self.node_id)
        try:
            data, _ = serialization.serialize_to_bytes(error)
        except Exception:  # noqa: BLE001 - the exception itself does not pickle
            error = exceptions.TaskError(name, tb, None, os.getpid(), self.node_id, type(e).__name__)
            data, _ = serialization.serialize_to_bytes(error)
        try:
            not_retryable = not self._retryable(e, retry_exception_filter)
        except Exception:  # noqa: BLE001 - a filter that does not unpickle here retries nothing
            not_retryable = True
        return (type(e).__name__, f"{type(e).__name__}: {e}", data, tb, not_retryable)

    def interrupt(self, task_id):
        future = self.async_calls.get(task_id)
        if future is not None:  # a call on an async actor's event loop: cancel its asyncio task
            future.cancel()
            return
        thread = self.running.get(task_id)
        if thread is None:
            return
        if thread == self.main_thread:
            self.cancel_pending = task_id
            signal.pthread_kill(thread, signal.SIGUSR2)
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread),
                                                   ctypes.py_object(exceptions.TaskCancelledError))

    def _on_cancel_signal(self, signum, frame):
        task_id, self.cancel_pending = self.cancel_pending, None
        if task_id is not None and self.running.get(task_id) == self.main_thread:
            raise exceptions.TaskCancelledError(f"the task {task_id} was cancelled")

    def forward_nested_output(self, lines, is_stderr):
        if not self.forwarder.add(lines, is_stderr, raw=True):
            stream = self.stderr._original if is_stderr else self.stdout._original
            stream.write("".join(line + "\n" for line in lines))
            stream.flush()

    def run(self):
        with runtime.core_call:
            self.core.run_task_loop()


def main():
    worker = Worker()
    try:
        worker.run()
    finally:
        runtime.shutdown()


if __name__ == "__main__":
    main()
