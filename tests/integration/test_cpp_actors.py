"""Actors end to end through the C++ API: real clusters on loopback, driven by
tests/cpp/actor_driver.cc (shoal_actor_driver) and examples/cpp/actor_counter.cc.

Multi-node tests use three nodes:
    head    2 CPUs, no GPU
    node A  2 CPUs, 2 GPUs, custom resources A and W
    node B  2 CPUs, 1 GPU,  custom resources B and W
Waits are bounded; no test asserts a duration.
"""
import glob
import json
import os
import re
import signal
import subprocess

import pytest

import conftest
from conftest import BIN, assert_resources_back, last_json, node_with, process_alive, wait_until, worker_deaths

DRIVER = os.path.join(BIN, "shoal_actor_driver")


def start_three_nodes(cluster):
    conftest.start_three_nodes(cluster, gpus_a=2, gpus_b=1)


def run_driver(cluster, command, *args, timeout=120, expect_rc=0):
    return conftest.run_driver(DRIVER, cluster, command, *args, timeout=timeout, expect_rc=expect_rc)


def spawn_driver(cluster, command, *args):
    return cluster.spawn([DRIVER, command, "--address", cluster.address, *map(str, args)], stdin=subprocess.PIPE)


def first_line(proc):
    line = proc.stdout.readline()
    if not line:
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"driver exited {proc.returncode} early\nstdout: {out}\nstderr: {err[-4000:]}")
    return json.loads(line)


def finish(proc, timeout):
    """Lets a waiting driver go on, waits for it; answers (returncode, last JSON line)."""
    try:
        out, err = proc.communicate(input="go\n", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"driver did not finish within {timeout}s\nstdout: {out}\nstderr: {err[-4000:]}")
    return proc.returncode, (last_json(out) if out.strip() else {"stderr": err[-4000:]}), err


def test_thousand_calls_from_one_caller_run_in_order(cluster):
    cluster.start_head("--num-cpus", 2)
    out = run_driver(cluster, "ordered", "--n", 1000)
    assert out == {"n": 1000, "wrong": 0, "first": 1, "last": 1000, "doubled": 2000}
    assert_resources_back(cluster)


def test_many_callers_through_passed_handles_count_every_call(cluster):
    cluster.start_head("--num-cpus", 4)
    # 4 tasks and 1 actor method, each given the handle, plus the driver: 6 x 200 calls.
    out = run_driver(cluster, "callers", "--callers", 4, "--calls", 200)
    assert out["total"] == out["expected"] == 1200, out
    assert out["made"] == 1200
    assert_resources_back(cluster)


def test_half_gpu_actors_pack_two_per_declared_gpu(cluster):
    start_three_nodes(cluster)
    a = node_with(cluster, "A")["node_id"]
    out = run_driver(cluster, "gpu", "--actors", 4, "--gpu", 0.5, "--cpu", 0, "--resource", "A")
    actors = out["actors"]
    assert len(actors) == 4
    assert all(p["node"] == a for p in actors), actors
    per_device = {}
    for p in actors:
        per_device[p["cuda_visible_devices"]] = per_device.get(p["cuda_visible_devices"], 0) + 1
    assert per_device == {"0": 2, "1": 2}, actors
    assert len({p["pid"] for p in actors}) == 4  # one worker process per actor
    # A fifth half-GPU actor on node A waits until one of the four is killed, then gets its slot.
    assert out["extra_waited"], out
    assert out["extra_after_kill"]["cuda_visible_devices"] == actors[0]["cuda_visible_devices"], out
    assert_resources_back(cluster)


def test_killed_worker_restarts_the_actor_when_allowed(cluster):
    cluster.start_head("--num-cpus", 2)
    proc = spawn_driver(cluster, "die", "--max-restarts", 1)
    first = first_line(proc)
    assert first["first"] == 11
    os.kill(first["pid"], signal.SIGKILL)
    rc, out, err = finish(proc, 120)
    assert rc == 0, (out, err[-4000:])
    # The factory ran again on a new worker (state reset to 10), and the call went through.
    assert out["after"] == 11, out
    assert out["placement_after"]["pid"] != first["pid"]
    assert_resources_back(cluster)


def test_killed_worker_without_restarts_is_actor_died(cluster):
    cluster.start_head("--num-cpus", 2)
    proc = spawn_driver(cluster, "die", "--max-restarts", 0)
    first = first_line(proc)
    os.kill(first["pid"], signal.SIGKILL)
    rc, out, err = finish(proc, 120)
    assert rc == 1, (out, err[-4000:])
    assert out["error_type"] == "ActorDiedError", out
    assert "died" in out["error"], out
    assert_resources_back(cluster)


def test_killed_raylet_restarts_the_actor_on_another_node(cluster):
    start_three_nodes(cluster)
    proc = spawn_driver(cluster, "die", "--max-restarts", 1, "--resource", "W")
    first = first_line(proc)
    victim = next(n for n in cluster.alive_nodes() if n["node_id"] == first["node"])
    assert not victim["is_head"]
    os.kill(victim["raylet_pid"], signal.SIGKILL)
    # The worker dies with its raylet (PR_SET_PDEATHSIG), a moment after the raylet: a call made
    # before then rightly runs on the first incarnation (11 -> 12). Wait, so that the call below
    # can only be answered by the restarted actor.
    wait_until(lambda: not process_alive(first["pid"]), 20, what="the dead node's actor worker to exit")
    rc, out, err = finish(proc, 150)
    assert rc == 0, (out, err[-4000:])
    assert out["after"] == 11, out
    assert out["placement_after"]["node"] != first["node"], out
    assert out["placement_after"]["node"] in {n["node_id"] for n in cluster.alive_nodes()}
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="the node to be declared dead")
    assert_resources_back(cluster)


