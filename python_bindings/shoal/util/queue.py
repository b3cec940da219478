"""A first-in, first-out queue shared by drivers, tasks and actors (Ray's `ray.util.queue`).

    from shoal.util.queue import Queue, Empty, Full
    q = Queue(maxsize=100)
    q.put(item)                  # blocks while the queue is full
    q.get(timeout=5)             # blocks while it is empty; Empty after 5 s

The items live in one actor (created by Queue(), placed and sized by `actor_options`, passed to
`.options()`). The Queue object itself is a small handle: pass it to tasks and actors, and every
copy uses the same actor.

Blocking: the actor answers only non-blocking calls and the caller waits, polling it with
short pauses (1 ms, doubling up to 50 ms) until the item or the room is there or the timeout
passes. So a blocked get never holds the actor, and producers and consumers on any number of
processes proceed while others wait. As with Ray's, when several consumers wait on an empty
queue (or producers on a full one), which of them is served first is not defined.
"""
import asyncio
import collections
import queue
import time
from collections.abc import Iterable
from typing import Any, Dict, List, Optional

from shoal._private import runtime
from shoal.actor import ActorClass, kill

_FIRST_PAUSE_S = 0.001
_LONGEST_PAUSE_S = 0.05


class Empty(queue.Empty):
    """get from an empty queue without blocking, or after the timeout."""


class Full(queue.Full):
    """put to a full queue without blocking, or after the timeout."""


