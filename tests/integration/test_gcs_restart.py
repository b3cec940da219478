"""Detached actors survive a GCS restart (issue 12).

With the GCS on Redis, killed with kill -9 and started again on the same Redis: a detached named
actor with max_restarts=-1 keeps running on its worker while the GCS is away (its raylet waits
up to --gcs-rpc-server-reconnect-timeout-s, 60 s by default, before it treats the GCS, the
owner of the actor's lease, as gone), answers by name from a new driver afterwards, and when its
worker is then killed the restarted GCS restarts it from the creation task it restored.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from conftest import BIN, PYTHON_DIR, process_alive, restart_gcs, wait_until, worker_raylet_pids

# The raylet's timeout for a lease owner other than the GCS (RayletOptions::owner_timeout).
OTHER_OWNER_TIMEOUT_S = 10


def gcs_pid(cluster):
    return cluster.recorded_pids()["gcs"][0]


def run_driver(cluster, body):
    """Runs `body` in a fresh Python driver of the cluster; answers the JSON it prints last."""
    script = textwrap.dedent(f"""
        import json, os, shoal
        shoal.init(address="{cluster.address}")
    """) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], env=dict(cluster.env, PYTHONPATH=PYTHON_DIR),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, \
        f"driver exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def actor_entry(cluster, stubs, name):
    pb, pb_grpc, _ = stubs
    try:
        actors = pb_grpc.ActorServiceStub(cluster.channel()).ListActors(pb.ListActorsRequest(), timeout=10).actors
    except Exception:  # the GCS is not serving (yet)
        return None
    named = [a for a in actors if a.name == name]
    return named[0] if named else None


def test_detached_actor_survives_a_gcs_restart_and_restarts_after_it(cluster, redis_server, gcs_stubs):
    pb = gcs_stubs[0]
    redis = f"127.0.0.1:{redis_server.port}"
    cluster.start_head("--num-cpus", 1, "--redis-address", redis)
    cluster.start_worker("--num-cpus", 2, "--resources", '{"W": 1}')
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="2 alive nodes")

    # A driver creates the actor, uses it, and exits: only the GCS owns the actor now.
    created = run_driver(cluster, """
        @shoal.remote(max_restarts=-1)
        class Counter:
            def __init__(self):
                self.value = 0
            def incr(self):
                self.value += 1
                return self.value
            def pid(self):
                return os.getpid()
        c = Counter.options(name="survivor", lifetime="detached", resources={"W": 1}).remote()
        values = [shoal.get(c.incr.remote()) for _ in range(3)]
        print(json.dumps({"pid": shoal.get(c.pid.remote()), "value": values[-1]}))
    """)
    assert created["value"] == 3
    actor_pid = created["pid"]
    raylets = worker_raylet_pids(cluster)
    assert len(raylets) == 1

    os.kill(gcs_pid(cluster), signal.SIGKILL)
    wait_until(lambda: not process_alive(gcs_pid(cluster)), 10, what="the GCS to die")
    # Away longer than the raylet waits for any other lease owner: the actor's worker (whose
    # lease the GCS owns) must still be there.
    time.sleep(OTHER_OWNER_TIMEOUT_S + 3)
    assert process_alive(actor_pid), "the raylet killed the detached actor's worker while the GCS was away"
    assert all(process_alive(p) for p in raylets)

    restart_gcs(cluster, "--redis-address", redis)
    wait_until(lambda: (n := cluster.alive_nodes()) and len(n) == 2, 60, what="the nodes to be alive again")
    entry = wait_until(lambda: actor_entry(cluster, gcs_stubs, "survivor"), 30, what="the restored actor")
    assert entry.state == pb.ActorInfo.ALIVE and entry.num_restarts == 0

    # A new driver finds it by name, on the same worker, with its state.
    again = run_driver(cluster, """
        c = shoal.get_actor("survivor")
        print(json.dumps({"pid": shoal.get(c.pid.remote()), "value": shoal.get(c.incr.remote())}))
    """)
    assert again == {"pid": actor_pid, "value": 4}

    # Its worker dies: the restarted GCS restarts it from the restored creation task.
    os.kill(actor_pid, signal.SIGKILL)
    restarted = wait_until(lambda: (e := actor_entry(cluster, gcs_stubs, "survivor")) and e.num_restarts == 1
                           and e.state in (pb.ActorInfo.ALIVE, pb.ActorInfo.DEAD) and e, 120,
                           what="the actor to be restarted")
    assert restarted.state == pb.ActorInfo.ALIVE, restarted.death_cause
    after = run_driver(cluster, """
        c = shoal.get_actor("survivor")
        print(json.dumps({"pid": shoal.get(c.pid.remote()), "value": shoal.get(c.incr.remote())}))
    """)
    assert after["pid"] != actor_pid and process_alive(after["pid"])
    assert after["value"] == 1  # a restart runs the constructor again, as Ray's does
    assert actor_entry(cluster, gcs_stubs, "survivor").state == pb.ActorInfo.ALIVE


def raylet_logs_mention(cluster, text):
    for path in glob.glob(os.path.join(cluster.root, "session_*", "logs", "*raylet*")):
        with open(path, errors="replace") as f:
            if text in f.read():
                return True
    return False


def test_a_worker_death_while_the_gcs_is_away_is_told_to_it_when_it_returns(cluster, redis_server, gcs_stubs):
    pb = gcs_stubs[0]
    redis = f"127.0.0.1:{redis_server.port}"
    cluster.start_head("--num-cpus", 1, "--redis-address", redis)
    cluster.start_worker("--num-cpus", 2, "--resources", '{"W": 1}')
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="2 alive nodes")
    created = run_driver(cluster, """
        @shoal.remote(max_restarts=-1)
        class Pinger:
            def pid(self):
                return os.getpid()
        p = Pinger.options(name="pinger", lifetime="detached", resources={"W": 1}).remote()
        print(json.dumps({"pid": shoal.get(p.pid.remote())}))
    """)
    actor_pid = created["pid"]

    os.kill(gcs_pid(cluster), signal.SIGKILL)
    wait_until(lambda: not process_alive(gcs_pid(cluster)), 10, what="the GCS to die")
    os.kill(actor_pid, signal.SIGKILL)
    # The raylet saw the death and could not tell the GCS: it keeps it to tell it later.
    wait_until(lambda: raylet_logs_mention(cluster, "will tell it again"), 60,
               what="the raylet to keep the death it could not report")

    restart_gcs(cluster, "--redis-address", redis)
    restarted = wait_until(lambda: (e := actor_entry(cluster, gcs_stubs, "pinger")) and e.num_restarts == 1
                           and e.state in (pb.ActorInfo.ALIVE, pb.ActorInfo.DEAD) and e, 120,
                           what="the actor to be restarted once the GCS learnt of the death")
    assert restarted.state == pb.ActorInfo.ALIVE, restarted.death_cause
    after = run_driver(cluster, """
        p = shoal.get_actor("pinger")
        print(json.dumps({"pid": shoal.get(p.pid.remote())}))
    """)
    assert after["pid"] != actor_pid and process_alive(after["pid"])


def test_reconnect_timeout_flag_is_checked(tmp_path):
    out = subprocess.run([os.path.join(BIN, "shoal-raylet"), "--gcs-address", "127.0.0.1:1", "--disable-auth",
                          "--session-dir", str(tmp_path / "s"), "--gcs-rpc-server-reconnect-timeout-s", "0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--gcs-rpc-server-reconnect-timeout-s" in out.stderr
