"""Streaming generators (num_returns="streaming") on Shoal: values reach the caller while the task
runs, in order, from tasks, threaded and async actors and nested tasks; a raised exception is
the item after the last value; backpressure holds the generator; a worker killed mid-stream is
retried without repeating items; cancel and dropping the generator end it.

In the spirit of Ray's python/ray/tests/test_streaming_generator*.py, written for Shoal. The
driver is this pytest process on the module's three-node cluster (conftest `driver`). Waiting
is by files the test creates, never by sleeping for a duration.
"""
import asyncio
import gc
import os
import pickle
import signal
import sys
import time

import pytest

from conftest import PYTHON_DIR, wait_until
from test_object_store import raylets, store_of, tool

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal as ray  # noqa: E402
import task_helpers  # noqa: E402
from task_helpers import touch, wait_for_file  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(task_helpers)


def test_generator_values_stream_in_order(driver):
    @ray.remote
    def numbers(n):
        for i in range(n):
            yield i * 10

    gen = numbers.remote(5)  # a generator function streams without num_returns
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(ref) for ref in gen] == [0, 10, 20, 30, 40]
    assert gen.is_finished()
    assert ray.get(gen.completed()) is None
    with pytest.raises(StopIteration):
        next(gen)

    @ray.remote(num_returns="streaming")
    def empty():
        return
        yield

    assert list(empty.remote()) == []


def test_values_arrive_before_the_task_ends(driver, tmp_path):
    gate = str(tmp_path / "gate")

    @ray.remote
    def slow(gate):
        yield "first"
        wait_for_file(gate)
        yield "second"

    gen = slow.remote(gate)
    assert ray.get(next(gen), timeout=60) == "first"  # the task is still waiting on the gate
    assert gen._next_sync(timeout_s=0).is_nil()  # nothing more yet
    assert not gen.next_ready()
    assert ray.wait([gen], timeout=0) == ([], [gen])  # wait takes generators, as Ray's
    touch(gate)
    ready, _ = ray.wait([gen], timeout=60)
    assert ready == [gen]
    assert ray.get(next(gen), timeout=60) == "second"
    assert list(gen) == []


def test_large_values_go_through_the_store(driver):
    @ray.remote
    def chunks():
        for i in range(3):
            yield bytes([i]) * (300 * 1024)

    got = [ray.get(ref) for ref in chunks.remote()]
    assert [len(c) for c in got] == [300 * 1024] * 3
    assert [c[0] for c in got] == [0, 1, 2]


def test_an_exception_is_the_item_after_the_last_value(driver):
    class Boom(Exception):
        pass

    @ray.remote(max_retries=0)
    def fails():
        yield 1
        yield 2
        raise Boom("at the third")

    gen = fails.remote()
    assert ray.get(next(gen)) == 1
    assert ray.get(next(gen)) == 2
    with pytest.raises(Boom, match="at the third"):
        ray.get(next(gen))
    with pytest.raises(StopIteration):
        next(gen)
    with pytest.raises(Boom):
        ray.get(gen.completed())


