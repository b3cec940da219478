"""Microseconds of CPU per call by part (kernel, Python, gRPC + protobuf, Shoal's core, libc,
absl), from a system-wide `perf record` of RECORD_SECONDS over a call_profile.py run:

    python3 bench/profile/breakdown.py perf.data result.json [RECORD_SECONDS] [CPUS]
"""
import json
import re
import subprocess
import sys

data, result = sys.argv[1], json.load(open(sys.argv[2]))
record_s = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
cpus = int(sys.argv[4]) if len(sys.argv) > 4 else 2
out = subprocess.run(["perf", "report", "-i", data, "--sort", "comm,dso", "--stdio", "-g", "none"],
                     capture_output=True, text=True).stdout
rows = []
for line in out.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(.+?)\s*$", line)
    if m:
        rows.append((float(m.group(1)), m.group(2), m.group(3)))
calls = result["calls"] * record_s / result["wall_s"]  # the calls made while perf recorded


def per(pct):
    return pct / 100 * cpus * record_s / calls * 1e6


cats = {}


def cat(comm, dso):
    if comm == "swapper": return "idle"
    if dso.startswith("[kernel"): return "kernel (syscalls, wake-ups, scheduling)"
    if "libpython" in dso or "_pickle" in dso or "_struct" in dso or dso.startswith("_") and "core" not in dso: return "Python interpreter + pickle"
    if "grpc" in dso or "gpr" in dso or "protobuf" in dso or "libcrypto" in dso or "libssl" in dso: return "gRPC + protobuf"
    if "_core" in dso: return "Shoal core (_core.so)"
    if "absl" in dso: return "absl (mutexes, hashing)"
    if "libc.so" in dso or "libstdc++" in dso or "ld-linux" in dso: return "libc (malloc, memcpy, futex wrappers)"
    return "other"


for pct, comm, dso in rows:
    c = cat(comm, dso)
    cats[c] = cats.get(c, 0) + pct
busy = sum(v for k, v in cats.items() if k != "idle")
print(f"{result['shape']}: {result['us_per_call']:.0f} us per call (wall), CPU {per(busy):.0f} us per call over both processes")
for k, v in sorted(cats.items(), key=lambda kv: -kv[1]):
    if k == "idle": continue
    print(f"  {k:45s} {per(v):7.1f} us  ({v / busy * 100:4.1f}% of CPU)")
