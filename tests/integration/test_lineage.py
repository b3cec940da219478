"""Lineage reconstruction: when the only node holding a task's result dies, its owner re-runs the
task (and the tasks of its lost arguments) and `get` answers the right value; what cannot be made
again raises ObjectLostError saying why."""
import json
import os
import signal
import subprocess
import sys
import textwrap

from conftest import PYTHON_DIR, wait_until, worker_raylet_pids

DRIVER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import shoal as ray

    ray.init(address=os.environ["SHOAL_TEST_ADDRESS"])

    @ray.remote(resources={"L": 1}, max_retries=2)
    def make(seed, log):
        with open(log, "a") as f:
            f.write("make %d\\n" % seed)
        return np.full((1 << 20) // 8, seed, dtype=np.int64)  # 1 MiB: stored in the node's store

    @ray.remote(resources={"L": 1}, max_retries=2)
    def plus(a, k, log):
        with open(log, "a") as f:
            f.write("plus %d\\n" % k)
        return a + k

    log = os.environ["SHOAL_TEST_RUNS"]  # the workers' environment is the raylet's: pass it
    x = make.remote(7, log)
    y = plus.remote(x, 1, log)
    z = make.options(max_retries=0).remote(9, log)
    # fetch_local=False: the only copies stay on their node (the default would copy them here).
    ready, _ = ray.wait([x, y, z], num_returns=3, timeout=120, fetch_local=False)
    assert len(ready) == 3
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the test kills the node that holds x, y and z, and starts another

    out = {}
    yv = ray.get(y, timeout=120)
    out["y"] = [int(yv.min()), int(yv.max()), int(yv.size)]
    xv = ray.get(x, timeout=120)
    out["x"] = [int(xv.min()), int(xv.max()), int(xv.size)]
    try:
        ray.get(z, timeout=120)
        out["z"] = "no error"
    except ray.exceptions.ObjectLostError as e:
        out["z"] = "ObjectLostError: " + str(e)
    print(json.dumps(out), flush=True)
""")


def across_a_node_loss(cluster, tmp_path, driver, worker_args, head_args=(), before_loss=None):
    """Runs `driver` (it prints {"ready": true} and waits for a line) on a head + one worker
    node started with `worker_args`; kills that worker raylet with SIGKILL, starts another like
    it, lets the driver go on and answers (its last JSON line, the runs log's lines)."""
    cluster.start_head("--num-cpus", 1, "--num-gpus", 0, *head_args)
    cluster.start_worker("--num-gpus", 0, *worker_args)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="2 alive nodes")
    runs = tmp_path / "runs.txt"
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR, SHOAL_TEST_ADDRESS=cluster.address,
               SHOAL_TEST_RUNS=str(runs), SHOAL_AUTH_TOKEN=cluster.auth_token())
    proc = subprocess.Popen([sys.executable, "-c", driver], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cluster.extra_pids.append(proc.pid)
    first = proc.stdout.readline()
    assert json.loads(first) == {"ready": True}, (first, proc.stderr.read() if proc.poll() is not None else "")
    if before_loss is not None:
        before_loss(runs.read_text().split("\n")[:-1])
    # The only copies die with their node; another node that can run the tasks joins.
    victim = worker_raylet_pids(cluster)
    assert len(victim) == 1
    os.kill(victim[0], signal.SIGKILL)
    cluster.start_worker("--num-gpus", 0, *worker_args)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), runs.read_text().split("\n")[:-1]


def test_lost_results_are_made_again_and_unretryable_ones_fail(cluster, tmp_path):
    def before_loss(runs):
        assert sorted(runs) == ["make 7", "make 9", "plus 1"]

    result, runs = across_a_node_loss(cluster, tmp_path, DRIVER, ("--num-cpus", 2, "--resources", '{"L": 2}'),
                                      before_loss=before_loss)
    assert result["y"] == [8, 8, 131072], result
    assert result["x"] == [7, 7, 131072], result
    assert result["z"].startswith("ObjectLostError"), result
    assert "max_retries" in result["z"], result
    # x was made again for y's re-run, y once; z (max_retries=0) never ran again.
    assert sorted(runs) == ["make 7", "make 7", "make 9", "plus 1", "plus 1"]


ARG_DRIVER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import shoal as ray

    ray.init(address=os.environ["SHOAL_TEST_ADDRESS"])

    @ray.remote(resources={"L": 1}, max_retries=2)
    def make(seed, log):
        with open(log, "a") as f:
            f.write("make %d\\n" % seed)
        return np.full((1 << 20) // 8, seed, dtype=np.int64)

    @ray.remote(resources={"M": 1}, max_retries=0)
    def total(a, log):
        with open(log, "a") as f:
            f.write("total\\n")
        return int(a.sum())

    log = os.environ["SHOAL_TEST_RUNS"]
    x = make.remote(5, log)
    ready, _ = ray.wait([x], timeout=120, fetch_local=False)
    assert ready
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the test kills x's node and starts another
    # Submitted after the loss: its worker (on the head, which has M) cannot read x, and the
    # owner makes x again and runs total again; max_retries=0 is no obstacle (it never ran).
    print(json.dumps({"total": ray.get(total.remote(x, log), timeout=180)}), flush=True)
""")


def test_a_task_whose_argument_was_lost_before_it_ran_gets_the_argument_made_again(cluster, tmp_path):
    result, runs = across_a_node_loss(cluster, tmp_path, ARG_DRIVER, ("--num-cpus", 1, "--resources", '{"L": 1}'),
                                      head_args=("--resources", '{"M": 1}'))
    assert result == {"total": 5 * 131072}
    # x was made twice; total's function ran once (its first worker failed before calling it).
    assert sorted(runs) == ["make 5", "make 5", "total"]


GEN_DRIVER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import shoal as ray

    ray.init(address=os.environ["SHOAL_TEST_ADDRESS"])

    @ray.remote(resources={"L": 1}, max_retries=2)
    def blocks(n, log):
        with open(log, "a") as f:
            f.write("blocks\\n")
        for i in range(n):
            yield np.full((1 << 20) // 8, i, dtype=np.int64)  # 1 MiB each: in the node's store

    log = os.environ["SHOAL_TEST_RUNS"]
    refs = list(blocks.remote(3, log))
    ready, _ = ray.wait(refs, num_returns=3, timeout=120, fetch_local=False)
    assert len(ready) == 3
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the test kills the node holding the items and starts another
    values = [ray.get(r, timeout=180) for r in refs]
    print(json.dumps({"items": [[int(v.min()), int(v.max()), int(v.size)] for v in values]}), flush=True)
""")


def test_lost_generator_items_are_made_again_by_running_the_generator_again(cluster, tmp_path):
    result, runs = across_a_node_loss(cluster, tmp_path, GEN_DRIVER, ("--num-cpus", 1, "--resources", '{"L": 1}'))
    assert result["items"] == [[i, i, 131072] for i in range(3)], result
    assert runs == ["blocks", "blocks"]  # the generator ran once more