class _QueueActor:
    """The queue's state. Every method answers at once (none waits for items or room)."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.items = collections.deque()

    def qsize(self):
        return len(self.items)

    def empty(self):
        return not self.items

    def full(self):
        return 0 < self.maxsize <= len(self.items)

    def put_nowait(self, item):
        """True when `item` was added, False when the queue is full."""
        if self.full():
            return False
        self.items.append(item)
        return True

    def put_nowait_batch(self, items):
        """None when every item was added, else why none was."""
        if self.maxsize > 0 and len(items) + len(self.items) > self.maxsize:
            return f"Cannot add {len(items)} items to queue of size {len(self.items)} and maxsize {self.maxsize}."
        self.items.extend(items)
        return None

    def get_nowait(self):
        """(True, item), or (False, None) when the queue is empty."""
        if not self.items:
            return False, None
        return True, self.items.popleft()

    def get_nowait_batch(self, num_items):
        """(True, items), or (False, why) when fewer than num_items are queued (none taken)."""
        if num_items > len(self.items):
            return False, f"Cannot get {num_items} items from queue of size {len(self.items)}."
        return True, [self.items.popleft() for _ in range(num_items)]


_queue_actor_class = None


def _actor_class():
    global _queue_actor_class
    if _queue_actor_class is None:
        _queue_actor_class = ActorClass(_QueueActor, {})
    return _queue_actor_class


def _check_timeout(timeout):
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"'timeout' must be a non-negative number or None, got {type(timeout).__name__}")
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return float(timeout)


class _Pauses:
    """The pauses between polls of one blocking call, never past its deadline."""

    def __init__(self, timeout):
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.pause = _FIRST_PAUSE_S

    def next(self):
        """Seconds to pause before the next poll; None once the deadline has passed."""
        pause, self.pause = self.pause, min(self.pause * 2, _LONGEST_PAUSE_S)
        if self.deadline is None:
            return pause
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return None
        return min(pause, remaining)


def _stored(item):
    """A ref to `item` for the retries of a blocked put, so that it is pickled (and, when
    large, stored) once. A ref passed to put already stands for its value: an actor call gets
    the value of a ref passed as an argument, so the queue holds the value either way."""
    return item if isinstance(item, runtime.ObjectRef) else runtime.put(item)


class Queue:
    """A FIFO queue held by an actor. `maxsize` <= 0: unbounded. `actor_options`: options for
    the queue's actor (e.g. {"num_cpus": 1} or a scheduling strategy), as .options() takes.

    Every method blocks for one call to the actor at least; put and get block longer as
    described on them. If the actor is gone (shutdown, killed, its node died), calls raise
    ActorDiedError."""

    def __init__(self, maxsize: int = 0, actor_options: Optional[Dict] = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"actor_options must be a dict, got {type(actor_options).__name__}")
        self.maxsize = maxsize
        self.actor = _actor_class().options(**(actor_options or {})).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return runtime.get(self._actor().qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        return runtime.get(self._actor().empty.remote())

    def full(self) -> bool:
        return runtime.get(self._actor().full.remote())

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Adds `item` at the end. If the queue is full: without `block`, raises Full at once;
        else waits for room, up to `timeout` seconds (None: no limit), then raises Full.
        ValueError for a negative timeout."""
        actor = self._actor()
        if not block:
            if not runtime.get(actor.put_nowait.remote(item)):
                raise Full
            return
        pauses = _Pauses(_check_timeout(timeout))
        if runtime.get(actor.put_nowait.remote(item)):
            return
        item = _stored(item)
        while not runtime.get(actor.put_nowait.remote(item)):
            pause = pauses.next()
            if pause is None:
                raise Full
            time.sleep(pause)

    async def put_async(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """As put(), awaiting instead of blocking the event loop."""
        actor = self._actor()
        if not block:
            if not await actor.put_nowait.remote(item):
                raise Full
            return
        pauses = _Pauses(_check_timeout(timeout))
        if await actor.put_nowait.remote(item):
            return
        item = _stored(item)
        while not await actor.put_nowait.remote(item):
            pause = pauses.next()
            if pause is None:
                raise Full
            await asyncio.sleep(pause)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Removes and answers the first item. If the queue is empty: without `block`, raises
        Empty at once; else waits for an item, up to `timeout` seconds (None: no limit), then
        raises Empty. ValueError for a negative timeout."""
        actor = self._actor()
        if not block:
            found, item = runtime.get(actor.get_nowait.remote())
            if not found:
                raise Empty
            return item
        pauses = _Pauses(_check_timeout(timeout))
        while True:
            found, item = runtime.get(actor.get_nowait.remote())
            if found:
                return item
            pause = pauses.next()
            if pause is None:
                raise Empty
            time.sleep(pause)

    async def get_async(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """As get(), awaiting instead of blocking the event loop."""
        actor = self._actor()
        if not block:
            found, item = await actor.get_nowait.remote()
            if not found:
                raise Empty
            return item
        pauses = _Pauses(_check_timeout(timeout))
        while True:
            found, item = await actor.get_nowait.remote()
            if found:
                return item
            pause = pauses.next()
            if pause is None:
                raise Empty
            await asyncio.sleep(pause)

    def put_nowait(self, item: Any) -> None:
        """put(item, block=False): Full if the queue is full."""
        return self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable) -> None:
        """Adds every item of `items`, in order, or none: Full if they do not all fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        why = runtime.get(self._actor().put_nowait_batch.remote(list(items)))
        if why is not None:
            raise Full(why)

    def get_nowait(self) -> Any:
        """get(block=False): Empty if the queue is empty."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> List[Any]:
        """Removes and answers the first `num_items` items, or none: Empty if fewer are queued."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        found, result = runtime.get(self._actor().get_nowait_batch.remote(num_items))
        if not found:
            raise Empty(result)
        return result

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Ends the queue's actor (its items are lost) and releases its resources. Without
        `force`, the actor ends after the calls already sent to it, waiting up to
        `grace_period_s` seconds before killing it; with `force`, it is killed at once.
        Using the queue afterwards raises ValueError."""
        if self.actor is None:
            return
        if force:
            kill(self.actor, no_restart=True)
        else:
            done = self.actor.__ray_terminate__.remote()
            ready, _ = runtime.wait([done], timeout=grace_period_s)
            if not ready:
                kill(self.actor, no_restart=True)
        self.actor = None

    def _actor(self):
        if self.actor is None:
            raise ValueError("this Queue was shut down")
        return self.actor
