"""How long runtime environments take to set up, cold and cached.

    PYTHONPATH=build/python python3 bench/runtime_env_setup.py [--json FILE] [--pypi PACKAGE]

Starts its own cluster (a head and one worker node, under a temporary root, with `shoal start`)
and times, end to end as a user sees it (submit -> result of a no-op task on the worker node):
  - a plain task (no environment), for reference;
  - working_dir of 20 MiB (200 files): first use (zip, upload, fetch, unpack) and a second
    environment naming the same package (cached on the node);
  - pip with a local wheel (`--no-index`): first use (virtualenv + install) and a second
    environment with the same requirements (cached);
  - with --pypi NAME: pip from the package index, cold (needs the network).
Prints a table and, with --json, writes the figures with the date and the machine.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOAL = os.path.join(REPO, "build", "bin", "shoal")


def make_wheel(directory, name):
    info = f"{name}-1.0.dist-info"
    path = os.path.join(directory, f"{name}-1.0-py3-none-any.whl")
    files = {f"{name}/__init__.py": "VALUE = 1\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("--pypi", help="also time a pip install of this package from the index")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="shoal-renv-bench-", dir="/tmp")
    env = dict(os.environ, SHOAL_TMPDIR=root)
    for var in ("SHOAL_ADDRESS", "RAY_ADDRESS", "SHOAL_AUTH_TOKEN"):
        env.pop(var, None)
    os.environ.update(SHOAL_TMPDIR=root)
    head = subprocess.run([SHOAL, "start", "--head", "--port", "0", "--num-cpus", "1", "--include-dashboard=false"],
                          env=env, check=True, capture_output=True, text=True).stdout
    address = head.split("GCS address:", 1)[1].split()[0]
    figures = {}
    try:
        subprocess.run([SHOAL, "start", "--address", address, "--num-cpus", "2", "--resources", '{"W": 100}'],
                       env=env, check=True, capture_output=True)
        import shoal
        shoal.init(address=address)

        @shoal.remote(num_cpus=0, resources={"W": 1})
        def noop():
            return os.getpid()

        def timed(name, runtime_env=None):
            f = noop.options(runtime_env=runtime_env) if runtime_env else noop
            start = time.perf_counter()
            shoal.get(f.remote(), timeout=900)
            figures[name] = round(time.perf_counter() - start, 3)
            print(f"{name:45s} {figures[name]:8.2f} s", flush=True)

        timed("plain task (worker start)")
        timed("plain task (warm worker)")
        work = tempfile.mkdtemp(prefix="wd-", dir=root)
        for i in range(200):
            with open(os.path.join(work, f"f{i:03d}.bin"), "wb") as f:
                f.write(os.urandom(100 << 10))
        timed("working_dir 20 MiB: first use", {"working_dir": work})
        timed("working_dir 20 MiB: same package, new env", {"working_dir": work, "env_vars": {"B": "1"}})
        wheel = make_wheel(root, "benchwheel")
        pip = {"py_modules": [wheel], "pip": {"packages": [], "pip_install_options": ["--no-index"]}}
        timed("pip (local wheel): first use", pip)
        timed("pip (local wheel): same requirements, new env", dict(pip, env_vars={"B": "2"}))
        if args.pypi:
            timed(f"pip {args.pypi} from the index: first use", {"pip": [args.pypi]})
        shoal.shutdown()
    finally:
        subprocess.run([SHOAL, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.date.today().isoformat(), "machine": {
                "cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
                "seconds": figures}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
