"""Tensors that stay with the actor that returned them.

An actor method declared with @shoal.method(tensor_transport="nccl") (or called with
.options(tensor_transport=...)) keeps the torch tensors, CuPy arrays and numpy arrays it returns
(at the top level or inside lists, tuples and dicts) in its own process, on their device; the
stored value holds a placeholder per tensor (shape, dtype, device, holder address, a secret).
Whoever deserializes the value -- a task or actor given the ref, or shoal.get -- gets each tensor
moved to it, by a transport the runtime picks:

  * CUDA IPC when both sides are on one node and one physical GPU (NCCL refuses two ranks on a
    device): a copy on the consumer's device from the holder's memory;
  * NCCL between two GPUs: a two-rank communicator per holder/consumer pair, made on first use
    (its rendezvous through the GCS KV, src/collective), send on one side, recv on the other;
  * host staging otherwise (a side with no GPU, numpy arrays, CPU tensors): the holder puts the
    bytes into its node's object store once (and owns them until the tensor is freed); the
    consumer reads them as any object (zero-copy on that node, pulled in chunks from another) into
    a tensor of its own; one with a GPU gets a CUDA tensor again, one without (a driver on a
    laptop) a CPU tensor.

The holder serves transfers from a thread of its own, so a busy actor still serves them, and
frees the tensors when the caller that owns the ref lets go of it (the owner watches the ref in
its core worker and calls the actor's built-in __shoal_free_tensors__). A holder that died
before the transfer makes the consumer's deserialization raise ObjectLostError.

Control messages (holder <-> consumer, one request per connection): a 4-byte length and a JSON
document each way; tensor bytes never travel on it (they go by IPC, NCCL or the object store).
Nothing received is unpickled; a request must carry the placeholder's secret, which only readers
of the object (authenticated clients of the cluster) know.
"""
import base64
import hmac
import json
import os
import queue
import secrets
import socket
import struct
import sys
import threading

TRANSPORTS = ("object_store", "nccl", "gloo")
RESERVED_KEYWORD = "__shoal_tensor_transport__"

_lock = threading.Lock()
_held = {}        # key (return object id hex) -> (secret, [tensors], {index: staged host ObjectRef})
_server = None
_pairs = {}       # pair group name -> (group handle, lock)
_watched = {}     # object id bytes -> actor handle holding it
_free_queue = None
_handler_core = None  # the core worker the freed handler is set on
_transfers = {"ipc": 0, "nccl": 0, "host": 0, "local": 0}  # how this process got held tensors


def validate(transport):
    if transport is None:
        return
    if transport not in TRANSPORTS:
        raise ValueError(f"tensor_transport must be one of {list(TRANSPORTS)}, got {transport!r} "
                         "(Shoal picks NCCL, CUDA IPC or host staging by itself for 'nccl' and 'gloo')")


def _kind(value):
    module = type(value).__module__
    if module.startswith("numpy") and type(value).__name__ == "ndarray":
        return "numpy"
    if module.startswith("torch") and "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor):
        return "torch"
    if module.startswith("cupy") and type(value).__name__ == "ndarray":
        return "cupy"
    return None


def _device_of(tensor, kind):
    if kind == "torch":
        return tensor.device.index if tensor.is_cuda else -1
    if kind == "cupy":
        return tensor.device.id
    return -1


def _dtype_name(tensor, kind):
    return str(tensor.dtype).replace("torch.", "") if kind == "torch" else tensor.dtype.name


def _device_uuid(device):
    if device < 0:
        return ""
    from shoal import _core
    try:
        return _core.gpu_device_uuid(device)
    except Exception:  # noqa: BLE001 - no GPU library: no IPC
        return ""


def _contiguous(tensor, kind):
    if kind == "torch":
        return tensor.contiguous()
    if kind == "cupy":
        import cupy
        return cupy.ascontiguousarray(tensor)
    import numpy
    return numpy.ascontiguousarray(tensor)


class _Placeholder:
    """A held tensor inside a stored value: unpickling it fetches the tensor (see _rebuild)."""

    def __init__(self, desc):
        self.desc = desc

    def __reduce__(self):
        return (_rebuild, (self.desc,))


