"""ActorPool: spreads work over a fixed set of actors, one call per actor at a time (Ray's
`ray.util.ActorPool`).

    pool = ActorPool([Worker.remote() for _ in range(4)])
    list(pool.map(lambda actor, v: actor.work.remote(v), values))   # in submission order

`fn(actor, value)` starts the work and answers its ObjectRef (or a list of refs, for a method
with num_returns > 1); the actor counts as busy until that result has been fetched through the
pool. Values submitted while every actor is busy wait in the pool and go to the next actor that
is handed back. An actor whose call fails with ActorDiedError leaves the pool.

Threading: one thread at a time (like Ray's, the pool holds no lock).
"""
import time
from typing import Any, Callable, List, Optional

from shoal import exceptions
from shoal._private import runtime
from shoal._private.runtime import _as_timeout


class ActorPool:
    def __init__(self, actors: list):
        self._idle_actors = list(actors)
        self._future_to_actor = {}   # ref, or tuple of refs -> (submission index, actor)
        self._index_to_future = {}   # submission index -> ref or list of refs, until returned
        self._next_task_index = 0
        self._pending_submits = []   # (fn, value) waiting for an idle actor

    # -----------------------------------------------------------------------------------------
    # Submitting

    def map(self, fn: Callable[[Any, Any], Any], values: List[Any]):
        """Submits fn(actor, v) for every v (now, not as the iterator advances) and answers an
        iterator over the results in the order of `values`; iterating blocks on each result.
        Results of earlier submits not yet fetched are discarded first (those still running
        are given up on and their actors count as idle again), as Ray does."""
        self._discard_pending()
        for v in values:
            self.submit(fn, v)

        def results():
            while self.has_next():
                yield self.get_next()
        return results()

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: List[Any]):
        """As map(), but the iterator answers results as they finish (earlier results are
        discarded in the same way)."""
        self._discard_pending()
        for v in values:
            self.submit(fn, v)

        def results():
            while self.has_next():
                yield self.get_next_unordered()
        return results()

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Runs fn(actor, value) on an idle actor, or queues it until one is handed back.
        Fetch its result with get_next() or get_next_unordered()."""
        if not callable(fn):
            raise TypeError(f"ActorPool.submit needs a function fn(actor, value), got {type(fn).__name__}")
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        if isinstance(future, list):
            if not future or not all(isinstance(f, runtime.ObjectRef) for f in future):
                self._idle_actors.append(actor)
                raise TypeError("fn(actor, value) must return an ObjectRef or a non-empty list of ObjectRefs")
            key = tuple(future)
        elif isinstance(future, runtime.ObjectRef):
            key = future
        else:
            self._idle_actors.append(actor)
            raise TypeError(f"fn(actor, value) must return an ObjectRef (e.g. actor.method.remote(value)), "
                            f"got {type(future).__name__}")
        self._future_to_actor[key] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    # -----------------------------------------------------------------------------------------
    # Results

    def has_next(self) -> bool:
        """Whether a submitted call's result has not been fetched yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: Optional[float] = None, ignore_if_timedout: bool = False):
        """The result of the oldest submitted call not yet fetched, blocking up to `timeout`
        seconds (None: no limit). Raises StopIteration when nothing is pending, TimeoutError
        when the result is not ready in time: the call stays pending, or, with
        `ignore_if_timedout`, it is given up on (its result never returned, its actor counted
        idle again) before the TimeoutError. The call's own error is raised as `get` does."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        # Submission order; calls already fetched by get_next_unordered() are skipped.
        index = min(self._index_to_future)
        future = self._index_to_future[index]
        if timeout is not None:
            refs = future if isinstance(future, list) else [future]
            ready, _ = runtime.wait(refs, num_returns=len(refs), timeout=timeout)
            if len(ready) < len(refs):
                if not ignore_if_timedout:
                    raise TimeoutError("Timed out waiting for result")
                actor = self._forget(future)
                self._return_actor(actor)
                raise TimeoutError(f"Timed out waiting for result. The task {future} has been ignored.")
        actor = self._forget(future)
        return self._fetch(future, actor)

    def get_next_unordered(self, timeout: Optional[float] = None, ignore_if_timedout: bool = False):
        """The result of any finished call not yet fetched, blocking up to `timeout` seconds
        for one to finish. Raises StopIteration when nothing is pending, TimeoutError when none
        finished in time; with `ignore_if_timedout`, answers None instead (no call is given
        up on: there is no particular one to drop)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        deadline = None if timeout is None else time.monotonic() + _as_timeout(timeout)
        # Every ref of every pending call; a call with several returns is done when all are.
        waiting = [r for key in self._future_to_actor for r in (key if isinstance(key, tuple) else (key,))]
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, waiting = runtime.wait(waiting, num_returns=1, timeout=remaining)
            if not ready:
                if ignore_if_timedout:
                    return None
                raise TimeoutError("Timed out waiting for result")
            key = self._key_of(ready[0])
            if not isinstance(key, tuple) or not any(r in waiting for r in key):
                break
        future = self._index_to_future[self._future_to_actor[key][0]]
        actor = self._forget(future)
        return self._fetch(future, actor)

    # -----------------------------------------------------------------------------------------
    # Actors

    def has_free(self) -> bool:
        """Whether an actor is idle and no submitted value is waiting for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self):
        """Takes an idle actor out of the pool; None when has_free() is False."""
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor) -> None:
        """Adds an actor to the pool (it takes a waiting value at once, if any). ValueError if
        the actor is already in the pool, idle or busy."""
        busy = [a for _, a in self._future_to_actor.values()]
        if any(actor == a for a in self._idle_actors) or any(actor == a for a in busy):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    # -----------------------------------------------------------------------------------------

    def _key_of(self, ref):
        for key in self._future_to_actor:
            if key == ref or (isinstance(key, tuple) and ref in key):
                return key
        raise KeyError(ref)

    def _forget(self, future):
        """Drops a call from the pending ones; answers its actor."""
        key = tuple(future) if isinstance(future, list) else future
        index, actor = self._future_to_actor.pop(key)
        del self._index_to_future[index]
        return actor

    def _fetch(self, future, actor):
        alive = True
        try:
            return runtime.get(future)
        except exceptions.ActorDiedError:
            alive = False
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor, alive=True):
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.pop(0))

    def _discard_pending(self):
        """Fetches and drops the results of every pending call, giving up on those not ready."""
        while self.has_next():
            try:
                self.get_next(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass
