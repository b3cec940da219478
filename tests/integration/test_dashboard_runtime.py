"""The dashboard with a real workload: a submitted Python job that runs Shoal tasks and an actor,
then the actors, tasks and object-store figures it shows (/api/cluster_status, /metrics)."""
import json
import os
import re
import sys

import pytest

from conftest import REPO, wait_until

PYTHON_DIR = os.path.join(REPO, "build", "python")
JOB_DEADLINE_S = 120  # polling bound on a loaded machine, never an asserted duration

JOB_SCRIPT = """
import os
import numpy as np
import shoal

shoal.init()  # joins the cluster through SHOAL_ADDRESS, set by the job supervisor

@shoal.remote
def square(x):
    print(f"squaring {x}")
    return x * x

@shoal.remote
class Tally:
    def __init__(self):
        self.total = 0
    def add(self, x):
        self.total += x
        return self.total

tally = Tally.options(name="tally", lifetime="detached").remote()
values = shoal.get([square.remote(i) for i in range(20)])
for v in values:
    tally.add.remote(v)
print("TOTAL", shoal.get(tally.add.remote(0)))
print("CONFIG", open("config.txt").read().strip(), os.environ["MODE"])
keep = shoal.put(np.ones(2_000_000))  # 16 MB in the head's object store while the job runs
print("STORED", shoal.get(keep).sum())
"""


@pytest.fixture
def head(cluster):
    cluster.start_head("--num-cpus", 2, "--num-gpus", 0, dashboard=True)
    cluster.start_worker("--num-cpus", 2)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="2 alive nodes")
    return cluster


def metrics(cluster):
    from prometheus_client.parser import text_string_to_metric_families
    status, text = cluster.api("GET", "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def test_python_job_runs_tasks_and_actor_and_shows_on_dashboard(head, tmp_path):
    pytest.importorskip("prometheus_client")
    work = tmp_path / "job"
    work.mkdir()
    (work / "main.py").write_text(JOB_SCRIPT)
    (work / "config.txt").write_text("from-working-dir\n")
    runtime_env = {"env_vars": {"MODE": "batch", "PYTHONPATH": PYTHON_DIR}}
    proc = head.shoal("job", "submit", "--working-dir", work, "--runtime-env-json", json.dumps(runtime_env),
                      "--", sys.executable, "main.py", timeout=JOB_DEADLINE_S, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TOTAL 2470" in proc.stdout  # sum of squares 0..19
    assert "CONFIG from-working-dir batch" in proc.stdout
    assert "STORED 2000000.0" in proc.stdout
    assert re.search(r"\(square pid=\d+\) squaring 7", proc.stdout), proc.stdout  # task output reached the job log
    job_id = re.search(r"Job '([^']+)' submitted", proc.stdout).group(1)
    status, job = head.api("GET", f"/api/jobs/{job_id}")
    assert job["status"] == "SUCCEEDED"

    # The detached actor outlives the job and shows in the actor table; the tasks show too.
    def cluster_status():
        code, body = head.api("GET", "/api/cluster_status")
        assert code == 200
        return body

    body = wait_until(lambda: (b := cluster_status()) and b["tasks"] and b["actors"] and b, 30,
                      what="tasks and actors in /api/cluster_status")
    tally = [a for a in body["actors"] if a["name"] == "tally"]
    assert tally and tally[0]["state"] == "ALIVE" and tally[0]["class_name"] == "Tally"
    names = {t["name"] for t in body["tasks"]}
    assert "square" in names or "add" in names
    wait_until(lambda: cluster_status()["tasks_by_state"].get("FINISHED", 0) >= 20, 30,
               what="the job's tasks to count as FINISHED")

    samples = wait_until(lambda: (m := metrics(head)) and
                         sum(v for labels, v in m.get("shoal_tasks", []) if labels["state"] == "FINISHED") >= 20 and m,
                         30, what="shoal_tasks{state=FINISHED} >= 20")
    alive_actors = sum(v for labels, v in samples["shoal_actors"] if labels["state"] == "ALIVE")
    assert alive_actors >= 1
    store = {(labels["node_id"], labels["kind"]): v for labels, v in samples["shoal_object_store_bytes"]}
    node_ids = {n["node_id"] for n in head.alive_nodes()}
    assert {node for node, _ in store} == node_ids
    for node in node_ids:
        assert store[(node, "capacity")] > 0
        assert 0 <= store[(node, "used")] <= store[(node, "capacity")]
    # gRPC calls served, by component and method, with latency histograms.
    calls = {(labels["component"], labels["method"]): v for labels, v in samples["shoal_rpc_requests_total"]
             if labels["code"] == "0"}
    assert calls[("gcs", "/shoal.rpc.ActorService/RegisterActor")] >= 1
    assert calls[("gcs", "/shoal.rpc.KVService/Put")] >= 1
    assert any(c == "raylet" and m.endswith("/RequestWorkerLease") and v >= 1 for (c, m), v in calls.items())
    counts = {(l["component"], l["method"]): v for l, v in samples["shoal_rpc_latency_seconds_count"]}
    assert counts[("gcs", "/shoal.rpc.ActorService/RegisterActor")] >= 1


def test_fractional_gpu_use_per_device_on_dashboard(cluster):
    pytest.importorskip("prometheus_client")
    cluster.start_head("--num-cpus", 2, "--num-gpus", 2, dashboard=True)
    sys.path.insert(0, PYTHON_DIR)
    import shoal
    shoal.init(address=cluster.address)
    try:
        @shoal.remote(num_gpus=0.5)
        class Holder:
            def ready(self):
                return True

        holders = [Holder.remote() for _ in range(3)]  # two halves on GPU 0, one on GPU 1
        assert shoal.get([h.ready.remote() for h in holders], timeout=60) == [True] * 3

        def per_device():
            code, body = cluster.api("GET", "/api/cluster_status")
            assert code == 200
            return body["nodes"][0].get("gpu_used_per_device")

        assert wait_until(lambda: per_device() == [1.0, 0.5], 30, what="GPU use per device [1.0, 0.5]")
        samples = metrics(cluster)
        used = {labels["device"]: v for labels, v in samples["shoal_node_gpu_used"]}
        assert used == {"0": 1.0, "1": 0.5}
        for h in holders:
            shoal.kill(h)
        assert wait_until(lambda: per_device() == [0.0, 0.0], 30, what="every GPU free again")
    finally:
        shoal.shutdown()