def test_actor_generators_threaded_and_async(driver):
    @ray.remote
    class Source:
        def count(self, n):
            for i in range(n):
                yield i

        @ray.method(num_returns=1)
        def listed(self, n):  # an explicit num_returns keeps a plain return
            return list(range(n))

    s = Source.remote()
    assert [ray.get(r) for r in s.count.remote(4)] == [0, 1, 2, 3]
    assert ray.get(s.listed.remote(3)) == [0, 1, 2]

    @ray.remote
    class AsyncSource:
        async def ticks(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield f"tick{i}"

    a = AsyncSource.remote()
    assert [ray.get(r) for r in a.ticks.remote(3)] == ["tick0", "tick1", "tick2"]

    async def consume():
        return [await ref for ref in [r async for r in a.ticks.remote(2)]]

    assert asyncio.run(consume()) == ["tick0", "tick1"]


def test_a_task_consumes_a_generator_it_owns(driver):
    @ray.remote
    def produce(n):
        for i in range(n):
            yield i

    @ray.remote
    def total(n):
        return sum(ray.get(ref) for ref in produce.remote(n))

    assert ray.get(total.remote(10), timeout=120) == 45


def test_backpressure_holds_the_generator_until_values_are_taken(driver, tmp_path):
    progress = str(tmp_path / "progress")

    @ray.remote(_generator_backpressure_num_objects=2)
    def eager(progress):
        for i in range(6):
            with open(progress, "w") as f:
                f.write(str(i))
            yield i

    def yielded():
        try:
            with open(progress) as f:
                return int(f.read() or -1)
        except (OSError, ValueError):
            return -1

    gen = eager.remote(progress)
    # Items 0 and 1 reach the owner; the report of item 1 waits for the caller.
    wait_until(lambda: yielded() == 1, 60, what="the generator to yield its second value")
    time.sleep(1.0)  # bounded look: it stays held while nothing is taken
    assert yielded() == 1
    assert ray.get(next(gen)) == 0
    wait_until(lambda: yielded() == 2, 60, what="the generator to go on after one value was taken")
    assert [ray.get(r) for r in gen] == [1, 2, 3, 4, 5]


def test_dropping_the_generator_lets_a_held_task_finish(driver, tmp_path):
    done = str(tmp_path / "done")

    @ray.remote(_generator_backpressure_num_objects=1)
    def held(done):
        for i in range(5):
            yield i
        touch(done)

    gen = held.remote(done)
    assert ray.get(next(gen)) == 0
    del gen
    gc.collect()
    wait_until(lambda: os.path.exists(done), 60, what="the generator to run to its end once dropped")


def test_a_worker_killed_mid_stream_is_retried_without_repeats(driver, tmp_path):
    pids = str(tmp_path / "pids")
    gate = str(tmp_path / "gate")

    @ray.remote(max_retries=1)
    def fragile(pids, gate):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        with open(pids) as f:
            attempt = len(f.read().split())
        for i in range(5):
            if i == 2 and attempt == 1:
                touch(gate)
                time.sleep(300)  # killed here
            yield i

    gen = fragile.remote(pids, gate)
    assert ray.get(next(gen)) == 0
    assert ray.get(next(gen)) == 1
    wait_for_file(gate)
    with open(pids) as f:
        os.kill(int(f.read().split()[0]), signal.SIGKILL)
    assert [ray.get(r, timeout=60) for r in gen] == [2, 3, 4]
    with open(pids) as f:
        assert len(f.read().split()) == 2


def test_cancel_ends_the_stream_with_the_cancellation(driver, tmp_path):
    gate = str(tmp_path / "gate")

    @ray.remote
    def waits(gate):
        yield "before"
        touch(gate)
        time.sleep(300)  # the cancel breaks the sleep, as Ray's KeyboardInterrupt
        yield "never"

    gen = waits.remote(gate)
    assert ray.get(next(gen)) == "before"
    wait_for_file(gate)
    ray.cancel(gen)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(next(gen), timeout=60)
    with pytest.raises(StopIteration):
        next(gen)


def test_generator_options_are_checked(driver):
    def gen_fn():
        yield 1

    with pytest.raises(ValueError, match="not .dynamic"):
        ray.remote(num_returns="dynamic", _generator_backpressure_num_objects=2)(gen_fn).remote()
    with pytest.raises(ValueError, match="_generator_backpressure_num_objects"):
        ray.remote(_generator_backpressure_num_objects=0)(gen_fn)

    @ray.remote(num_returns=1)
    def plain():
        return 1

    with pytest.raises(ValueError, match="streaming generators only"):
        plain.options(_generator_backpressure_num_objects=3).remote()
    with pytest.raises(ValueError, match="num_returns"):
        ray.method(num_returns="many")

    @ray.remote(num_returns="streaming")
    def not_a_generator():
        return 5

    gen = not_a_generator.remote()
    with pytest.raises(TypeError, match="not a generator"):
        ray.get(next(gen))

    g = ray.remote(gen_fn).remote()
    with pytest.raises(TypeError, match="ObjectRefGenerator"):
        pickle.dumps(g)
    with pytest.raises(TypeError):
        ray.get(g)
    assert [ray.get(r) for r in g] == [1]


def test_store_copies_of_values_are_freed_whether_taken_or_not(driver):
    """Values over 100 KiB live in the nodes' stores: those taken go when their refs go, those
    never taken when the generator goes, those yielded after it went at once."""
    def stored_objects():
        return sum(tool("stats", "--socket", store_of(r))["num_objects"] for r in raylets(driver))

    before = stored_objects()

    @ray.remote
    def blocks(n):
        for i in range(n):
            yield bytes([i]) * (200 * 1024)

    taken = [ray.get(r)[0] for r in blocks.remote(4)]
    assert taken == [0, 1, 2, 3]
    gen = blocks.remote(6)
    first = next(gen)
    assert ray.get(first)[0] == 0
    ray.get(gen.completed())  # all six are in stores now
    assert stored_objects() >= before + 6
    del first, gen
    gc.collect()
    wait_until(lambda: stored_objects() <= before, 60, what="every store copy of the values to be freed")


def test_dynamic_generators_return_one_ref_to_their_refs(driver):
    """Ray's num_returns="dynamic": one ref whose value is a DynamicObjectRefGenerator of the
    yielded values' refs; it can be passed to other tasks; an exception fails the one ref."""

    @ray.remote(num_returns="dynamic")
    def squares(n):
        for i in range(n):
            yield i * i

    ref = squares.remote(5)
    assert isinstance(ref, ray.ObjectRef)
    dyn = ray.get(ref)
    assert isinstance(dyn, ray.DynamicObjectRefGenerator)
    assert len(dyn) == 5
    assert [ray.get(r) for r in dyn] == [0, 1, 4, 9, 16]
    assert list(dyn) == []  # iterated once, as Ray's

    @ray.remote
    def total(dyn_refs):
        return sum(ray.get(list(dyn_refs)))

    assert ray.get(total.remote(ref)) == 30  # the refs travel inside the value, borrowed

    @ray.remote
    def big_blocks(n):
        for i in range(n):
            yield bytes([i]) * (200 * 1024)

    blocks = ray.get(big_blocks.options(num_returns="dynamic").remote(3))
    assert [ray.get(r)[0] for r in blocks] == [0, 1, 2]

    @ray.remote(num_returns="dynamic", max_retries=0)
    def fails():
        yield 1
        raise ValueError("dynamic boom")

    with pytest.raises(ValueError, match="dynamic boom"):
        ray.get(fails.remote())

    @ray.remote
    class Source:
        @ray.method(num_returns="dynamic")
        def items(self, n):
            for i in range(n):
                yield f"item{i}"

    s = Source.remote()
    assert [ray.get(r) for r in ray.get(s.items.remote(3))] == ["item0", "item1", "item2"]
