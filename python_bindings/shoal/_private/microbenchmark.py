"""`shoal microbenchmark`: the shapes of `ray microbenchmark`, under the same names, measured
the way Ray measures them (a warm-up, then four timed windows; mean and standard deviation of
the rate).

    shoal microbenchmark [--filter S] [--json FILE] [--duration S] [--api python|cpp]
                         [--compare-ray] [--markdown FILE]

Each run starts its own local cluster (shoal.init()). With --compare-ray (where `ray` is
importable; it is never a dependency of Shoal), every shape runs once under Ray and once under
Shoal, each in a fresh process and alternating which goes first, and a table of name, Ray,
Shoal and ratio is printed (and written to --markdown). --api cpp runs the C++ API's versions of
the shapes it has (build/bin/shoal-bench-tasks and shoal-bench-actors); with --compare-ray, against
Ray's Python figures for the same shapes (each binary runs several shapes in one process, so Ray
and Shoal alternate binary by binary). The JSON records the
machine (cores, memory, CPU model), the date and the commit. Nothing here asserts a speed.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

PLACEMENT_GROUPS = "placement group create/removal"


def _machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {"host": platform.node(), "cpus": os.cpu_count(), "memory_bytes": memory, "cpu_model": model,
            "python": platform.python_version()}


def _commit():
    if os.environ.get("SHOAL_COMMIT"):
        return os.environ["SHOAL_COMMIT"]
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Timer:
    """Ray's method: warm up, then four windows; the rate of each is count * multiplier / time.
    With `calls` (tests), exactly that many calls in one window and no warm-up."""

    def __init__(self, duration, progress=None, calls=0):
        self.duration = duration
        self.progress = progress
        self.calls = calls

    def measure(self, name, fn, multiplier=1):
        if self.progress:
            self.progress(name)
        if self.calls:
            start = time.perf_counter()
            for _ in range(self.calls):
                fn()
            rate = multiplier * self.calls / (time.perf_counter() - start)
            return {"name": name, "mean": rate, "sd": 0.0}
        warmup = min(1.0, self.duration / 4)
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < warmup or count == 0:
            fn()
            count += 1
        step = count // 10 + 1
        window = self.duration / 4
        rates = []
        for _ in range(4):
            start, done = time.perf_counter(), 0
            while time.perf_counter() - start < window or done == 0:
                for _ in range(step):
                    fn()
                done += step
            rates.append(multiplier * done / (time.perf_counter() - start))
        return {"name": name, "mean": float(np.mean(rates)), "sd": float(np.std(rates))}


def _shapes(ray, scale):
    """[(name, make)]: make() sets the shape up and answers (fn, multiplier)."""
    n_cpu = max(1, (os.cpu_count() or 2) // 2)

    def scaled(n):
        return max(1, int(n * scale))

    @ray.remote(num_cpus=0)
    class Actor:
        def small_value(self):
            return b"ok"

        def small_value_arg(self, x):
            return b"ok"

        def small_value_batch(self, n):
            ray.get([small_value.remote() for _ in range(n)])

    @ray.remote
    class AsyncActor:
        async def small_value(self):
            return b"ok"

        async def small_value_with_arg(self, x):
            return b"ok"

    @ray.remote(num_cpus=0)
    class Client:
        def __init__(self, servers):
            self.servers = servers if isinstance(servers, list) else [servers]

        def small_value_batch(self, n):
            ray.get([s.small_value.remote() for s in self.servers for _ in range(n)])

        def small_value_batch_arg(self, n):
            x = ray.put(0)
            ray.get([s.small_value_arg.remote(x) for s in self.servers for _ in range(n)])

    @ray.remote
    def small_value():
        return b"ok"

    @ray.remote
    def do_put_small():
        for _ in range(100):
            ray.put(0)

    @ray.remote
    def do_put():
        for _ in range(10):
            ray.put(np.zeros(scaled(10 * 1024 * 1024), dtype=np.int64))

    @ray.remote
    def create_object_containing_ref():
        return [ray.put(1) for _ in range(scaled(10000))]

    def calls(target, n, arg=False):
        method = target.small_value_arg if arg else target.small_value
        return lambda: ray.get([(method.remote(i) if arg else method.remote()) for i in range(n)])

    def get_calls():
        value = ray.put(0)
        return (lambda: ray.get(value)), 1

    def put_large():
        arr = np.zeros(scaled(100 * 1024 * 1024), dtype=np.int64)
        return (lambda: ray.put(arr)), arr.nbytes / 1e9

    def containing_refs():
        ref = create_object_containing_ref.remote()
        ray.get(ref)
        return (lambda: ray.get(ref)), 1

    def wait_1k():
        n = scaled(1000)

        def run():
            not_ready = [small_value.remote() for _ in range(n)]
            fetch_local = True
            for _ in range(n):
                _, not_ready = ray.wait(not_ready, fetch_local=fetch_local)
                fetch_local = False
        return run, 1

    def multi_client_tasks():
        n, actors = scaled(10000), [Actor.remote() for _ in range(4)]
        return (lambda: ray.get([a.small_value_batch.remote(n) for a in actors])), n * 4

    def warm(actors):
        ray.get([a.small_value.remote() for a in actors])
        return actors

    def one_to_one(cls, concurrent=False, arg=False, n=1000):
        n = scaled(n)
        a = (cls.options(max_concurrency=16).remote() if concurrent else cls.remote())
        warm([a])
        if cls is AsyncActor and arg:
            return (lambda: ray.get([a.small_value_with_arg.remote(i) for i in range(n)])), n
        return calls(a, n), n

    def one_to_one_sync(cls):
        a = warm([cls.remote()])[0]
        return (lambda: ray.get(a.small_value.remote())), 1

    def one_to_n(cls):
        n = scaled(5000)
        actors = warm([cls._remote() if cls is Actor else cls.remote() for _ in range(n_cpu)])
        client = Client.remote(actors)
        return (lambda: ray.get(client.small_value_batch.remote(n))), n * len(actors)

    def n_to_n(cls):
        n, m = scaled(5000), 4
        actors = warm([cls.remote() for _ in range(n_cpu)])

        @ray.remote
        def work(actors):
            ray.get([actors[i % len(actors)].small_value.remote() for i in range(n)])
        return (lambda: ray.get([work.remote(actors) for _ in range(m)])), m * n

    def n_to_n_arg():
        n = scaled(1000)
        actors = warm([Actor._remote() for _ in range(n_cpu)])
        clients = [Client.remote(a) for a in actors]
        return (lambda: ray.get([c.small_value_batch_arg.remote(n) for c in clients])), n * len(clients)

    def placement_groups():
        count = scaled(100)

        def run():
            pgs = [ray.util.placement_group(bundles=[{"custom": 0.001}]) for _ in range(count)]
            for pg in pgs:
                pg.wait(timeout_seconds=30)
            for pg in pgs:
                ray.util.remove_placement_group(pg)
        return run, count

    return [
        ("single client get calls (Plasma Store)", get_calls),
        ("single client put calls (Plasma Store)", lambda: ((lambda: ray.put(0)), 1)),
        ("multi client put calls (Plasma Store)",
         lambda: ((lambda: ray.get([do_put_small.remote() for _ in range(10)])), 1000)),
        ("single client put gigabytes", put_large),
        ("single client tasks and get batch",
         lambda: ((lambda: ray.get([small_value.remote() for _ in range(scaled(1000))])), 1)),
        ("multi client put gigabytes",
         lambda: ((lambda: ray.get([do_put.remote() for _ in range(10)])), 10 * 10 * scaled(10 * 1024 * 1024) * 8 / 1e9)),
        ("single client get object containing 10k refs", containing_refs),
        ("single client wait 1k refs", wait_1k),
        ("single client tasks sync", lambda: ((lambda: ray.get(small_value.remote())), 1)),
        ("single client tasks async",
         lambda: ((lambda: ray.get([small_value.remote() for _ in range(scaled(1000))])), scaled(1000))),
        ("multi client tasks async", multi_client_tasks),
        ("1:1 actor calls sync", lambda: one_to_one_sync(Actor)),
        ("1:1 actor calls async", lambda: one_to_one(Actor)),
        ("1:1 actor calls concurrent", lambda: one_to_one(Actor, concurrent=True)),
        ("1:n actor calls async", lambda: one_to_n(Actor)),
        ("n:n actor calls async", lambda: n_to_n(Actor)),
        ("n:n actor calls with arg async", n_to_n_arg),
        ("1:1 async-actor calls sync", lambda: one_to_one_sync(AsyncActor)),
        ("1:1 async-actor calls async", lambda: one_to_one(AsyncActor)),
        ("1:1 async-actor calls with args async", lambda: one_to_one(AsyncActor, arg=True)),
        ("1:n async-actor calls async", lambda: one_to_n(AsyncActor)),
        ("n:n async-actor calls async", lambda: n_to_n(AsyncActor)),
        (PLACEMENT_GROUPS, placement_groups),
    ]


# Ray's names, in ray_perf.py's order (tests check that _shapes makes exactly these).
SHAPE_NAMES = [
    "single client get calls (Plasma Store)", "single client put calls (Plasma Store)",
    "multi client put calls (Plasma Store)", "single client put gigabytes", "single client tasks and get batch",
    "multi client put gigabytes", "single client get object containing 10k refs", "single client wait 1k refs",
    "single client tasks sync", "single client tasks async", "multi client tasks async", "1:1 actor calls sync",
    "1:1 actor calls async", "1:1 actor calls concurrent", "1:n actor calls async", "n:n actor calls async",
    "n:n actor calls with arg async", "1:1 async-actor calls sync", "1:1 async-actor calls async",
    "1:1 async-actor calls with args async", "1:n async-actor calls async", "n:n async-actor calls async",
    PLACEMENT_GROUPS,
]


def _selected(filter_text, exact=None):
    if exact:
        return [exact] if exact in SHAPE_NAMES else []
    return [n for n in SHAPE_NAMES if not filter_text or filter_text in n]


def run_ray_perf(duration, calls=0):
    """Ray's own microbenchmark module (ray/_private/ray_perf.py of the installed Ray), unchanged,
    with Shoal in place of `ray`: its imports of Ray's timing helper, Ray Client benchmark and
    build flag are answered by stand-ins (the Ray Client shapes are skipped: Shoal has no Ray
    Client); everything else it calls is Shoal's. Answers [(name, mean, sd)]."""
    import importlib.util
    import types
    import shoal
    spec = importlib.util.find_spec("ray")  # finds, does not import, the installed Ray
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("--ray-perf needs Ray installed (pip install ray): it runs Ray's own ray_perf.py")
    path = os.path.join(list(spec.submodule_search_locations)[0], "_private", "ray_perf.py")
    timer = Timer(duration, lambda name: print(f"... {name}", file=sys.stderr, flush=True), calls)

    def timeit(name, fn, multiplier=1, warmup_time_sec=10):
        r = timer.measure(name, fn, multiplier)
        print(name, "per second", round(r["mean"], 2), "+-", round(r["sd"], 2), flush=True)
        return [(name, r["mean"], r["sd"])]

    helpers = types.ModuleType("ray._private.ray_microbenchmark_helpers")
    helpers.timeit = timeit
    client = types.ModuleType("ray._private.ray_client_microbenchmark")
    client.main = lambda results=None: print("(Ray Client shapes skipped: Shoal has no Ray Client)", flush=True)
    raylet = types.ModuleType("ray._raylet")
    raylet.OPTIMIZED = True
    saved = {k: sys.modules.get(k) for k in ("ray", "ray._private", "ray._private.ray_microbenchmark_helpers",
                                              "ray._private.ray_client_microbenchmark", "ray._raylet")}
    sys.modules.update({"ray": shoal, "ray._private": shoal._private,
                        "ray._private.ray_microbenchmark_helpers": helpers,
                        "ray._private.ray_client_microbenchmark": client, "ray._raylet": raylet})
    shoal._raylet = raylet
    try:
        perf_spec = importlib.util.spec_from_file_location("ray_perf_under_shoal", path)
        module = importlib.util.module_from_spec(perf_spec)
        perf_spec.loader.exec_module(module)
        return [r for r in module.main() if r is not None]
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        del shoal._raylet