def test_named_detached_actor_is_found_from_a_second_driver(cluster):
    cluster.start_head("--num-cpus", 2)
    created = run_driver(cluster, "named-create", "--name", "shared", "--namespace", "ns1")
    assert created["value"] == 6
    assert "already exists" in created["duplicate_error"], created
    # The first driver has exited; the detached actor lives on and keeps its state.
    got = run_driver(cluster, "named-get", "--name", "shared", "--namespace", "ns1")
    assert got["id"] == created["id"]
    assert got["value"] == 7
    assert "shared" in got["other_namespace_error"], got
    assert "not a" in got["wrong_class_error"] and "Forwarder" in got["wrong_class_error"], got
    assert got["after_kill"] and "kill" in got["after_kill"].lower(), got
    assert got["gone"], got
    assert_resources_back(cluster)


def test_actor_dies_with_its_creator_unless_detached(cluster):
    cluster.start_head("--num-cpus", 2)
    created = run_driver(cluster, "named-create", "--name", "mortal", "--no-detached")
    assert created["value"] == 6
    out = run_driver(cluster, "named-gone", "--name", "mortal")
    assert out["gone"], out
    assert "mortal" in out["error"], out
    assert_resources_back(cluster)


def test_thousand_create_kill_cycles_leak_no_resources(cluster):
    cluster.start_head("--num-cpus", 2, "--num-gpus", 1)
    # Each batch of 4 (2 x 1 CPU, 2 x half a GPU) fits the node at once.
    out = run_driver(cluster, "cycles", "--n", 1000, "--batch", 4, timeout=600)
    assert out["n"] == 1000 and out["wrong"] == 0, out
    assert_resources_back(cluster)
    status = cluster.status()
    assert status["available"].get("CPU") == 2 and status["available"].get("GPU") == 1, status


def test_bad_input_is_a_clear_error_and_the_actor_survives(cluster):
    cluster.start_head("--num-cpus", 2)
    out = run_driver(cluster, "bad")
    assert "no-such-actor" in out["unknown_name"], out
    assert out["constructor"]["type"] == "ActorDiedError", out
    assert "no counter today" in out["constructor"]["what"], out
    assert out["method"] == {"type": "std::invalid_argument", "message": "bad input 7"}, out
    assert out["after"] == 2  # the actor carried on after its method threw
    assert "nil" in out["nil"]
    assert "already exists" in out["duplicate"], out
    assert out["get_if_exists_same"] is True
    assert out["get_if_exists_value"] == 42
    assert "max_concurrency" in out["bad_concurrency"], out
    assert_resources_back(cluster)


def test_spread_and_node_affinity_for_actors_through_the_cpp_api(cluster):
    start_three_nodes(cluster)
    a = node_with(cluster, "A")["node_id"]
    out = run_driver(cluster, "strategies", "--node", a)
    assert out["spread_nodes"] == 3, out
    assert out["pinned_node"] == a, out
    assert "cannot be scheduled" in out["too_big"], out
    assert_resources_back(cluster)


def test_concurrent_actor_runs_calls_at_once(cluster):
    cluster.start_head("--num-cpus", 2)
    out = run_driver(cluster, "concurrent")
    assert out["overlapped"], out


def test_concurrency_groups_from_cpp(cluster):
    cluster.start_head("--num-cpus", 2)
    out = run_driver(cluster, "groups")
    assert out["io_while_busy"], out            # the io group did not wait for the busy default group
    assert "concurrency group 'nope'" in out["unknown_group_error"], out
    assert out["after"] == 5, out               # the actor is fine after the refused call


def test_generator_methods_stream_values_and_errors_in_order(cluster):
    cluster.start_head("--num-cpus", 2)
    out = run_driver(cluster, "generators")
    assert out["values"] == [110, 120, 130, 140], out  # from the actor's state, in order
    assert out["ended_twice"] is True, out
    assert out["before_error"] == ["one", "two"], out
    assert "the method's generator broke" in out["error"], out
    assert out["after"] == 140, out                    # the actor lives on with its state


def test_actor_example(cluster):
    cluster.start_head("--num-cpus", 4)
    proc = subprocess.run([os.path.join(BIN, "shoal-example-actor-counter"), "--address", cluster.address],
                          env=cluster.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "in order: 101 102 103 104 105 106 107 108 109 110" in proc.stdout
    assert "after 4 tasks x 25 calls: 210" in proc.stdout
    assert "Add(-1) failed: std::invalid_argument" in proc.stdout
    assert "by name: 210" in proc.stdout
    assert "after Kill: ActorDiedError" in proc.stdout


def test_a_crashed_worker_leaves_its_stack_trace_in_its_log(cluster):
    """Shoal's C++ processes print a fatal signal's stack trace to their log, and the raylet says
    which worker died of what and where its log is (what the harness prints when a test fails)."""
    cluster.start_head("--num-cpus", 1)
    run_driver(cluster, "named-create", "--name", "crashes", "--namespace", "ns1")  # detached: outlives the driver
    started = []
    for log in glob.glob(os.path.join(cluster.root, "session_*", "logs", "raylet*.log")):
        with open(log) as f:
            started += [int(m) for m in re.findall(r"started worker \w+ \(pid (\d+)\)", f.read())]
    alive = sorted({pid for pid in started if process_alive(pid)})
    assert len(alive) == 1, started
    os.kill(alive[0], signal.SIGSEGV)
    wait_until(lambda: "killed by signal 11" in worker_deaths(cluster.root), 30, what="the raylet to see the crash")
    deaths = worker_deaths(cluster.root)
    assert "*** SIGSEGV (signal 11) received" in deaths, deaths
    assert "shoal_actor_driver(" in deaths, deaths  # the stack names the worker's frames
