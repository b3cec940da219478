"""Placement groups end to end (issue 13): a head that schedules nothing plus worker raylets on
this machine, driven from Python as a user would (`import shoal`, Ray's names).

What is checked: the four strategies place bundles as promised (STRICT_SPREAD one per node,
STRICT_PACK of two half GPUs on one device), tasks and actors in a bundle use the bundle's
resources (and its GPU device), a group that fits nowhere waits PENDING and is created when a
fitting node joins, a raylet killed with kill -9 sends its bundles elsewhere (RESCHEDULING ->
CREATED) and an actor with restarts comes back inside the group, removal kills the group's
actors and tasks and returns every CPU and GPU share, Redis-backed groups survive a GCS restart,
and bad input is refused with clear errors while every process stays alive.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import (PYTHON_DIR, assert_resources_back, process_alive, restart_gcs, resources_all_back,
                      wait_until)


def shoal_module():
    if PYTHON_DIR not in sys.path:
        sys.path.insert(0, PYTHON_DIR)
    import shoal
    return shoal


def head_and_workers(cluster, workers, head_args=()):
    """A head that runs nothing plus `workers` worker nodes (lists of `shoal start` args)."""
    cluster.start_head("--num-cpus", 2, "--num-gpus", 0, "--no-head-scheduling", *head_args)
    for args in workers:
        cluster.start_worker(*args)
    wait_until(lambda: len(cluster.alive_nodes()) == 1 + len(workers), 30,
               what=f"{1 + len(workers)} alive nodes")


def gpu_worker(tag):
    return ["--num-cpus", 2, "--num-gpus", 1, "--resources", json.dumps({tag: 100})]


@pytest.fixture
def shoal(cluster):
    """`shoal` as this process's driver of `cluster` (started by the test first)."""
    module = shoal_module()
    yield module
    if module.is_initialized():
        module.shutdown()


def where_fn(shoal):
    @shoal.remote
    def where():
        import os
        import shoal as s
        pg = s.util.get_current_placement_group()
        return {"node": s.get_runtime_context().get_node_id(),
                "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                "pg": pg.id.hex() if pg else None}
    return where


def in_bundle(shoal, pg, index=-1, capture=None):
    from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index,
                                            placement_group_capture_child_tasks=capture)


def test_strict_spread_puts_one_bundle_on_each_gpu_node(cluster, shoal):
    head_and_workers(cluster, [gpu_worker("A"), gpu_worker("B")])
    shoal.init(address=cluster.address)
    pg = shoal.util.placement_group([{"CPU": 1, "GPU": 1}] * 2, strategy="STRICT_SPREAD", name="spread")
    assert shoal.get(pg.ready(), timeout=60) == pg
    table = shoal.util.placement_group_table(pg)
    assert table["state"] == "CREATED" and table["strategy"] == "STRICT_SPREAD"
    nodes = table["bundles_to_node_id"]
    assert len(set(nodes.values())) == 2, table
    head = next(n for n in cluster.alive_nodes() if n["is_head"])["node_id"]
    assert head not in nodes.values()

    where = where_fn(shoal)
    seen = shoal.get([where.options(num_gpus=1, scheduling_strategy=in_bundle(shoal, pg, i)).remote()
                      for i in range(2)], timeout=60)
    assert [s["node"] for s in seen] == [nodes[0], nodes[1]]
    assert all(s["gpus"] == "0" and s["pg"] == pg.id.hex() for s in seen), seen
    assert shoal.util.get_placement_group("spread") == pg

    shoal.util.remove_placement_group(pg)
    assert shoal.util.placement_group_table(pg)["state"] == "REMOVED"
    assert_resources_back(cluster)


