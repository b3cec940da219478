"""Helpers that tests' tasks and actors call on workers. Workers cannot import test modules, so a
test module that uses these registers this module for pickling by value:

    import task_helpers
    cloudpickle.register_pickle_by_value(task_helpers)
"""
import os
import time


def wait_for_file(path, timeout=60):
    """In a task or actor: blocks until `path` exists (the test creates it to release it)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def touch(path):
    open(path, "w").close()
