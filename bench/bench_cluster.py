"""A throwaway cluster for the Python benchmarks: `shoal start` under a temporary root."""
import contextlib
import os
import shutil
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOAL = os.path.join(REPO, "build", "bin", "shoal")


@contextlib.contextmanager
def local_cluster(prefix, head_cpus, workers=()):
    """Yields (address, env) of a head with `head_cpus` CPUs plus one node per entry of
    `workers` (extra `shoal start` arguments); stops them all and removes the root after."""
    root = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    env = dict(os.environ, SHOAL_TMPDIR=root)
    for var in ("SHOAL_ADDRESS", "RAY_ADDRESS", "SHOAL_AUTH_TOKEN"):
        env.pop(var, None)
    os.environ.update(SHOAL_TMPDIR=root)
    try:
        head = subprocess.run([SHOAL, "start", "--head", "--port", "0", "--num-cpus", str(head_cpus),
                               "--include-dashboard=false"], env=env, check=True, capture_output=True, text=True).stdout
        address = head.split("GCS address:", 1)[1].split()[0]
        for args in workers:
            subprocess.run([SHOAL, "start", "--address", address, *args], env=env, check=True, capture_output=True)
        yield address, env
    finally:
        subprocess.run([SHOAL, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
