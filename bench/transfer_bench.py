"""Node-to-node object transfer between raylets on this machine, against a plain TCP stream.

    python3 bench/transfer_bench.py [--size-mib 1024] [--broadcast-mib 256] [--receivers 8]
                                    [--repeat 3] [--json FILE]

1. TCP baseline: one process streams --size-mib over a loopback socket to another, which reads
   it into a buffer it touched beforehand (what any transfer must at least do: two kernel copies).
2. One object of --size-mib put into a worker raylet's store and fetched by the head raylet
   (`shoal-store-tool fetch`, timed around the Fetch call), --repeat times (deleted in between).
3. Broadcast: one object of --broadcast-mib on one raylet fetched by --receivers others at once.
Prints a table; --json writes the figures with the machine and date. SHOAL_OBJECT_TRANSFER=grpc
runs the raylets with pulls over gRPC instead of plain sockets (to compare).
"""
import argparse
import concurrent.futures
import glob
import json
import os
import platform
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cluster import REPO, local_cluster  # noqa: E402

TOOL = os.path.join(REPO, "build", "bin", "shoal-store-tool")
MiB = 1 << 20


def tool(env, *args):
    proc = subprocess.run([TOOL, *map(str, args)], env=env, capture_output=True, text=True, timeout=600)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if proc.returncode != 0 or "error" in out:
        raise RuntimeError(f"shoal-store-tool {' '.join(map(str, args))}: {proc.stdout} {proc.stderr}")
    return out


def raylets(root):
    out = {}
    for path in glob.glob(os.path.join(root, "**", "raylet.ready.json"), recursive=True):
        with open(path) as f:
            rec = json.load(f)
        rec["head"] = os.path.exists(os.path.join(os.path.dirname(path), "gcs.ready.json"))
        out[rec["pid"]] = rec  # session_latest links to a session a second time
    return sorted(out.values(), key=lambda r: (not r["head"], r["port"]))


def object_id(n):
    return f"{n:056x}"


def tcp_baseline(size):
    """Seconds to stream `size` bytes over loopback TCP from one process to another."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sender = subprocess.Popen([sys.executable, "-c", f"""
import socket
buf = bytearray(b"x" * (8 << 20))
s = socket.create_connection(("127.0.0.1", {port}))
left = {size}
while left:
    n = min(left, len(buf))
    s.sendall(memoryview(buf)[:n])
    left -= n
s.close()
"""])
    conn, _ = listener.accept()
    buf = bytearray(size)  # zero-filled: every page touched before the clock starts
    view = memoryview(buf)
    got = 0
    start = time.perf_counter()
    while got < size:
        n = conn.recv_into(view[got:], min(size - got, 8 << 20))
        if n == 0:
            break
        got += n
    seconds = time.perf_counter() - start
    conn.close()
    listener.close()
    sender.wait()
    assert got == size, f"TCP baseline got {got} of {size} bytes"
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--broadcast-mib", type=int, default=256)
    ap.add_argument("--receivers", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    size = args.size_mib * MiB
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": {
        "cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30), 1)},
        # The raylets' data path: plain sockets (the default) or gRPC's Pull stream.
        "object_transfer": os.environ.get("SHOAL_OBJECT_TRANSFER", "socket")}

    tcp = [tcp_baseline(size) for _ in range(args.repeat)]
    results["tcp_loopback_gbps"] = [round(size / s / 1e9, 3) for s in tcp]
    print(f"plain TCP loopback, {args.size_mib} MiB: " + ", ".join(f"{size / s / 1e9:.2f} GB/s" for s in tcp))

    store_mib = max(args.size_mib, args.broadcast_mib) + 256
    # Stores are memfd arenas that take memory only as it is written.
    workers = [["--num-cpus", "0", "--object-store-memory", str(store_mib * MiB)] for _ in range(args.receivers)]
    with local_cluster("shoal-transfer-", 0, workers) as (_, env):
        env = dict(env)
        nodes = raylets(env["SHOAL_TMPDIR"])
        assert len(nodes) == 1 + len(workers), nodes
        head, source = nodes[0], nodes[1]
        tokens = glob.glob(os.path.join(env["SHOAL_TMPDIR"], "**", "auth_token"), recursive=True)
        with open(tokens[0]) as f:
            env["SHOAL_AUTH_TOKEN"] = f.read().strip()
        addr = lambda r: f"127.0.0.1:{r['port']}"  # noqa: E731

        rates = []
        for i in range(args.repeat):
            oid = object_id(1000 + i)
            put = tool(env, "put", "--socket", source["store_socket"], "--id", oid, "--size", size, "--seed", i)
            out = tool(env, "fetch", "--raylet", addr(head), "--id", oid, "--from", addr(source))
            got = tool(env, "get", "--socket", head["store_socket"], "--id", oid)
            assert got["checksum"] == put["checksum"], "the fetched copy differs"
            rates.append(size / out["seconds"] / 1e9)
            tool(env, "delete", "--socket", head["store_socket"], "--id", oid)
            tool(env, "delete", "--socket", source["store_socket"], "--id", oid)
        results["node_to_node_gbps"] = [round(r, 3) for r in rates]
        best_tcp = max(size / s / 1e9 for s in tcp)
        print(f"node to node, {args.size_mib} MiB: " + ", ".join(f"{r:.2f} GB/s" for r in rates) +
              f"  (best {max(rates) / best_tcp:.0%} of the best TCP stream)")

        # Broadcast from the head's store to every worker raylet at once.
        bsize = args.broadcast_mib * MiB
        oid = object_id(2000)
        put = tool(env, "put", "--socket", head["store_socket"], "--id", oid, "--size", bsize, "--seed", 9)
        receivers = nodes[1:1 + args.receivers]
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(len(receivers)) as pool:
            outs = list(pool.map(lambda r: tool(env, "fetch", "--raylet", addr(r), "--id", oid,
                                                "--from", addr(head)), receivers))
        total = time.perf_counter() - start
        for r in receivers:
            assert tool(env, "get", "--socket", r["store_socket"], "--id", oid)["checksum"] == put["checksum"]
        per_node = [bsize / o["seconds"] / 1e9 for o in outs]
        results["broadcast"] = {"mib": args.broadcast_mib, "receivers": len(receivers), "seconds": round(total, 3),
                                "per_node_gbps": [round(r, 3) for r in per_node],
                                "aggregate_gbps": round(bsize * len(receivers) / total / 1e9, 3)}
        print(f"broadcast of {args.broadcast_mib} MiB to {len(receivers)} raylets: {total:.2f} s, "
              f"per node {min(per_node):.2f}-{max(per_node):.2f} GB/s, "
              f"aggregate {bsize * len(receivers) / total / 1e9:.2f} GB/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