def hold(value, key):
    """Keeps the tensors in `value` here under `key`; answers `value` with placeholders."""
    tensors = []
    secret = secrets.token_hex(16)
    server = None

    def walk(v):
        nonlocal server
        kind = _kind(v)
        if kind is not None:
            v = _contiguous(v, kind)  # IPC, NCCL and staging move whole contiguous buffers
            if server is None:
                server = _ensure_server()
            device = _device_of(v, kind)
            tensors.append(v)
            return _Placeholder({"key": key, "index": len(tensors) - 1, "kind": kind, "shape": list(v.shape),
                                 "dtype": _dtype_name(v, kind), "device": device, "uuid": _device_uuid(device),
                                 "node": os.environ.get("SHOAL_NODE_ID", ""), "address": server.address,
                                 "secret": secret})
        if type(v) in (list, tuple):
            return type(v)(walk(x) for x in v)
        if type(v) is dict:
            return {k: walk(x) for k, x in v.items()}
        return v

    out = walk(value)
    if tensors:
        with _lock:
            _held[key] = (secret, tensors, {})
    return out


def release(keys):
    """Frees held tensors (the built-in actor method __shoal_free_tensors__)."""
    with _lock:
        for key in keys:
            _held.pop(key, None)
    return len(keys)


def transfer_counts():
    """How many held tensors this process received, by transport ("local": its own)."""
    with _lock:
        return dict(_transfers)


def _count(mode):
    with _lock:
        _transfers[mode] += 1


def held_count():
    with _lock:
        return sum(len(entry[1]) for entry in _held.values())


# --- the holder's server ----------------------------------------------------------------------


def _send_json(conn, doc):
    body = json.dumps(doc).encode()
    conn.sendall(struct.pack("<I", len(body)) + body)


def _recv_exact(conn, n):
    chunks = []
    while n > 0:
        chunk = conn.recv(min(n, 1 << 22))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv_json(conn, limit=1 << 16):
    (n,) = struct.unpack("<I", _recv_exact(conn, 4))
    if n > limit:
        raise ValueError("oversized header")
    return json.loads(_recv_exact(conn, n))


def _host_array(tensor, kind):
    """The tensor's bytes as a contiguous host numpy array (a device tensor is copied off first)."""
    import numpy
    if kind == "numpy":
        return numpy.ascontiguousarray(tensor)
    if kind == "torch":
        import torch
        return tensor.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy()
    return numpy.ascontiguousarray(tensor.get())


def _stage(key, index, tensor, kind):
    """Host staging: the tensor's bytes put into this node's object store once per held tensor
    (kept, and owned, by the holder until the tensor is freed); answers (object id hex, owner)."""
    from shoal._private import runtime
    with _lock:
        entry = _held.get(key)
        staged = entry[2].get(index) if entry is not None else None
    if staged is None:
        ref = runtime.put(_host_array(tensor, kind))
        with _lock:
            entry = _held.get(key)
            if entry is None:
                raise KeyError("the tensor was freed")
            staged = entry[2].setdefault(index, ref)
    core = runtime.core()
    return staged.hex(), core.address


