#!/usr/bin/env python3
"""Runs Ray's core test files (copies under ray_tests/) against Shoal and reports the measure.

    python3 /tmp/raymeasure/run_measure.py [--timeout 180] [--no-gate] [files...]

Each file runs in its own pytest process (nice'd), with a per-test timeout (pytest-timeout,
thread method: a hung test ends the process; the runner records it as HANG and restarts the
file without the tests already done). Every process a run leaves behind is killed by pid (found
by the RAYMEASURE_RUN marker in its environment: only processes this runner started carry it).
Results: results/<file>.jsonl (one line per test), results/summary.md, results/summary.json.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "ray_tests")
RESULTS = os.path.join(HERE, "results")
PY = os.path.join(HERE, "venv", "bin", "python")
SHOAL_BUILD = os.environ.get("SHOAL_BUILD_DIR", "/work/main/build")
SHOAL_PY = os.path.join(SHOAL_BUILD, "python")
SHOAL_BIN_DIR = os.path.join(SHOAL_BUILD, "bin")
SNAP_BINARIES = ["shoal", "shoal-gcs", "shoal-raylet", "shoal-worker", "shoal-dashboard"]


def make_snapshot():
    """Copies the build's Python package and daemons under snap/<time>/, so that a rebuild
    during the run cannot change what is measured; answers the snapshot directory."""
    global SHOAL_PY, SHOAL_BIN_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    snap = os.path.join(HERE, "snap", stamp)
    shutil.copytree(os.path.join(SHOAL_BUILD, "python", "shoal"), os.path.join(snap, "python", "shoal"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(os.path.join(snap, "bin"))
    for b in SNAP_BINARIES:
        src = os.path.join(SHOAL_BUILD, "bin", b)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(snap, "bin", b))
    repo = os.path.dirname(os.path.abspath(SHOAL_BUILD))
    info = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%H %cd %s"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", repo, "status", "--short"], capture_output=True, text=True).stdout
    with open(os.path.join(snap, "INFO"), "w") as f:
        f.write(f"build: {SHOAL_BUILD}\nHEAD: {info}\ndirty files:\n{dirty}")
    SHOAL_PY = os.path.join(snap, "python")
    SHOAL_BIN_DIR = os.path.join(snap, "bin")
    return snap
FILES = ["test_basic.py", "test_basic_2.py", "test_actor.py", "test_actor_advanced.py",
         "test_actor_failures.py", "test_cancel.py", "test_wait.py", "test_runtime_context.py",
         "test_get_or_create_actor.py", "test_failure.py", "test_scheduling.py",
         "test_placement_group.py"]
GATE = "/tmp/full_pytest.log"


def wait_gate():
    while True:
        try:
            with open(GATE) as f:
                if any(line.startswith("rc=") for line in f):
                    return
        except FileNotFoundError:
            return
        print(f"waiting for a line starting with rc= in {GATE} ...", flush=True)
        time.sleep(60)


def marked_pids(token):
    pids = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if f"RAYMEASURE_RUN={token}".encode() in env.split(b"\0"):
            pids.append(int(entry))
    return pids


def kill_marked(token):
    for _ in range(3):
        pids = marked_pids(token)
        if not pids:
            return 0
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.5)
    return len(marked_pids(token))


def read_results(path):
    starts, ends = {}, {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec["event"] == "start":
                    starts[rec["nodeid"]] = rec
                else:
                    ends[rec["nodeid"]] = rec
    return starts, ends


def collect_markers(name):
    """{nodeid: markers} of a file's tests (collection only: no cluster starts)."""
    base = name[:-3]
    out = os.path.join(RESULTS, base + ".markers.json")
    env = dict(os.environ, PYTHONPATH=f"{os.path.join(HERE, 'shim')}:{SHOAL_PY}", RAYMEASURE_MARKERS_OUT=out)
    subprocess.run([PY, "-m", "pytest", name, "-p", "no:cacheprovider", "--collect-only", "-q"], cwd=TESTS,
                   env=env, capture_output=True, timeout=300)
    try:
        with open(out) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run_file(name, timeout, file_budget):
    base = name[:-3]
    collect_markers(name)
    res_path = os.path.join(RESULTS, base + ".jsonl")
    if os.path.exists(res_path):
        os.remove(res_path)
    log_path = os.path.join(RESULTS, base + ".log")
    open(log_path, "w").close()
    hung = {}
    deadline = time.time() + file_budget
    attempt = 0
    while True:
        attempt += 1
        starts, ends = read_results(res_path)
        done = [n for n in list(starts) + list(hung) if n in ends or n in hung]
        done_path = os.path.join(RESULTS, base + ".done")
        with open(done_path, "w") as f:
            f.write("\n".join(done) + "\n")
        token = uuid.uuid4().hex
        tmp = tempfile.mkdtemp(prefix="rmr-", dir="/tmp")
        env = dict(os.environ)
        for k in ("SHOAL_ADDRESS", "RAY_ADDRESS", "SHOAL_AUTH_TOKEN", "SHOAL_AUTH_TOKEN_FILE"):
            env.pop(k, None)
        env.update(PYTHONPATH=f"{os.path.join(HERE, 'shim')}:{SHOAL_PY}", SHOAL_TMPDIR=tmp,
                   SHOAL_BIN_DIR=SHOAL_BIN_DIR, SHOAL_BIN=os.path.join(SHOAL_BIN_DIR, "shoal"),
                   RAYMEASURE_RESULTS=res_path, RAYMEASURE_RUN=token, PYTHONUNBUFFERED="1",
                   RAYMEASURE_DONE=done_path)
        cmd = ["nice", "-n", "10", PY, "-m", "pytest", name, "-p", "no:cacheprovider", "-q", "-rN",
               f"--timeout={timeout}", "--timeout_method=thread", "-o", "faulthandler_timeout=0"]
        remaining = max(60, deadline - time.time())
        roots_before = set(glob.glob("/tmp/rmc-*"))
        with open(log_path, "a") as log:
            log.write(f"\n===== attempt {attempt}: {' '.join(cmd)} ({len(done)} already done)\n")
            log.flush()
            try:
                proc = subprocess.run(cmd, cwd=TESTS, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=remaining)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = "file-budget"
            log.write(f"\n===== attempt {attempt} rc={rc}\n")
        left = kill_marked(token)
        shutil.rmtree(tmp, ignore_errors=True)
        for root in set(glob.glob("/tmp/rmc-*")) - roots_before:  # clusters of a killed attempt
            shutil.rmtree(root, ignore_errors=True)
        starts, ends = read_results(res_path)
        dangling = [n for n in starts if n not in ends and n not in hung]
        if rc == "file-budget":
            for n in dangling:
                hung[n] = "file time budget exhausted while this test ran"
            break
        if not dangling:
            break
        tail = open(log_path).read()[-20000:]
        why = "HANG: per-test timeout" if "Timeout" in tail else f"CRASH: pytest process exited rc={rc}"
        for n in dangling:
            hung[n] = why
        if left:
            print(f"  warning: {left} marked processes survived SIGKILL", flush=True)
        if attempt > 40:
            break
    # Fold hangs into the results file.
    with open(res_path, "a") as f:
        for n, why in hung.items():
            f.write(json.dumps({"nodeid": n, "event": "end", "outcome": "hang" if why.startswith("HANG") else "crash",
                                "msg": why, "markers": [], "duration": timeout}) + "\n")
    return res_path