def run_python(backend, names, duration, scale=1.0, progress=True, calls=0):
    """Runs `names` under `backend` ("shoal" or "ray") in this process; answers the results."""
    if backend == "ray":
        import ray
    else:
        import shoal as ray
    total = len(names)
    done = [0]

    def report(name):
        done[0] += 1
        if progress:
            print(f"[{done[0]}/{total}] {name} ...", file=sys.stderr, flush=True)

    timer = Timer(duration, report, calls)
    results = []
    ray.init(address="local", resources={"custom": 100})  # a fresh cluster, never one already running
    try:
        shapes = dict(_shapes(ray, scale))
        for name in names:
            fn, multiplier = shapes[name]()
            results.append(timer.measure(name, fn, multiplier))
    finally:
        ray.shutdown()
    return results


def _cpp_runs(duration):
    """The C++ benchmark binaries: (binary, arguments, {its shape name: Ray's}, its rate field)."""
    rounds = max(50, int(1000 * duration))
    batches = max(2, int(2 * duration))
    return [
        ("shoal-bench-tasks", ["--sync", str(rounds), "--async-batches", str(batches), "--batch", "1000",
                               "--large", "2", "--large-batch", "1"],
         {"sync": "single client tasks sync", "async": "single client tasks async"}, "tasks_per_s"),
        ("shoal-bench-actors", ["--sync", str(rounds), "--batches", str(batches), "--batch", "1000",
                                "--n-batches", str(batches)],
         {"1_1_actor_calls_sync": "1:1 actor calls sync", "1_1_actor_calls_async": "1:1 actor calls async",
          "1_1_actor_calls_concurrent": "1:1 actor calls concurrent", "n_n_actor_calls_async": "n:n actor calls async"},
         "calls_per_s"),
    ]


