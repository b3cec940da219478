"""The state API and CLI (shoal.util.state, `shoal list|get|summary|timeline`), list_named_actors
and shoal.timeline on a three-node cluster with known contents, in the shape of Ray's
python/ray/tests/test_state_api.py, written for Shoal.

Task events reach the GCS in batches, so counts are awaited (bounded), never assumed at once.
"""
import json
import sys

import pytest

from conftest import PYTHON_DIR, wait_until

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal as ray  # noqa: E402
from shoal.util import state  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])

DEADLINE_S = 60


@ray.remote
def state_probe(x):
    return x


@ray.remote(max_retries=0)
def state_fails():
    raise ValueError("on purpose")


@ray.remote
class StateCounter:
    def ping(self):
        return "pong"


@pytest.fixture(scope="module")
def contents(three_nodes):
    """Known contents: 3 finished and 1 failed task, named actors in two namespaces, a group."""
    import os
    os.environ["SHOAL_AUTH_TOKEN"] = three_nodes.auth_token()
    ray.init(address=three_nodes.address, namespace="team-a")
    try:
        assert ray.get([state_probe.remote(i) for i in range(3)], timeout=DEADLINE_S) == [0, 1, 2]
        with pytest.raises(ValueError):
            ray.get(state_fails.remote(), timeout=DEADLINE_S)
        a = StateCounter.options(name="counter-a").remote()
        b = StateCounter.options(name="counter-b", namespace="team-b").remote()
        plain = StateCounter.remote()
        assert ray.get([a.ping.remote(), b.ping.remote(), plain.ping.remote()], timeout=DEADLINE_S) == ["pong"] * 3
        pg = ray.util.placement_group([{"CPU": 1}], name="state-group")
        assert pg.wait(DEADLINE_S)
        yield {"actors": [a, b, plain], "pg": pg, "cluster": three_nodes}
        ray.util.remove_placement_group(pg)
    finally:
        ray.shutdown()


def names_by_state(resource_rows, name_part):
    return sorted(r["state"] for r in resource_rows if name_part in r["name"])


def test_list_tasks_filters_and_counts(contents):
    def probes():
        rows = state.list_tasks(filters=[("state", "=", "FINISHED")], limit=1000)
        return [r for r in rows if "state_probe" in r["name"]]
    assert len(wait_until(lambda: len(probes()) == 3 and probes(), DEADLINE_S, what="3 finished probes")) == 3
    failed = wait_until(lambda: [r for r in state.list_tasks(filters=[("state", "=", "failed")]) if "state_fails" in
                                 r.name], DEADLINE_S, what="the failed task")
    assert failed[0]["error_type"] and failed[0].type == "NORMAL_TASK"
    not_finished = state.list_tasks(filters=[("state", "!=", "FINISHED")], limit=1000)
    assert all(r["state"] != "FINISHED" for r in not_finished)
    one = state.list_tasks(limit=1)
    assert len(one) == 1
    detailed = state.list_tasks(filters=[("task_id", "=", failed[0]["task_id"])], detail=True)
    assert detailed[0]["start_time_ms"] <= detailed[0]["end_time_ms"]
    assert state.get_task(failed[0]["task_id"])["state"] == "FAILED"
    summary = state.summarize_tasks()["cluster"]["summary"]
    probe = next(v for k, v in summary.items() if "state_probe" in k)
    assert probe["state_counts"].get("FINISHED") == 3


def test_list_actors_nodes_jobs_and_groups(contents):
    alive = state.list_actors(filters=[("state", "=", "ALIVE"), ("class_name", "=", "StateCounter")])
    assert len(alive) == 3
    by_name = {r["name"]: r for r in alive}
    assert by_name["counter-a"]["ray_namespace"] == "team-a"
    assert by_name["counter-b"]["ray_namespace"] == "team-b"
    one = state.get_actor(by_name["counter-a"]["actor_id"])
    assert one["class_name"] == "StateCounter" and "death_cause" in one
    assert state.get_actor(by_name["counter-a"]["actor_id"][:10])["actor_id"] == by_name["counter-a"]["actor_id"]
    assert state.get_actor("f" * 32) is None
    nodes = state.list_nodes(filters=[("state", "=", "ALIVE")])
    assert len(nodes) == 3 and sum(1 for n in nodes if n.is_head_node) == 1
    assert all(n["resources_total"]["CPU"] == 2.0 for n in nodes)
    jobs = state.list_jobs()
    assert any(j["status"] == "RUNNING" for j in jobs)
    groups = state.list_placement_groups(filters=[("name", "=", "state-group")], detail=True)
    assert len(groups) == 1 and groups[0]["state"] == "CREATED"
    assert groups[0]["bundles"][0]["unit_resources"] == {"CPU": 1.0}
    actors = state.summarize_actors()["cluster"]
    assert actors["summary"]["StateCounter"]["state_counts"]["ALIVE"] == 3


