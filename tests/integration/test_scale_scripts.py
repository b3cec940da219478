"""bench/scale/scale.py with tiny counts: every scenario runs, checks its own results (nothing
lost) and prints its figures. No timing is asserted."""
import json
import os
import subprocess
import sys

import pytest

from conftest import PYTHON_DIR, REPO

SCRIPT = os.path.join(REPO, "bench", "scale", "scale.py")


@pytest.mark.parametrize("args,check", [
    (["tasks", "--count", "300"], lambda d: d["tasks"] == 300 and d["peak_rss_mib"]["driver"] > 0
     and d["peak_rss_mib"]["raylet"] and d["peak_rss_mib"]["gcs"]),
    (["many-args", "--count", "100"], lambda d: d["arguments"] == 100),
    (["get-many", "--count", "500"], lambda d: d["objects"] == 500),
    (["actors", "--count", "3"], lambda d: d["alive"] == 3 and not d["stopped_by"]),
    (["raylets", "--count", "3", "--tasks", "30"], lambda d: d["raylets"] == 4 and d["nodes_used"] >= 1),
    (["gcs-memory", "--count", "1", "--actors", "2", "--tasks", "50"], lambda d: d["actors"] == 2
     and "per_finished_task_bytes" in d),
])
def test_scale_scenario_runs_and_checks_its_results(args, check, tmp_path):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    for var in ("SHOAL_ADDRESS", "SHOAL_AUTH_TOKEN", "SHOAL_TMPDIR"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, SCRIPT, *args, "--json", str(tmp_path / "out.json")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["scenario"] == args[0] and check(doc), doc


def test_transfer_bench_moves_objects_intact_between_raylets(tmp_path):
    """bench/transfer_bench.py with tiny sizes: every fetch's copy matches the original (the
    script compares checksums) and every figure is a positive rate."""
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    for var in ("SHOAL_ADDRESS", "SHOAL_AUTH_TOKEN", "SHOAL_TMPDIR"):
        env.pop(var, None)
    out = tmp_path / "transfer.json"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "transfer_bench.py"), "--size-mib", "96",
                           "--broadcast-mib", "8", "--receivers", "2", "--repeat", "2", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert len(doc["node_to_node_gbps"]) == 2 and min(doc["node_to_node_gbps"]) > 0
    assert min(doc["tcp_loopback_gbps"]) > 0
    assert doc["broadcast"]["receivers"] == 2 and min(doc["broadcast"]["per_node_gbps"]) > 0