def run_cpp(names, duration, report_missing=True):
    """The C++ API's versions of the task and actor round-trip shapes (build/bin/shoal-bench-*)."""
    bin_dir = os.environ.get("SHOAL_BIN_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                              "..", "..", "..", "bin")
    results = []
    wanted = set(names)
    for binary, args, by_shape, field in _cpp_runs(duration):
        if not wanted & set(by_shape.values()):
            continue
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            proc = subprocess.run([os.path.join(bin_dir, binary), *args, "--json", out.name], capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{binary} failed ({proc.returncode}): {proc.stderr[-2000:]}")
            with open(out.name) as f:
                doc = json.load(f)
        for entry in doc.get("results", []):
            shape = by_shape.get(entry.get("shape"))
            if shape in wanted:
                results.append({"name": shape, "mean": float(entry[field]), "sd": 0.0})
    missing = [n for n in names if not any(r["name"] == n for r in results)]
    if missing and report_missing:
        print(f"(the C++ API has no version of: {', '.join(missing)})", file=sys.stderr)
    return results


def _subprocess_shape(backend, name, duration, scale):
    cmd = [sys.executable, "-m", "shoal._private.microbenchmark", "--backend", backend, "--shape", name,
           "--duration", str(duration), "--scale", str(scale), "--json", "-", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    os.environ.get("PYTHONPATH", "")] if p)))
    if proc.returncode != 0:
        raise RuntimeError(f"{backend} failed on {name!r}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["results"][0]


def compare(names, duration, scale=1.0):
    rows = []
    for i, name in enumerate(names):
        print(f"[{i + 1}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        order = ("ray", "shoal") if i % 2 == 0 else ("shoal", "ray")
        got = {backend: _subprocess_shape(backend, name, duration, scale) for backend in order}
        ratio = got["shoal"]["mean"] / got["ray"]["mean"] if got["ray"]["mean"] else float("inf")
        rows.append({"name": name, "ray": got["ray"], "shoal": got["shoal"], "ratio": ratio})
    return rows


def compare_cpp(names, duration, scale=1.0):
    """Shoal's C++ API against Ray's Python API, shape by shape: each C++ binary runs its shapes in
    one process, so Ray and Shoal alternate binary by binary (which goes first, too)."""
    rows = []
    groups = [[n for n in by_shape.values() if n in names] for _, _, by_shape, _ in _cpp_runs(duration)]
    missing = [n for n in names if not any(n in g for g in groups)]
    if missing:
        print(f"(the C++ API has no version of: {', '.join(missing)})", file=sys.stderr)
    done = 0
    for i, group in enumerate(g for g in groups if g):
        print(f"[{done + 1}-{done + len(group)}/{sum(map(len, groups))}] {', '.join(group)} ...", file=sys.stderr,
              flush=True)
        done += len(group)
        parts = {"ray": lambda: {n: _subprocess_shape("ray", n, duration, scale) for n in group},
                 "shoal": lambda: {r["name"]: r for r in run_cpp(group, duration, report_missing=False)}}
        order = ("ray", "shoal") if i % 2 == 0 else ("shoal", "ray")
        got = {backend: parts[backend]() for backend in order}
        for n in group:
            ray, shoal = got["ray"][n], got["shoal"][n]
            rows.append({"name": n, "ray": ray, "shoal": shoal,
                         "ratio": shoal["mean"] / ray["mean"] if ray["mean"] else float("inf")})
    return rows


def markdown(rows, machine, commit, api="python"):
    cpp = api == "cpp"
    lines = [f"## `shoal microbenchmark {'--api cpp ' if cpp else ''}--compare-ray` — "
             f"{datetime.date.today().isoformat()}", "",
             f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), "
             f"{machine['memory_bytes'] / 2**30:.0f} GiB; Shoal commit {commit or '?'}; "
             + ("Shoal's C++ API against Ray's Python API; they alternate binary by binary, each in a fresh process."
                if cpp else "Ray and Shoal alternate shape by shape, each in a fresh process."), "",
             f"| shape | Ray /s | Shoal{' C++' if cpp else ''} /s | Shoal/Ray |", "| --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['ray']['mean']:,.1f} | {r['shoal']['mean']:,.1f} | {r['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="shoal microbenchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", default="", help="run the shapes whose name contains this")
    parser.add_argument("--json", help="write the results here ('-': stdout)")
    parser.add_argument("--duration", type=float, default=8.0, help="timed seconds per shape (4 windows)")
    parser.add_argument("--api", choices=("python", "cpp"), default="python")
    parser.add_argument("--compare-ray", action="store_true", help="run each shape under Ray and Shoal")
    parser.add_argument("--markdown", help="with --compare-ray: write the comparison table here")
    parser.add_argument("--backend", choices=("shoal", "ray"), default="shoal", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)  # tests: smaller batches
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)  # tests: N calls, no windows
    parser.add_argument("--ray-perf", action="store_true",
                        help="run Ray's own ray_perf.py (from the installed Ray) with Shoal in place of ray")
    args = parser.parse_args(argv)
    if not args.duration > 0:
        parser.error(f"--duration must be positive, got {args.duration}")
    if not 0 < args.scale <= 1:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    names = _selected(args.filter, args.shape)
    if not names:
        parser.error(f"no shape matches {args.shape or args.filter!r}; the shapes are:\n  " + "\n  ".join(SHAPE_NAMES))
    machine, commit = _machine(), _commit()
    doc = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine, "commit": commit,
           "api": args.api, "duration_s": args.duration}
    if args.ray_perf:
        doc["ray_perf"] = [{"name": n, "mean": float(m), "sd": float(sd)} for n, m, sd in
                           run_ray_perf(args.duration, args.calls)]
    elif args.compare_ray:
        import importlib.util
        if importlib.util.find_spec("ray") is None:
            parser.error("--compare-ray needs Ray installed (pip install ray); Shoal does not depend on it")
        if args.api == "cpp":
            rows = compare_cpp(names, args.duration, args.scale)
        else:
            rows = compare(names, args.duration, args.scale)
        print(f"{'shape':45s} {'Ray /s':>14s} {'Shoal /s':>14s} {'Shoal/Ray':>10s}")
        for r in rows:
            print(f"{r['name']:45s} {r['ray']['mean']:14,.1f} {r['shoal']['mean']:14,.1f} {r['ratio']:10.2f}")
        doc["comparison"] = rows
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(markdown(rows, machine, commit, args.api))
    else:
        if args.api == "cpp":
            results = run_cpp(names, args.duration)
        else:
            results = run_python(args.backend, names, args.duration, args.scale, progress=not args.quiet,
                                 calls=args.calls)
        for r in results:
            if not args.quiet:
                print(f"{r['name']:45s} per second {r['mean']:14,.2f} +- {r['sd']:,.2f}")
        doc["backend"] = args.backend
        doc["results"] = results
    if args.json == "-":
        print(json.dumps(doc))
    elif args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
