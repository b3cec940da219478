"""ray._private.test_utils for the Shoal measure: the public-API helpers of ray._common.test_utils."""
from ray._common.test_utils import *  # noqa: F401,F403
from ray._common.test_utils import (  # noqa: F401
    SignalActor, Semaphore, client_test_enabled, wait_for_condition, async_wait_for_condition,
    wait_for_pid_to_exit, run_string_as_driver, run_string_as_driver_nonblocking,
    kill_actor_and_wait_for_failure, placement_group_assert_no_leak)