class _Server:
    def __init__(self):
        from shoal._private import runtime
        host = runtime.local_node_ip() if runtime.is_initialized() else "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        port = self.sock.getsockname()[1]
        self.address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        threading.Thread(target=self._accept, name="shoal-tensor-server", daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            try:
                conn.settimeout(600)
                req = _recv_json(conn)
                with _lock:
                    entry = _held.get(req.get("key"))
                if entry is None or not hmac.compare_digest(entry[0], str(req.get("secret", ""))):
                    _send_json(conn, {"error": "no such tensor here (it was freed, or the request is not "
                                               "the holder's)"})
                    return
                tensors = entry[1]
                index = req.get("index")
                if not isinstance(index, int) or not 0 <= index < len(tensors):
                    _send_json(conn, {"error": "bad tensor index"})
                    return
                tensor = tensors[index]
                kind = _kind(tensor)
                mode = req.get("mode")
                if mode == "host":
                    object_id, owner = _stage(req["key"], index, tensor, kind)
                    _send_json(conn, {"object_id": object_id, "owner": owner})
                elif mode == "ipc":
                    from shoal import _core
                    from shoal.util.collective.collective import _describe
                    address, count, dtype, device, stream = _describe(tensor, writable=False)
                    nbytes = tensor.numel() * tensor.element_size() if kind == "torch" else tensor.nbytes
                    handle = _core.gpu_export_ipc(address, nbytes, device, stream)
                    _send_json(conn, {"handle": base64.b64encode(handle).decode(), "nbytes": nbytes})
                    _recv_json(conn)  # the consumer's "copied": the tensor stays held until then anyway
                elif mode == "nccl":
                    name = str(req.get("pair", ""))
                    _send_json(conn, {"ok": True})  # first: the consumer joins the pair after this
                    group, pair_lock = _pair(name, 0, _device_of(tensor, kind))
                    with pair_lock:
                        from shoal.util.collective.collective import _call, _describe
                        try:
                            _call(group.send, *_describe(tensor, writable=False), 1)
                        except Exception:
                            _drop_pair(name)
                            raise
                else:
                    _send_json(conn, {"error": f"unknown transfer mode {mode!r}"})
            except Exception as e:  # noqa: BLE001 - the consumer hears of it as a closed connection
                try:
                    _send_json(conn, {"error": f"{type(e).__name__}: {e}"})
                except OSError:
                    pass


def _ensure_server():
    global _server
    with _lock:
        if _server is None:
            _server = _Server()
        return _server


_pair_joining = {}  # pair group name -> lock held while it is being joined


def _pair(name, rank, device):
    """The two-rank NCCL group `name` (holder rank 0, consumer rank 1), joined on first use (once:
    concurrent first uses wait for the one join)."""
    with _lock:
        entry = _pairs.get(name)
        joining = _pair_joining.setdefault(name, threading.Lock()) if entry is None else None
    if entry is not None:
        return entry
    with joining:
        with _lock:
            entry = _pairs.get(name)
        if entry is not None:
            return entry
        from shoal._private import runtime
        from shoal.util.collective.collective import _call
        group = _call(runtime.core().join_collective_group, name, 2, rank, "nccl", runtime.local_node_ip(), 300.0,
                      600.0, device)
        entry = (group, threading.Lock())
        with _lock:
            _pairs[name] = entry
            _pair_joining.pop(name, None)
        return entry


def _drop_pair(name):
    """A pair whose transfer failed is aborted for good: forget it (the next transfer makes a new
    one, under a new name) and leave it."""
    with _lock:
        entry = _pairs.pop(name, None)
    if entry is not None:
        try:
            entry[0].destroy()
        except Exception:  # noqa: BLE001
            pass


# --- the consumer -----------------------------------------------------------------------------


def _lost(desc, why):
    from shoal.exceptions import ObjectLostError
    return ObjectLostError(f"the {desc['kind']} tensor {desc['key']}[{desc['index']}] held by the actor at "
                           f"{desc['address']} cannot be fetched: {why} (did the holder die, or was the ref freed?)")


def _connect(desc):
    host, _, port = desc["address"].rpartition(":")
    host = host.strip("[]")
    try:
        return socket.create_connection((host, int(port)), timeout=30)
    except OSError as e:
        raise _lost(desc, str(e)) from None


def _local_cuda_device(kind):
    """The CUDA device a fetched tensor lands on here, or -1 (this process has no GPU)."""
    try:
        if kind == "torch":
            import torch
            return torch.cuda.current_device() if torch.cuda.is_available() else -1
        if kind == "cupy":
            import cupy
            return cupy.cuda.Device().id if cupy.cuda.runtime.getDeviceCount() > 0 else -1
    except Exception:  # noqa: BLE001 - no usable CUDA here
        return -1
    return -1


def _empty(desc, device):
    if desc["kind"] == "torch":
        import torch
        return torch.empty(desc["shape"], dtype=getattr(torch, desc["dtype"]),
                           device=f"cuda:{device}" if device >= 0 else "cpu")
    if desc["kind"] == "cupy":
        import cupy
        with cupy.cuda.Device(device):
            return cupy.empty(desc["shape"], dtype=desc["dtype"])
    import numpy
    return numpy.empty(desc["shape"], dtype=desc["dtype"])


def _rebuild(desc):
    """Unpickling a placeholder: the held tensor itself in the holder, else a transferred copy."""
    with _lock:
        entry = _held.get(desc["key"])
    if entry is not None and hmac.compare_digest(entry[0], desc["secret"]):
        _count("local")
        return entry[1][desc["index"]]
    kind, source = desc["kind"], desc["device"]
    target = _local_cuda_device(kind) if source >= 0 else -1
    if target >= 0 and desc["node"] == _my_node() and desc["uuid"] and \
            _device_uuid(target) == desc["uuid"]:
        mode, out = "ipc", _fetch_ipc(desc, target)
    elif target >= 0:
        mode, out = "nccl", _fetch_nccl(desc, target)
    else:
        mode, out = "host", _fetch_host(desc)
    _count(mode)
    return out


def _my_node():
    node = os.environ.get("SHOAL_NODE_ID")
    if node:
        return node
    from shoal._private import runtime
    return runtime.connected_identity()["NodeId"]


def _request(desc, mode, **extra):
    conn = _connect(desc)
    try:
        _send_json(conn, {"key": desc["key"], "index": desc["index"], "secret": desc["secret"], "mode": mode,
                          **extra})
        reply = _recv_json(conn)
    except (OSError, ValueError) as e:
        conn.close()
        raise _lost(desc, str(e)) from None
    if "error" in reply:
        conn.close()
        raise _lost(desc, reply["error"])
    return conn, reply


def _fetch_host(desc):
    """Through the object store: the holder staged the bytes there; this process reads them like
    any object (zero-copy on the holder's node, pulled in chunks from another) and copies them into
    a tensor of its own."""
    import numpy
    from shoal._private import runtime
    conn, reply = _request(desc, "host")
    conn.close()
    ref = runtime._rebuild_ref(bytes.fromhex(reply["object_id"]), reply["owner"])
    try:
        data = runtime.get(ref, timeout=600)
    except Exception as e:  # noqa: BLE001 - the holder died between staging and reading
        raise _lost(desc, f"{type(e).__name__}: {e}") from None
    kind = desc["kind"]
    if kind == "numpy":
        return numpy.array(data, copy=True).reshape(desc["shape"])
    if kind == "torch":
        import torch
        dtype = getattr(torch, desc["dtype"])
        t = torch.from_numpy(numpy.array(data, copy=True)).view(dtype).reshape(desc["shape"])
        target = _local_cuda_device("torch") if desc["device"] >= 0 else -1  # a CPU tensor stays one
        return t.to(f"cuda:{target}") if target >= 0 else t
    import cupy
    return cupy.asarray(numpy.array(data).view(desc["dtype"]).reshape(desc["shape"]))


def _fetch_ipc(desc, device):
    from shoal import _core
    from shoal.util.collective.collective import _describe
    out = _empty(desc, device)
    conn, reply = _request(desc, "ipc")
    with conn:
        address, _, _, _, stream = _describe(out)
        _core.gpu_copy_from_ipc(base64.b64decode(reply["handle"]), address, reply["nbytes"], device, stream)
        _send_json(conn, {"copied": True})
    return out


_pair_generation = {}  # pair base name -> generation (a failed pair is replaced by a new one)
_consumer_locks = {}   # pair base name -> lock: one request outstanding per pair


def _fetch_nccl(desc, device):
    from shoal._private import runtime
    from shoal.util.collective.collective import _call, _describe
    me = os.environ.get("SHOAL_WORKER_ID") or runtime.connected_identity()["WorkerId"]
    base = f"{runtime.core().job_id}/tensor-pair/{desc['address']}-{desc['device']}/{me}-{device}"
    with _lock:
        lock = _consumer_locks.setdefault(base, threading.Lock())
    out = _empty(desc, device)
    with lock:  # request and recv together: the holder sends in the order requests arrive
        with _lock:
            name = f"{base}/{_pair_generation.get(base, 0)}"
        conn, _ = _request(desc, "nccl", pair=name)
        with conn:
            try:
                group, _ = _pair(name, 1, device)
                _call(group.recv, *_describe(out), 0)
            except Exception as e:  # noqa: BLE001
                _drop_pair(name)
                with _lock:
                    _pair_generation[base] = _pair_generation.get(base, 0) + 1
                raise _lost(desc, f"NCCL transfer failed: {e}") from None
    return out


# --- the owner: freeing ------------------------------------------------------------------------


def watch(refs, actor):
    """The caller owns `refs` (returns of a tensor-transport call on `actor`): when each is freed,
    the actor frees the tensors it holds for it."""
    global _free_queue, _handler_core
    from shoal._private import runtime
    core = runtime.core()
    with _lock:
        if _free_queue is None:
            _free_queue = queue.Queue()
            threading.Thread(target=_free_loop, args=(_free_queue,), name="shoal-tensor-free", daemon=True).start()
            runtime.before_core_shutdown.append(_unhook)
        if _handler_core is not core:  # once per connection (shoal.init after shutdown: a new core)
            core.set_freed_handler(_free_queue.put)
            _handler_core = core
        for ref in refs:
            _watched[ref.binary()] = actor
    for ref in refs:
        core.watch_free(ref.binary())


def _unhook():
    """Before the core shuts down: its freed handler (a Python callable) goes while the GIL is held."""
    global _handler_core
    with _lock:
        core, _handler_core = _handler_core, None
        _watched.clear()
    if core is not None:
        core.set_freed_handler(None)


def _free_loop(q):
    while True:
        ids = q.get()
        by_actor = {}
        with _lock:
            for i in ids:
                actor = _watched.pop(bytes(i), None)
                if actor is not None:
                    by_actor.setdefault(actor, []).append(bytes(i).hex())
        for actor, keys in by_actor.items():
            try:
                actor._call("__shoal_free_tensors__", (keys,), {}, {"num_returns": 1})
            except Exception:  # noqa: BLE001 - a dead actor freed them already
                pass