def test_strict_pack_of_two_half_gpus_shares_one_device(cluster, shoal):
    head_and_workers(cluster, [gpu_worker("A"), gpu_worker("B")])
    shoal.init(address=cluster.address)
    pg = shoal.util.placement_group([{"CPU": 0.5, "GPU": 0.5}] * 2, strategy="STRICT_PACK")
    assert pg.wait(60)
    nodes = shoal.util.placement_group_table(pg)["bundles_to_node_id"]
    assert nodes[0] == nodes[1]

    # Both bundles' tasks run at once on the same device, each with its half.
    @shoal.remote
    def hold(seconds):
        import os
        import time
        import shoal as s
        start = time.time()
        time.sleep(seconds)
        return {"node": s.get_runtime_context().get_node_id(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "start": start, "end": time.time()}

    runs = shoal.get([hold.options(num_cpus=0.5, num_gpus=0.5, scheduling_strategy=in_bundle(shoal, pg, i))
                      .remote(2) for i in range(2)], timeout=60)
    assert {r["node"] for r in runs} == {nodes[0]}
    assert runs[0]["gpus"] == runs[1]["gpus"] == "0"
    assert runs[0]["start"] < runs[1]["end"] and runs[1]["start"] < runs[0]["end"], runs

    # While the group holds the device's halves, the node's own pool has no GPU left for others.
    node = next(n for n in cluster.alive_nodes() if n["node_id"] == nodes[0])
    assert node["resources_available"].get("GPU", 0) == 0

    # A request larger than its bundle is refused at once, naming the bundle.
    with pytest.raises(ValueError, match="cannot fit into any bundles for the placement group, \\[\\{.CPU.: 0.5, .GPU.: 0.5\\}"):
        hold.options(num_gpus=1, scheduling_strategy=in_bundle(shoal, pg, 0)).remote(0)
    with pytest.raises(ValueError, match="out of range"):
        hold.options(num_cpus=0.5, scheduling_strategy=in_bundle(shoal, pg, 2)).remote(0)

    shoal.util.remove_placement_group(pg)
    assert_resources_back(cluster)


def test_group_that_fits_nowhere_waits_pending_until_a_node_joins(cluster, shoal):
    head_and_workers(cluster, [["--num-cpus", 2, "--num-gpus", 0]])
    shoal.init(address=cluster.address)
    pg = shoal.util.placement_group([{"CPU": 3}, {"CPU": 1}], strategy="STRICT_PACK")
    assert not pg.wait(2)
    entry = shoal.util.placement_group_table(pg)
    assert entry["state"] == "PENDING"
    assert entry["stats"]["infeasible"], entry
    # `shoal status` lists it as demand that no node can hold.
    status = cluster.shoal("status", "--address", cluster.address).stdout
    assert "infeasible" in status.lower() and "{CPU: 3}" in status, status

    cluster.start_worker("--num-cpus", 4, "--num-gpus", 0)
    assert pg.wait(60)
    entry = shoal.util.placement_group_table(pg)
    assert entry["state"] == "CREATED"
    big = next(n for n in cluster.alive_nodes() if n["resources_total"].get("CPU") == 4)
    assert set(entry["bundles_to_node_id"].values()) == {big["node_id"]}
    shoal.util.remove_placement_group(pg)
    assert_resources_back(cluster)


def test_killed_raylet_reschedules_bundles_and_actor_comes_back_in_the_group(cluster, shoal):
    head_and_workers(cluster, [["--num-cpus", 2], ["--num-cpus", 2]])
    shoal.init(address=cluster.address)
    pg = shoal.util.placement_group([{"CPU": 1}], strategy="PACK")
    assert pg.wait(60)
    first = shoal.util.placement_group_table(pg)["bundles_to_node_id"][0]

    @shoal.remote(max_restarts=-1, max_task_retries=-1)
    class Member:
        def where(self):
            import shoal as s
            pg = s.util.get_current_placement_group()
            return s.get_runtime_context().get_node_id(), (pg.id.hex() if pg else None)

    member = Member.options(num_cpus=1, scheduling_strategy=in_bundle(shoal, pg, 0)).remote()
    assert shoal.get(member.where.remote(), timeout=60) == (first, pg.id.hex())

    raylet = next(n for n in cluster.alive_nodes() if n["node_id"] == first)
    os.kill(raylet["raylet_pid"], signal.SIGKILL)
    states = set()

    def moved():
        entry = shoal.util.placement_group_table(pg)
        states.add(entry["state"])
        node = entry["bundles_to_node_id"].get(0)
        return entry["state"] == "CREATED" and node and node != first and node

    second = wait_until(moved, 90, interval=0.05, what="the bundle to be placed on the surviving node")
    assert shoal.get(member.where.remote(), timeout=90) == (second, pg.id.hex())
    shoal.util.remove_placement_group(pg)
    assert_resources_back(cluster)


def test_removal_kills_the_groups_actors_and_tasks_and_returns_everything(cluster, shoal):
    head_and_workers(cluster, [gpu_worker("A")])
    shoal.init(address=cluster.address)
    pg = shoal.util.placement_group([{"CPU": 1, "GPU": 0.5}, {"CPU": 1}], strategy="PACK")
    assert pg.wait(60)

    @shoal.remote
    class Holder:
        def ping(self):
            return "pong"

    @shoal.remote
    def sleeper():
        import time
        time.sleep(120)

    holder = Holder.options(num_cpus=1, num_gpus=0.5, scheduling_strategy=in_bundle(shoal, pg, 0)).remote()
    assert shoal.get(holder.ping.remote(), timeout=60) == "pong"
    task = sleeper.options(num_cpus=1, max_retries=3, scheduling_strategy=in_bundle(shoal, pg, 1)).remote()
    time.sleep(1.0)  # let it start

    shoal.util.remove_placement_group(pg)
    with pytest.raises(shoal.exceptions.ActorDiedError):
        shoal.get(holder.ping.remote(), timeout=60)
    with pytest.raises(shoal.exceptions.TaskPlacementGroupRemoved):
        shoal.get(task, timeout=60)
    # Nothing more may be scheduled in it.
    with pytest.raises(Exception, match="removed"):
        sleeper.options(scheduling_strategy=in_bundle(shoal, pg)).remote()
    assert_resources_back(cluster)


def test_capture_child_tasks_and_the_current_group(cluster, shoal):
    head_and_workers(cluster, [["--num-cpus", 2]])
    shoal.init(address=cluster.address)
    pg = shoal.util.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    shoal.get(pg.ready(), timeout=60)

    @shoal.remote(num_cpus=0)
    def child():
        import shoal as s
        pg = s.util.get_current_placement_group()
        return pg.id.hex() if pg else None

    @shoal.remote(num_cpus=1)
    def parent():
        import shoal as s
        captured = s.get(child.remote())
        outside = s.get(child.options(scheduling_strategy="DEFAULT").remote())
        return captured, outside

    assert shoal.util.get_current_placement_group() is None  # a driver runs in no group
    captured, outside = shoal.get(parent.options(scheduling_strategy=in_bundle(shoal, pg, 0, capture=True))
                                  .remote(), timeout=60)
    assert captured == pg.id.hex() and outside is None
    # Without capture, children run outside the group.
    captured, _ = shoal.get(parent.options(scheduling_strategy=in_bundle(shoal, pg, 0)).remote(), timeout=60)
    assert captured is None
    # Ray's older spelling: the placement_group option.
    assert shoal.get(child.options(placement_group=pg, placement_group_bundle_index=1).remote(),
                     timeout=60) == pg.id.hex()
    shoal.util.remove_placement_group(pg)
    assert_resources_back(cluster)


def test_bad_input_is_refused_and_nothing_is_reserved(cluster, shoal):
    head_and_workers(cluster, [["--num-cpus", 2]])
    shoal.init(address=cluster.address)
    util = shoal.util
    cases = [
        (lambda: util.placement_group([]), "empty list"),
        (lambda: util.placement_group([{}]), "empty dictionary"),
        (lambda: util.placement_group([{"CPU": 0}]), "only 0 values"),
        (lambda: util.placement_group([{"CPU": -1}]), ">= 0"),
        (lambda: util.placement_group([{"CPU": "two"}]), "must be a number"),
        (lambda: util.placement_group([{"GPU": 1.5}]), "whole"),
        (lambda: util.placement_group([{"CPU": 1}], strategy="RANDOM"), "Invalid placement group strategy"),
        (lambda: util.placement_group([{"CPU": 1}], lifetime="forever"), "lifetime"),
        (lambda: util.placement_group("CPU"), "must be list"),
        (lambda: util.get_placement_group("nobody"), "Failed to look up"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()

    named = util.placement_group([{"CPU": 1}], name="only-one")
    assert named.wait(60)
    with pytest.raises(ValueError, match="only-one"):
        util.placement_group([{"CPU": 1}], name="only-one")

    @shoal.remote
    def f():
        return 1

    from shoal.util.placement_group import PlacementGroup
    unknown = PlacementGroup("ab" * 18, [{"CPU": 1}])
    with pytest.raises(ValueError, match="does not exist"):
        f.options(scheduling_strategy=in_bundle(shoal, unknown)).remote()
    with pytest.raises(ValueError, match="bundle_index"):
        f.options(scheduling_strategy=in_bundle(shoal, named, -2)).remote()
    with pytest.raises(ValueError, match="scheduling_strategy"):
        f.options(placement_group=named, scheduling_strategy="SPREAD").remote()
    with pytest.raises(ValueError, match="Cannot schedule .*f with the placement group because the resource request \\{.CPU.: 2\\} cannot fit"):
        f.options(num_cpus=2, scheduling_strategy=in_bundle(shoal, named)).remote()
    assert shoal.get(f.options(scheduling_strategy=in_bundle(shoal, named)).remote(), timeout=60) == 1

    util.remove_placement_group(named)
    util.remove_placement_group(named)  # twice: no error
    pids = cluster.recorded_pids()
    assert all(process_alive(p) for name in ("gcs", "raylet") for p in pids[name])
    assert_resources_back(cluster)
    # The name is free again once the group is removed.
    again = util.placement_group([{"CPU": 1}], name="only-one")
    assert again.wait(60)
    util.remove_placement_group(again)


def run_python(cluster, body):
    """Runs `body` in a fresh Python driver of the cluster; answers the JSON it prints last."""
    script = textwrap.dedent(f"""
        import json, os, shoal
        shoal.init(address="{cluster.address}")
    """) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], env=dict(cluster.env, PYTHONPATH=PYTHON_DIR),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"driver exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_groups_made_and_removed_without_waiting_are_read_back_at_once(cluster, shoal):
    """An unnamed group is registered, and a group this process made is removed, without waiting
    for the GCS (issue 17); whatever this process does next sees them as a blocking call would
    have left them (Ray's calls block)."""
    head_and_workers(cluster, [["--num-cpus", 2, "--resources", json.dumps({"slot": 100})]])
    shoal.init(address=cluster.address)
    from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pgs = [shoal.util.placement_group([{"slot": 0.5}]) for _ in range(40)]
    states = [shoal.util.placement_group_table(pg).get("state") for pg in pgs]
    assert len(states) == 40 and set(states) <= {"PENDING", "CREATED"}, states
    assert {pg.id.hex() for pg in pgs} <= set(shoal.util.placement_group_table())

    @shoal.remote(num_cpus=0, resources={"slot": 0.5})
    def inside():
        import shoal as s
        return s.util.get_current_placement_group().id.hex()

    # A group handed to a task the moment it is made is known to the GCS when the task looks.
    @shoal.remote(num_cpus=0)
    def state_of(group):
        import shoal as s
        return s.util.placement_group_table(group).get("state")

    handed = shoal.util.placement_group([{"slot": 0.5}])
    assert shoal.get(state_of.remote(handed), timeout=60) in {"PENDING", "CREATED"}
    shoal.util.remove_placement_group(handed)

    # A task sent into a group the moment it is made runs in it.
    fresh = shoal.util.placement_group([{"slot": 0.5}])
    strategy = PlacementGroupSchedulingStrategy(fresh, 0)
    assert shoal.get(inside.options(scheduling_strategy=strategy).remote(), timeout=60) == fresh.id.hex()
    assert all(pg.wait(60) for pg in pgs)

    for pg in pgs + [fresh]:
        shoal.util.remove_placement_group(pg)
    assert {shoal.util.placement_group_table(pg)["state"] for pg in pgs + [fresh]} == {"REMOVED"}
    with pytest.raises(ValueError, match="removed"):
        pgs[0].wait(5)
    with pytest.raises(Exception, match="removed"):
        inside.options(scheduling_strategy=strategy).remote()
    shoal.util.remove_placement_group(pgs[1])  # again: no error, as in Ray

    # A named group removed without waiting frees its name for this process at once.
    named = shoal.util.placement_group([{"slot": 0.5}], name="again")
    assert named.wait(60)
    shoal.util.remove_placement_group(named)
    renamed = shoal.util.placement_group([{"slot": 0.5}], name="again")
    assert shoal.util.get_placement_group("again").id == renamed.id
    shoal.util.remove_placement_group(renamed)
    assert_resources_back(cluster)


def test_a_driver_that_ends_right_after_making_groups_leaves_none_behind(cluster, shoal):
    head_and_workers(cluster, [["--num-cpus", 2]])
    made = run_python(cluster, """
        pgs = [shoal.util.placement_group([{"CPU": 0.01}]) for _ in range(300)]
        shoal.shutdown()  # at once: every group it made reaches the GCS before its job's end removes them
        print(json.dumps({"ids": [pg.id.hex() for pg in pgs]}))
    """)
    shoal.init(address=cluster.address)

    def states():
        table = shoal.util.placement_group_table()
        return {table[i]["state"] if i in table else "missing" for i in made["ids"]}

    wait_until(lambda: states() == {"REMOVED"}, 30, what="the ended job's groups to be removed")
    assert_resources_back(cluster)


def test_detached_groups_survive_a_redis_gcs_restart(cluster, redis_server):
    redis = f"127.0.0.1:{redis_server.port}"
    head_and_workers(cluster, [["--num-cpus", 2]], head_args=("--redis-address", redis))
    created = run_python(cluster, """
        pg = shoal.util.placement_group([{"CPU": 1}], name="kept", lifetime="detached")
        assert pg.wait(60)
        print(json.dumps({"id": pg.id.hex(), "node": shoal.util.placement_group_table(pg)["bundles_to_node_id"][0]}))
    """)
    gcs = cluster.recorded_pids()["gcs"][0]
    os.kill(gcs, signal.SIGKILL)
    wait_until(lambda: not process_alive(gcs), 10, what="the GCS to die")
    restart_gcs(cluster, "--redis-address", redis)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 60, what="the nodes to be back")
    after = run_python(cluster, """
        pg = shoal.util.get_placement_group("kept")
        entry = shoal.util.placement_group_table(pg)

        @shoal.remote
        def where():
            return shoal.get_runtime_context().get_node_id()

        from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        node = shoal.get(where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(), timeout=60)
        shoal.util.remove_placement_group(pg)
        print(json.dumps({"id": pg.id.hex(), "state": entry["state"], "node": node}))
    """)
    assert after == {"id": created["id"], "state": "CREATED", "node": created["node"]}
    assert_resources_back(cluster)


def test_a_group_made_while_the_gcs_is_down_is_created_when_it_returns(cluster, redis_server):
    """An unnamed group's creation is sent without waiting (issue 17). Made while the GCS is down,
    it cannot reach it: a task submitted next waits for it only a bounded time (with a warning on
    stderr, none on the program's stdout), and the creation is sent again until the restarted GCS
    takes it."""
    redis = f"127.0.0.1:{redis_server.port}"
    head_and_workers(cluster, [["--num-cpus", 2]], head_args=("--redis-address", redis))
    script = textwrap.dedent(f"""
        import json, sys, shoal
        shoal.init(address="{cluster.address}")

        @shoal.remote(num_cpus=0.1)
        def square(x):
            return x * x

        assert shoal.get(square.remote(3), timeout=60) == 9  # exported and a worker warm, with the GCS up
        print("ready", flush=True)
        sys.stdin.readline()  # the GCS is dead now
        pg = shoal.util.placement_group([{{"CPU": 0.5}}])
        ref = square.remote(4)  # waits for the creation a bounded time, then goes on
        print("submitted", flush=True)
        value = shoal.get(ref, timeout=120)
        created = pg.wait(120)
        state = shoal.util.placement_group_table(pg)["state"]
        shoal.util.remove_placement_group(pg)
        print(json.dumps({{"value": value, "created": created, "state": state}}), flush=True)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], env=dict(cluster.env, PYTHONPATH=PYTHON_DIR),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in driver.stdout], daemon=True).start()

    def next_line():
        try:
            return lines.get(timeout=60)
        except queue.Empty:
            return "(no line within 60 s)"

    try:
        assert next_line() == "ready"
        gcs = cluster.recorded_pids()["gcs"][0]
        os.kill(gcs, signal.SIGKILL)
        wait_until(lambda: not process_alive(gcs), 10, what="the GCS to die")
        driver.stdin.write("go\n")
        driver.stdin.flush()
        # The submission returns while the GCS is still dead: its wait for the creation is bounded.
        assert next_line() == "submitted"
        restart_gcs(cluster, "--redis-address", redis)
        driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    err = driver.stderr.read()
    assert driver.returncode == 0, err[-3000:]
    assert json.loads(next_line()) == {"value": 16, "created": True, "state": "CREATED"}
    assert "still unanswered by the GCS after 5s; going on" in err
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 60, what="the nodes back under the new GCS")
    assert_resources_back(cluster)


def test_cpp_api_strict_spread_and_bad_input(cluster):
    from conftest import BIN, run_driver
    head_and_workers(cluster, [gpu_worker("A"), gpu_worker("B")])
    out = run_driver(os.path.join(BIN, "shoal_task_driver"), cluster, "placement-group", timeout=120)
    assert out["created"] and out["state"] == "CREATED" and out["by_name"]
    nodes = out["bundle_nodes"]
    assert len(set(nodes)) == 2 and all(nodes), out
    assert [r["node"] for r in out["runs"]] == nodes
    assert all(r["cuda_visible_devices"] == "0" for r in out["runs"]), out
    errors = {c["case"]: c["error"] for c in out["refused"]}
    assert "cannot fit in bundle 0" in errors["too large"]
    assert "out of range" in errors["bad index"]
    assert "at least one bundle" in errors["no bundles"]
    assert "bundle 0 is empty" in errors["empty bundle"]
    assert errors["duplicate name"] and "cpp-group" in errors["duplicate name"]
    assert "nobody" in errors["unknown name"]
    assert out["after_remove"] == "REMOVED"
    assert_resources_back(cluster)


def test_bundle_label_selector_places_each_bundle_on_a_matching_node(cluster, shoal):
    head_and_workers(cluster, [["--num-cpus", 2, "--labels", '{"zone": "a"}'],
                               ["--num-cpus", 2, "--labels", '{"zone": "b"}']])
    shoal.init(address=cluster.address)
    zone = {n["node_id"]: n.get("labels", {}).get("zone") for n in cluster.alive_nodes()}
    pg = shoal.util.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD",
                                    bundle_label_selector=[{"zone": "b"}, {"zone": "in(a)"}])
    assert pg.wait(60)
    nodes = shoal.util.placement_group_table(pg)["bundles_to_node_id"]
    assert [zone[nodes[0]], zone[nodes[1]]] == ["b", "a"], (nodes, zone)
    # No node matches: the group waits.
    nowhere = shoal.util.placement_group([{"CPU": 1}], bundle_label_selector=[{"zone": "c"}])
    assert not nowhere.wait(2)
    assert shoal.util.placement_group_table(nowhere)["state"] == "PENDING"
    with pytest.raises(ValueError, match="one dict per bundle"):
        shoal.util.placement_group([{"CPU": 1}], bundle_label_selector=[{"zone": "a"}, {"zone": "b"}])
    with pytest.raises(ValueError, match="zone"):
        shoal.util.placement_group([{"CPU": 1}], bundle_label_selector=[{"zone": "in(a"}])
    shoal.util.remove_placement_group(pg)
    shoal.util.remove_placement_group(nowhere)
    assert_resources_back(cluster)


def test_requests_that_cannot_fit_a_group_are_refused_as_in_ray(driver):
    import shoal
    from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy as InGroup
    with pytest.raises(ValueError, match="reserves"):
        shoal.util.placement_group([{"bundle": 1}])
    pg = shoal.util.placement_group([{"A": 1}])  # no CPU in the bundle
    assert pg.wait(60)

    @shoal.remote
    class Plain:
        def ready(self):
            return True

    # An actor that does not say its CPUs needs 1 to be placed (Ray's rule), which this bundle lacks.
    with pytest.raises(ValueError, match="resource request \\{'CPU': 1\\} cannot fit"):
        Plain.options(scheduling_strategy=InGroup(pg)).remote()
    with pytest.raises(ValueError, match="cannot fit"):
        Plain.options(num_cpus=0, resources={"A": 2}, scheduling_strategy=InGroup(pg)).remote()
    with pytest.raises(ValueError, match="reserves"):
        Plain.options(resources={"bundle": 1}, scheduling_strategy=InGroup(pg)).remote()
    a = Plain.options(num_cpus=0, resources={"A": 1}, scheduling_strategy=InGroup(pg)).remote()
    assert shoal.get(a.ready.remote(), timeout=60)
    shoal.kill(a)
    shoal.util.remove_placement_group(pg)