def classify(rec):
    """public | helpers | internal | out | ray-skip"""
    msg = rec.get("msg") or ""
    if rec["outcome"] == "skipped":
        if msg.startswith("INTERNAL:") or "INTERNAL:" in msg[:20]:
            return "internal"
        if "OUT:" in msg[:20]:
            return "out"
        return "ray-skip"
    return "helpers" if "helpers" in rec.get("markers", []) else "public"


def helpers_marked(nodeid):
    return False


def summarize(files):
    rows, details = [], {}
    markers = {}
    for name in files:
        path = os.path.join(RESULTS, name[:-3] + ".markers.json")
        if not os.path.exists(path):
            collect_markers(name)
        try:
            with open(path) as f:
                markers.update(json.load(f))
        except (OSError, ValueError):
            pass
    tot = {"public": [0, 0, 0, 0], "helpers": [0, 0, 0, 0]}  # n, pass, fail, hang
    new_tot = {"public": [0, 0], "helpers": [0, 0]}
    for name in files:
        base = name[:-3]
        _, ends = read_results(os.path.join(RESULTS, base + ".jsonl"))
        counts = {"total": len(ends), "public": [0, 0, 0, 0], "helpers": [0, 0, 0, 0],
                  "internal": 0, "out": 0, "ray-skip": 0}
        for nodeid, rec in ends.items():
            if nodeid in markers:
                rec["markers"] = markers[nodeid]
            cls = classify(rec)
            rec["class"] = cls
            details[nodeid] = rec
            if cls in ("internal", "out", "ray-skip"):
                counts[cls] += 1
                continue
            c = counts[cls]
            c[0] += 1
            if rec["outcome"] == "passed":
                c[1] += 1
            elif rec["outcome"] in ("hang", "crash"):
                c[3] += 1
            else:
                c[2] += 1
            if "newfeature" in rec.get("markers", []):
                new_tot[cls][0] += 1
                new_tot[cls][1] += rec["outcome"] == "passed"
        for cls in ("public", "helpers"):
            for i in range(4):
                tot[cls][i] += counts[cls][i]
        rows.append((name, counts))
    measured = os.path.join(RESULTS, "measured.txt")
    header = open(measured).read().strip() if os.path.exists(measured) else f"python {SHOAL_PY}"
    lines = [f"Shoal measured: {header}", "",
             "| file | tests | internal | out | ray-skip | public n/pass/fail/hang | +helpers n/pass/fail/hang |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in rows:
        p, h = c["public"], c["helpers"]
        lines.append(f"| {name} | {c['total']} | {c['internal']} | {c['out']} | {c['ray-skip']} | "
                     f"{p[0]}/{p[1]}/{p[2]}/{p[3]} | {h[0]}/{h[1]}/{h[2]}/{h[3]} |")
    p, h = tot["public"], tot["helpers"]
    lines.append(f"| **all** | | | | | {p[0]}/{p[1]}/{p[2]}/{p[3]} | {h[0]}/{h[1]}/{h[2]}/{h[3]} |")
    pub_pct = 100.0 * p[1] / p[0] if p[0] else 0
    both_n, both_pass = p[0] + h[0], p[1] + h[1]
    both_pct = 100.0 * both_pass / both_n if both_n else 0
    lines.append("")
    lines.append(f"public-API only: {p[1]}/{p[0]} passed = {pub_pct:.1f}%  (hangs: {p[3]})")
    lines.append(f"public + helpers: {both_pass}/{both_n} passed = {both_pct:.1f}%  (hangs: {p[3] + h[3]})")
    nn = new_tot["public"][0] + new_tot["helpers"][0]
    npass = new_tot["public"][1] + new_tot["helpers"][1]
    if nn:
        lines.append(f"of which brand-new upstream feature (hierarchical placement groups): {npass}/{nn} passed; "
                     f"without them: public+helpers {both_pass - npass}/{both_n - nn} = "
                     f"{100.0 * (both_pass - npass) / max(1, both_n - nn):.1f}%")
    lines.append("")
    lines.append("## Not passing (public / helpers)")
    for nodeid, rec in sorted(details.items()):
        if rec["class"] in ("public", "helpers") and rec["outcome"] != "passed":
            lines.append(f"- [{rec['class']}] {nodeid}: {rec['outcome'].upper()} "
                         f"({rec.get('when', '')}) {rec.get('msg', '')[:300]!r}")
    text = "\n".join(lines)
    with open(os.path.join(RESULTS, "summary.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(RESULTS, "summary.json"), "w") as f:
        json.dump({"totals": tot, "details": details}, f, indent=1)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*")
    ap.add_argument("--timeout", type=int, default=180, help="per-test timeout (s)")
    ap.add_argument("--file-budget", type=int, default=5400, help="wall-clock budget per file (s)")
    ap.add_argument("--no-gate", action="store_true")
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument("--snap-dir", help="measure an existing snapshot (snap/<time>) again")
    ap.add_argument("--snapshot", action="store_true",
                    help="measure a copy of the build taken at the start (recommended while the build may change)")
    args = ap.parse_args()
    files = args.files or FILES
    os.makedirs(RESULTS, exist_ok=True)
    if not args.summary_only:
        if not args.no_gate:
            wait_gate()
        if args.snap_dir:
            global SHOAL_PY, SHOAL_BIN_DIR
            SHOAL_PY = os.path.join(os.path.abspath(args.snap_dir), "python")
            SHOAL_BIN_DIR = os.path.join(os.path.abspath(args.snap_dir), "bin")
            print(f"measuring snapshot {args.snap_dir}:", open(os.path.join(args.snap_dir, "INFO")).read(), flush=True)
        elif args.snapshot:
            snap = make_snapshot()
            print(f"measuring snapshot {snap}:", open(os.path.join(snap, "INFO")).read(), flush=True)
        with open(os.path.join(RESULTS, "measured.txt"), "w") as f:
            info = os.path.join(os.path.dirname(SHOAL_PY), "INFO")
            f.write(f"python {SHOAL_PY}, binaries {SHOAL_BIN_DIR}; " +
                    (open(info).read().splitlines()[1] if os.path.exists(info) else "live build"))
        for name in files:
            t0 = time.time()
            print(f"== {name}", flush=True)
            run_file(name, args.timeout, args.file_budget)
            print(f"   done in {time.time() - t0:.0f}s", flush=True)
    print(summarize(FILES))


if __name__ == "__main__":
    main()
