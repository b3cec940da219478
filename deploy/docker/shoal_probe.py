#!/usr/bin/env python3
"""Readiness check of a Shoal node running in a container: exit 0 when ready, else 1.

    shoal-probe head [--dashboard]    the newest head session under $SHOAL_TMPDIR: its GCS and
                                      raylet accept TCP connections; with --dashboard, its
                                      dashboard also answers GET /api/auth/status (a route that
                                      needs no token) with 200; an https:// dashboard must
                                      present a certificate for 127.0.0.1 (or its host) that
                                      verifies against $SHOAL_DASHBOARD_TLS_CA, else the system's CAs
    shoal-probe worker                the newest joined (non-head) session: its raylet accepts
                                      TCP connections

It reads only what `shoal start` writes into the session directory (gcs.ready.json,
raylet.ready.json, dashboard.ready.json) and the raylet's command line, so it needs no token
and no fixed raylet port (Shoal picks the raylet's port itself).
"""
import glob
import http.client
import json
import os
import socket
import ssl
import sys

TIMEOUT_S = 2.0


class NotReady(Exception):
    pass


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise NotReady(f"cannot read {path}: {e}")


def pid_alive(pid):
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state != "Z"


def tcp_check(host, port, what):
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT_S):
            return
    except OSError as e:
        raise NotReady(f"{what} at {host}:{port} does not accept connections: {e}")


def flag_value(cmdline, name):
    """The value of --name in a NUL-separated command line (as /proc/PID/cmdline holds it)."""
    args = cmdline.split("\0")
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def sessions(root):
    """Session directories under `root`, newest first (session_latest is only a link)."""
    dirs = [d for d in glob.glob(os.path.join(root, "session_*")) if os.path.isdir(d) and not os.path.islink(d)]
    return sorted(dirs, key=os.path.getmtime, reverse=True)


def check_raylet(session):
    ready = read_json(os.path.join(session, "raylet.ready.json"))
    pid = ready.get("pid")
    if not pid or not pid_alive(pid):
        raise NotReady(f"the raylet (pid {pid}) is not running")
    try:
        with open(f"/proc/{int(pid)}/cmdline") as f:
            host = flag_value(f.read(), "node-ip-address")
    except OSError:
        host = None
    host = host or os.environ.get("SHOAL_DEPLOY_NODE_IP") or "127.0.0.1"
    tcp_check(host, ready["port"], "the raylet")
    return f"raylet {host}:{ready['port']}"


def check_dashboard(session):
    path = os.path.join(session, "dashboard.ready.json")
    if not os.path.exists(path):
        raise NotReady("the dashboard has not started (no dashboard.ready.json)")
    ready = read_json(path)
    if not pid_alive(ready.get("pid", 0)):
        raise NotReady(f"the dashboard (pid {ready.get('pid')}) is not running")
    host = ready.get("host") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # bound to every address: loopback is one of them, and a name it accepts
    if str(ready.get("url", "")).startswith("https://"):
        try:
            context = ssl.create_default_context(cafile=os.environ.get("SHOAL_DASHBOARD_TLS_CA") or None)
        except OSError as e:
            raise NotReady(f"cannot load $SHOAL_DASHBOARD_TLS_CA: {e}")
        conn = http.client.HTTPSConnection(host, int(ready["port"]), timeout=TIMEOUT_S, context=context)
    else:
        conn = http.client.HTTPConnection(host, int(ready["port"]), timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/api/auth/status")
        status = conn.getresponse().status
    except ssl.SSLCertVerificationError as e:
        raise NotReady(f"the dashboard at {host}:{ready['port']} is not trusted: {e.verify_message}")
    except OSError as e:
        raise NotReady(f"the dashboard at {host}:{ready['port']} does not answer: {e}")
    finally:
        conn.close()
    if status != 200:
        raise NotReady(f"the dashboard answered GET /api/auth/status with {status}")
    return f"dashboard {host}:{ready['port']}"


def check_head(root, dashboard):
    for session in sessions(root):
        gcs_path = os.path.join(session, "gcs.ready.json")
        if not os.path.exists(gcs_path):
            continue
        gcs = read_json(gcs_path)
        if not pid_alive(gcs.get("pid", 0)):
            raise NotReady(f"the GCS (pid {gcs.get('pid')}) is not running")
        host, _, port = gcs["address"].rpartition(":")
        tcp_check(host, port, "the GCS")
        done = [f"GCS {gcs['address']}", check_raylet(session)]
        if dashboard:
            done.append(check_dashboard(session))
        return done
    raise NotReady(f"no head session under {root}")


def check_worker(root):
    for session in sessions(root):
        if os.path.exists(os.path.join(session, "gcs.ready.json")):
            continue  # a head's session
        if os.path.exists(os.path.join(session, "raylet.ready.json")):
            return [check_raylet(session)]
    raise NotReady(f"no joined node's session under {root}")


def main(argv):
    if len(argv) < 2 or argv[1] not in ("head", "worker") or any(a not in ("--dashboard",) for a in argv[2:]):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: shoal-probe head [--dashboard] | shoal-probe worker", file=sys.stderr)
        return 2
    root = os.environ.get("SHOAL_TMPDIR") or "/tmp/shoal"
    try:
        done = check_head(root, "--dashboard" in argv[2:]) if argv[1] == "head" else check_worker(root)
    except NotReady as e:
        print(f"not ready: {e}")
        return 1
    print("ready: " + ", ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
