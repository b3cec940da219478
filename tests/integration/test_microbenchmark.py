"""`shoal microbenchmark`, for correctness only (tiny batches, no timing asserted): every shape
of `ray microbenchmark` produces a positive rate under Ray's name, filters and bad flags behave,
the C++ API's shapes run, and Ray's own ray_perf.py runs unchanged with Shoal in place of ray."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import PYTHON_DIR, SHOAL

sys.path.insert(0, PYTHON_DIR)

from shoal._private.microbenchmark import SHAPE_NAMES  # noqa: E402


def microbenchmark(*args, timeout=600):
    root = tempfile.mkdtemp(prefix="shoal-mb-", dir="/tmp")  # no cluster of other tests is "the last one"
    env = dict(os.environ, SHOAL_TMPDIR=root)
    for var in ("SHOAL_ADDRESS", "RAY_ADDRESS", "SHOAL_AUTH_TOKEN", "SHOAL_AUTH_TOKEN_FILE", "PYTHONPATH"):
        env.pop(var, None)
    try:
        return subprocess.run([SHOAL, "microbenchmark", *map(str, args)], env=env, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_every_shape_produces_a_rate(tmp_path):
    out = tmp_path / "mb.json"
    proc = microbenchmark("--duration", 0.2, "--scale", 0.01, "--calls", 2, "--json", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [r["name"] for r in doc["results"]] == SHAPE_NAMES
    assert all(r["mean"] > 0 for r in doc["results"]), doc["results"]
    assert doc["machine"]["cpus"] >= 1 and doc["machine"]["memory_bytes"] > 0 and doc["date"]
    assert "commit" in doc
    assert "[1/23]" in proc.stderr  # a progress line per shape


def test_filter_and_bad_flags():
    proc = microbenchmark("--filter", "actor calls sync", "--duration", 0.2, "--calls", 3, "--json", "-")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["name"] for r in doc["results"]] == ["1:1 actor calls sync", "1:1 async-actor calls sync"]
    bad = microbenchmark("--filter", "teleportation")
    assert bad.returncode == 2 and "no shape matches" in bad.stderr and "1:1 actor calls sync" in bad.stderr
    assert microbenchmark("--duration", 0).returncode == 2
    assert microbenchmark("--api", "fortran").returncode == 2
    assert microbenchmark("--help").returncode == 0


def test_cpp_api_shapes():
    proc = microbenchmark("--api", "cpp", "--filter", "calls sync", "--duration", 0.1, "--json", "-")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["name"] for r in doc["results"]] == ["1:1 actor calls sync"] and doc["results"][0]["mean"] > 0
    assert "no version of: 1:1 async-actor calls sync" in proc.stderr  # said, not silently dropped
    tasks = microbenchmark("--api", "cpp", "--filter", "single client tasks", "--duration", 0.1, "--json", "-")
    assert tasks.returncode == 0, tasks.stderr[-3000:]
    names = {r["name"]: r["mean"] for r in json.loads(tasks.stdout.strip().splitlines()[-1])["results"]}
    assert set(names) == {"single client tasks sync", "single client tasks async"} and min(names.values()) > 0


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_rays_own_microbenchmark_runs_unchanged_on_shoal():
    proc = microbenchmark("--ray-perf", "--duration", 0.1, "--calls", 1, "--json", "-", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    names = [r["name"] for r in doc["ray_perf"]]
    assert set(SHAPE_NAMES) <= set(names), set(SHAPE_NAMES) - set(names)
    assert all(r["mean"] > 0 for r in doc["ray_perf"])


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_compare_ray_from_python_and_from_cpp(tmp_path):
    """--compare-ray puts Ray's Python figure beside Shoal's, from Shoal's Python API and from its
    C++ API (shapes the C++ API lacks are named, not dropped silently)."""
    md = tmp_path / "cmp.md"
    proc = microbenchmark("--compare-ray", "--filter", "1:1 actor calls sync", "--duration", 0.1, "--scale", 0.01,
                          "--json", "-", "--markdown", md, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])["comparison"]
    assert [r["name"] for r in rows] == ["1:1 actor calls sync"]
    assert rows[0]["ray"]["mean"] > 0 and rows[0]["shoal"]["mean"] > 0 and rows[0]["ratio"] > 0
    assert "| 1:1 actor calls sync |" in md.read_text()
    cpp = microbenchmark("--api", "cpp", "--compare-ray", "--filter", "calls sync", "--duration", 0.1, "--scale", 0.01,
                         "--json", "-", "--markdown", md, timeout=900)
    assert cpp.returncode == 0, cpp.stderr[-3000:]
    rows = json.loads(cpp.stdout.strip().splitlines()[-1])["comparison"]
    assert [r["name"] for r in rows] == ["1:1 actor calls sync"]
    assert rows[0]["ray"]["mean"] > 0 and rows[0]["shoal"]["mean"] > 0
    assert "no version of: 1:1 async-actor calls sync" in cpp.stderr
    text = md.read_text()
    assert "--api cpp --compare-ray" in text and "| shape | Ray /s | Shoal C++ /s | Shoal/Ray |" in text
