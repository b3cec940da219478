"""ObjectRefGenerator: what a streaming generator task (num_returns="streaming") returns; and
DynamicObjectRefGenerator, the value of the one ref a num_returns="dynamic" task returns.

Iterating it yields one ObjectRef per value the remote generator yields, as soon as that value
exists, while the task still runs; `shoal.get` on such a ref gives the value. If the generator
raises, the ref after its last value holds the exception (get raises it), and iteration then
stops. The caller owns the values: dropping the generator frees those it never handed out.
"""
import struct
import weakref

from shoal._private import runtime
from shoal._private.runtime import ObjectRef, core_call, state


_END = object()


class ObjectRefGenerator:
    """Ray's ObjectRefGenerator: the refs of a streaming generator task's values, in order."""

    def __init__(self, completion_ref):
        self._completion = completion_ref  # the task's own return: ready when the generator ends
        self._epoch = state.epoch
        self._released = False

    # --- sync iteration ---

    def __iter__(self):
        return self

    def __next__(self):
        return self._next_sync()

    def _next_sync(self, timeout_s=None):
        """The ref of the next value, waiting up to `timeout_s` seconds (None: until it comes);
        a nil ref when none came in time; StopIteration once the generator ended and every
        value was handed out."""
        if timeout_s is not None and (isinstance(timeout_s, bool) or timeout_s < 0):
            raise ValueError(f"timeout_s must be None or >= 0, got {timeout_s!r}")
        c = self._core()
        try:
            with core_call:
                item = c.generator_next(self._completion._id, -1.0 if timeout_s is None else float(timeout_s))
        except runtime.exceptions.GetTimeoutError:
            return ObjectRef.nil()
        if item is None:
            raise StopIteration
        return ObjectRef(item)

    # --- async iteration (the wait runs on a thread, so the event loop keeps going) ---

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._next_async()

    async def _next_async(self, timeout_s=None):
        import asyncio  # here: a worker that never iterates asynchronously does not load it
        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(None, self._next_or_end, timeout_s)
        if ref is _END:  # StopIteration cannot cross a future
            raise StopAsyncIteration
        return ref

    def _next_or_end(self, timeout_s):
        try:
            return self._next_sync(timeout_s)
        except StopIteration:
            return _END

    # --- state ---

    def completed(self):
        """An ObjectRef that is ready when the generator task ended (get raises its error if it
        failed)."""
        return self._completion

    def is_finished(self):
        """True once the task ended and every value was handed out."""
        return self._core().generator_is_finished(self._completion._id)

    def next_ready(self):
        """Whether __next__ would answer without waiting (a value is there, or the end)."""
        return self._core().generator_next_ready(self._completion._id)

    def _generator_task_id(self):
        return self._completion.task_id()

    def _core(self):
        c = state.core
        if c is None or self._epoch != state.epoch:
            raise runtime.exceptions.ShoalError("this generator belongs to a shoal session that was shut down")
        return c

    def __del__(self):
        if self._released:
            return
        self._released = True
        c = state.core
        if c is not None and self._epoch == state.epoch:
            try:
                c.release_generator(self._completion._id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __reduce__(self):
        raise TypeError("You cannot return or pass a generator to other task. "
                        "Serializing a ObjectRefGenerator is not allowed.")

    def __repr__(self):
        return f"ObjectRefGenerator(generator_ref={self._completion!r})"


class DynamicObjectRefGenerator:
    """Ray's DynamicObjectRefGenerator: the refs of the values a num_returns="dynamic" task
    yielded, in order (all there: the task has ended). Iterating it yields them once; len() is
    how many there were."""

    def __init__(self, refs):
        self._refs = list(refs)
        self._next = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._next >= len(self._refs):
            raise StopIteration
        self._next += 1
        return self._refs[self._next - 1]

    def __len__(self):
        return len(self._refs)

    def __reduce__(self):
        return (_rebuild_dynamic, (_pairs(self._refs),))


def _pairs(refs):
    """(id bytes, owner address) of each ref, as ObjectRef pickling sends them."""
    out = []
    for r in refs:
        _, (id_bytes, owner) = r.__reduce__()
        out.append((id_bytes, owner))
    return out


def _rebuild_dynamic(pairs):
    return DynamicObjectRefGenerator([runtime._rebuild_ref(i, owner) for i, owner in pairs])


class _DynamicItems:
    """What the worker answers for a dynamic task: the ids of the items it reported, owned by
    the caller; the caller (or whoever gets the ref) rebuilds a DynamicObjectRefGenerator."""

    def __init__(self, task_id_hex, owner, count):
        task = bytes.fromhex(task_id_hex)
        self._pairs = [(task + struct.pack("<I", i + 2), owner) for i in range(count)]

    def __reduce__(self):
        return (_rebuild_dynamic, (self._pairs,))


def dynamic_ref(completion_ref):
    """The ref a num_returns="dynamic" call answers: the task's return. Its items' stream is
    released when this ref object goes (items the caller took as refs live on with them)."""
    weakref.finalize(completion_ref, _release, completion_ref._id, state.epoch)
    return completion_ref


def _release(id_bytes, epoch):
    c = state.core
    if c is not None and epoch == state.epoch:
        try:
            c.release_generator(id_bytes)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