def test_list_named_actors(contents):
    assert ray.util.list_named_actors() == ["counter-a"]
    everywhere = ray.util.list_named_actors(all_namespaces=True)
    assert {"name": "counter-a", "namespace": "team-a"} in everywhere
    assert {"name": "counter-b", "namespace": "team-b"} in everywhere


def test_bad_state_queries_raise_clear_errors(contents):
    with pytest.raises(ValueError, match="colour"):
        state.list_actors(filters=[("colour", "=", "red")])
    with pytest.raises(ValueError, match="limit"):
        state.list_actors(limit=-1)
    with pytest.raises(ValueError, match="predicate"):
        state.list_actors(filters=[("state", ">", "1")])
    with pytest.raises(ValueError, match="triple"):
        state.list_actors(filters=["state=ALIVE"])
    with pytest.raises(ValueError, match="reference_type"):  # the error lists the objects' columns
        state.list_objects(filters=[("colour", "=", "red")])
    assert len(state.list_nodes()) == 3  # still connected and answering


def test_timeline_is_chrome_trace_json(contents, tmp_path):
    # The owner reports the end, the worker the start: both must have reached the GCS.
    wait_until(lambda: len([r for r in state.list_tasks(filters=[("state", "=", "FINISHED")], limit=1000, detail=True)
                            if "state_probe" in r["name"] and r["start_time_ms"] > 0]) == 3, DEADLINE_S,
               what="finished probes with their start times")
    path = tmp_path / "trace.json"
    assert ray.timeline(str(path)) is None
    events = json.loads(path.read_text())
    assert isinstance(events, list)
    probes = [e for e in events if "state_probe" in e["name"]]
    assert len(probes) == 3  # one complete event per finished task
    for e in probes:
        assert e["ph"] == "X" and e["dur"] >= 0 and e["pid"].startswith("Node ") and e["tid"].startswith("Worker ")
    finished = {r["task_id"] for r in state.list_tasks(filters=[("state", "=", "FINISHED")], limit=10000)}
    assert {e["args"]["task_id"] for e in probes} <= finished


def test_state_cli(contents, tmp_path):
    cluster = contents["cluster"]
    out = cluster.shoal("list", "actors", "--filter", "state=ALIVE", "--filter", "name=counter-a", "--format", "json")
    rows = json.loads(out.stdout)
    assert len(rows) == 1 and rows[0]["ray_namespace"] == "team-a"
    table = cluster.shoal("list", "nodes").stdout
    assert "Total: 3" in table and "NODE_ID" in table
    yaml = cluster.shoal("list", "placement-groups", "--detail", "--format", "yaml").stdout
    assert "state-group" in yaml and "unit_resources" in yaml
    got = cluster.shoal("get", "actors", rows[0]["actor_id"], "--format", "json").stdout
    assert json.loads(got)["name"] == "counter-a"
    summary = json.loads(cluster.shoal("summary", "actors", "--format", "json").stdout)
    assert summary["summary"]["StateCounter"]["state_counts"]["ALIVE"] == 3
    trace = tmp_path / "cli-trace.json"
    assert "written to" in cluster.shoal("timeline", "--output", trace).stdout
    assert isinstance(json.loads(trace.read_text()), list)
    # Bad input: usage errors naming the problem; nothing else happens.
    for args, words in [(("list", "gizmos"), "placement-groups"), (("list", "actors", "--limit", "-1"), "limit"),
                        (("list", "actors", "--filter", "colour=red"), "colour"),
                        (("list", "actors", "--format", "xml"), "format"), (("list", "runtime-envs"), "not supported"),
                        (("summary", "nodes"), "actors and objects"), (("memory", "--group-by", "STACK_TRACE"), "call sites"),
                        (("memory", "--units", "TB"), "--units"), (("get", "actors"), "id")]:
        proc = cluster.shoal(*args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert words in proc.stderr, (args, proc.stderr)


def test_explain_is_refused_not_ignored(contents):
    with pytest.raises(NotImplementedError, match="_explain"):
        state.list_actors(_explain=True)
    with pytest.raises(NotImplementedError, match="_explain"):
        state.summarize_tasks(_explain=True)
    assert state.summarize_tasks(raise_on_missing_output=False)["cluster"]["total_tasks"] >= 4


def test_list_workers_from_the_raylets(contents):
    """Workers (Ray's list_workers) come from every alive node's raylet: the actors' workers are
    there, LEASED, with live pids; filters, get_worker and the CLI work on them."""
    import json
    import os
    from conftest import process_alive
    actor_pids = {ray.get(a.__ray_call__.remote(lambda self: os.getpid())) for a in contents["actors"]}
    workers = state.list_workers(limit=1000)
    by_pid = {w["pid"]: w for w in workers}
    assert actor_pids <= set(by_pid), (actor_pids, workers)
    for pid in actor_pids:
        assert by_pid[pid]["state"] == "LEASED" and by_pid[pid]["is_alive"] is True
        assert process_alive(pid)
    node_ids = {n["node_id"] for n in state.list_nodes()}
    assert {w["node_id"] for w in workers} <= node_ids
    leased = state.list_workers(filters=[("state", "=", "LEASED")], limit=1000)
    assert {w["pid"] for w in leased} >= actor_pids and all(w["state"] == "LEASED" for w in leased)
    one = state.get_worker(by_pid[next(iter(actor_pids))]["worker_id"])
    assert one["pid"] in actor_pids and one["job_id"] and one["start_time_ms"] > 0
    out = contents["cluster"].shoal("list", "workers", "--filter", "state=LEASED", "--format", "json", "--limit", 1000)
    assert {w["pid"] for w in json.loads(out.stdout)} >= actor_pids


@ray.remote
def state_sleeper(seconds):
    import time
    time.sleep(seconds)
    return b"slept"


@ray.remote
def state_consume(value):
    return len(value)


@ray.remote
class StateHolder:
    def hold(self, refs):
        self.refs = refs  # borrowed: the refs inside a list are not resolved
        return len(refs)


def test_list_objects_from_every_process(contents):
    """Objects (Ray's list_objects / summarize_objects / `ray memory`): a row per process and
    object, with its size, reference type, task status and process."""
    import numpy as np
    big = ray.put(np.zeros(1 << 20, dtype=np.uint8))  # in the store
    small = ray.put(b"abc")                            # inline in the owner
    pending = state_sleeper.remote(30)
    consumer = state_consume.remote(pending)           # holds `pending` for its argument
    pending_id = pending.hex()
    del pending
    holder = StateHolder.remote()
    assert ray.get(holder.hold.remote([big]), timeout=DEADLINE_S) == 1

    def rows_of(ref_hex):
        return state.list_objects(filters=[("object_id", "=", ref_hex)], detail=True, limit=1000)

    [mine] = [r for r in rows_of(big.hex()) if r["type"] == "DRIVER"]
    assert mine["reference_type"] == "LOCAL_REFERENCE" and mine["task_status"] == "FINISHED"
    assert mine["object_size"] >= 1 << 20 and mine["in_store"] is True and mine["owned"] is True
    assert mine["stored_on_node"] in {n["node_id"] for n in state.list_nodes()}
    import os
    assert mine["pid"] == os.getpid() and mine["call_site"] == "disabled"
    # The actor borrows it: a WORKER row owned by this driver.
    wait_until(lambda: any(r["type"] == "WORKER" for r in rows_of(big.hex())), DEADLINE_S,
               what="the actor's borrowed reference")
    [borrowed] = [r for r in rows_of(big.hex()) if r["type"] == "WORKER"]
    assert borrowed["owned"] is False and borrowed["owner_address"] == mine["owner_address"]
    assert borrowed["task_status"] == "NIL" and borrowed["local_refs"] >= 1
    [inline] = rows_of(small.hex())
    assert inline["object_size"] > len(b"abc") - 1
    assert inline["in_store"] is False
    [waiting] = rows_of(pending_id)
    assert waiting["reference_type"] == "USED_BY_PENDING_TASK" and waiting["task_status"] == "PENDING"
    assert waiting["submitted_task_refs"] == 1 and waiting["local_refs"] == 0
    # get_objects: every row of one object; unknown ids: none.
    assert {r["type"] for r in state.get_objects(big.hex())} == {"DRIVER", "WORKER"}
    assert state.get_objects("ab" * 28) == []
    summary = state.summarize_objects()["cluster"]
    assert summary["callsite_enabled"] is False and summary["summary_by"] == "callsite"
    site = summary["summary"]["disabled"]
    assert site["total_objects"] >= 3 and site["total_size_mb"] >= 1.0
    assert site["ref_type_counts"]["LOCAL_REFERENCE"] >= 2 and site["ref_type_counts"]["USED_BY_PENDING_TASK"] >= 1
    assert site["total_num_workers"] >= 2

    cluster = contents["cluster"]
    listed = json.loads(cluster.shoal("list", "objects", "--filter", f"object_id={big.hex()}", "--format", "json").stdout)
    assert {r["type"] for r in listed} == {"DRIVER", "WORKER"}
    memory = cluster.shoal("memory", "--sort-by", "OBJECT_SIZE", "--units", "MB").stdout
    assert big.hex() in memory and "LOCAL_REFERENCE" in memory and "1.00 MB" in memory, memory
    assert "Aggregate object store stats" in memory and "% full" in memory
    assert "Objects on node" not in cluster.shoal("memory", "--stats-only").stdout
    assert "TOTAL_OBJECTS" in cluster.shoal("summary", "objects").stdout
    ray.cancel(consumer)  # its argument's task sleeps on; neither is needed any more
    # Freed objects leave the lists.
    del big
    ray.kill(holder)
    wait_until(lambda: not any(r["type"] == "DRIVER" for r in rows_of(mine["object_id"])), DEADLINE_S,
               what="the freed object to leave the driver's rows")
