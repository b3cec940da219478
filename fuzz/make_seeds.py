#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (committed; run again after a format change).

Seeds are small real examples: object-store frames laid out as src/object_store/protocol.h
specifies (each decodes: the req_* as requests, the rep_* as replies),
submit bodies as Ray's JobSubmissionClient and `shoal job submit` send them, stored job records
as JobRecord::Serialize writes them, runtime_envs, and request headers. The targets that read
their input through libFuzzer's FuzzedDataProvider (store_stream, websocket, http_auth) take
strings from the front, each ended by a backslash and one more byte, and numbers from the back.
"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

CONNECT, CREATE, SEAL, ABORT, GET, RELEASE, DELETE, CONTAINS, STATS = range(1, 10)
OID = bytes(range(24)) + struct.pack("<I", 1)  # a task id and return index 1
OID2 = b"\xff" * 12 + b"\x00\x00\x00\x01" + b"\x07" * 8 + struct.pack("<I", 2)


def frame(mtype, request_id, body):
    return struct.pack("<IIQ", len(body), mtype, request_id) + body


def status(code=0, message=b""):
    return struct.pack("<II", code, len(message)) + message


def location(offset, data_size, metadata_size):
    return struct.pack("<QQQ", offset, data_size, metadata_size)


def store_frames():
    requests = {
        "req_connect": frame(CONNECT, 1, b""),
        "req_create": frame(CREATE, 2, OID + struct.pack("<QQB", 1 << 20, 16, 1)),
        "req_create_secondary": frame(CREATE, 3, OID2 + struct.pack("<QQB", 100, 0, 0)),
        "req_seal": frame(SEAL, 4, OID),
        "req_abort": frame(ABORT, 5, OID2),
        "req_get": frame(GET, 6, struct.pack("<qI", 5000, 2) + OID + OID2),
        "req_get_forever": frame(GET, 7, struct.pack("<qI", -1, 1) + OID),
        "req_release": frame(RELEASE, 8, OID),
        "req_delete": frame(DELETE, 9, OID),
        "req_contains": frame(CONTAINS, 10, OID),
        "req_stats": frame(STATS, 11, b""),
    }
    replies = {
        "rep_connect": frame(CONNECT, 1, status() + struct.pack("<QB", 2 << 30, 0)),
        "rep_create": frame(CREATE, 2, status() + location(4096, 1 << 20, 16)),
        "rep_create_full": frame(CREATE, 2, status(8, b"object store full: 1048592 bytes requested, 0 free")),
        "rep_seal": frame(SEAL, 4, status()),
        "rep_get": frame(GET, 6, status() + struct.pack("<I", 2) + struct.pack("<I", 0) + location(4096, 1 << 20, 16)
                         + status(5, b"not sealed within the timeout")),
        "rep_contains": frame(CONTAINS, 10, status() + b"\x01"),
        "rep_stats": frame(STATS, 11, status() + struct.pack("<7Q", 2 << 30, 1 << 20, 1, 0, 0, 0, 0)),
        "rep_error": frame(0, 0, status(3, b"malformed Get frame (9 bytes): truncated")),
    }
    return {**requests, **replies}


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def fdp_strings(*parts):
    """FuzzedDataProvider strings: each ends with a backslash and one more byte."""
    return b"".join(p + b"\\ " for p in parts)


def main():
    frames = store_frames()
    for name, data in frames.items():
        write("store_protocol", name, data)
    # A client's session and a server's answers, as the stream each side reads.
    write("store_stream", "client_session", b"".join(frames[k] for k in
          ("req_connect", "req_create", "req_seal", "req_get", "req_release", "req_stats")))
    write("store_stream", "server_answers", b"".join(frames[k] for k in
          ("rep_connect", "rep_create", "rep_seal", "rep_get", "rep_stats")) + b"\x00" * 8)

    text = "step 1/3 done ✓ — café 日本語 🚀\n".encode()
    write("websocket", "rfc6455_key", fdp_strings(b"websocket", b"dGhlIHNhbXBsZSBub25jZQ==") + text + b"\x01\x40\x02")
    write("websocket", "cut_log", fdp_strings(b"WebSocket", b"x3JJHMbDL1EzLkh9GBhXDw==") + text[:-3] + b"\x01\x03\x05")
    write("websocket", "close", fdp_strings(b"h2c", b"") + b"\x03\xe8" + b"\x08\x01\x00")

    pkg = "gcs://_ray_pkg_5d2f5cbc1fb25c8e.zip"
    submits = {
        # Ray's JobSubmissionClient.submit_job sends every field of its JobSubmitRequest.
        "ray_client": {"entrypoint": "python script.py", "submission_id": None, "job_id": None,
                       "runtime_env": {"working_dir": pkg, "pip": ["requests"], "env_vars": {"MODE": "test"}},
                       "metadata": None, "entrypoint_num_cpus": None, "entrypoint_num_gpus": None,
                       "entrypoint_memory": None, "entrypoint_resources": None},
        "shoal_cli": {"entrypoint": "python train.py --epochs 3", "runtime_env": {"working_dir": pkg},
                      "entrypoint_num_cpus": 1, "entrypoint_num_gpus": 0.5, "entrypoint_memory": 0,
                      "submission_id": "nightly-train_42", "metadata": {"owner": "ci"}},
        "resources": {"entrypoint": "echo hi", "entrypoint_resources": {"TPU": 2, "custom_1": 0.25},
                      "entrypoint_memory": 1073741824},
        "minimal": {"entrypoint": "ls"},
    }
    for name, body in submits.items():
        write("job_record", f"submit_{name}", json.dumps(body))
    stored = {"type": "SUBMISSION", "job_id": "raysubmit_WcVd1yWzpB9L3kqM", "submission_id": "raysubmit_WcVd1yWzpB9L3kqM",
              "driver_info": None, "status": "SUCCEEDED", "entrypoint": "python script.py", "message": "Job finished successfully.",
              "error_type": None, "start_time": 1764806400000, "end_time": 1764806412345, "metadata": {},
              "runtime_env": {"working_dir": pkg}, "driver_agent_http_address": None, "driver_node_id": None,
              "driver_exit_code": 0, "entrypoint_num_cpus": 1.0, "entrypoint_num_gpus": 0.0, "entrypoint_memory": 0,
              "entrypoint_resources": {}, "driver_pid": 31337}
    write("job_record", "stored_succeeded", json.dumps(stored, separators=(",", ":")))
    failed = dict(stored, status="FAILED", message="the dashboard restarted while this job was RUNNING; its supervisor is gone",
                  driver_exit_code=None, error_type="JOB_SUPERVISOR_LOST")
    write("job_record", "stored_failed", json.dumps(failed, separators=(",", ":")))

    envs = {
        "package": {"working_dir": pkg, "env_vars": {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}},
        "absolute_dir": {"working_dir": "/home/user/project"},
        "ray_fields": {"pip": ["numpy==1.26.4"], "py_modules": [pkg], "config": {"setup_timeout_seconds": 600}},
        "empty": {},
        "null": None,
    }
    for name, env in envs.items():
        write("runtime_env", name, json.dumps(env))
    write("runtime_env", "uri", "gcs://_shoal_pkg_00ff00ff00ff00ff.zip")
    write("runtime_env", "package_name", "_ray_pkg_5d2f5cbc1fb25c8e.zip")

    def archive(members):
        import io
        import zipfile
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, text, mode in members:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = mode << 16
                zf.writestr(info, text)
        return buffer.getvalue()

    write("zip_archive", "working_dir", archive([("main.py", "print(1)\n", 0o100644), ("data/", "", 0o40755),
                                                 ("data/x.csv", "a,b\n", 0o100644)]))
    write("zip_archive", "dotdot", archive([("ok.txt", "ok", 0o100644), ("../escape.txt", "x", 0o100644)]))
    write("zip_archive", "symlink", archive([("link", "/etc/passwd", 0o120777)]))
    write("zip_archive", "empty", archive([]))

    # object_chunk: rpc::ObjectChunk as protobuf writes it (then a byte of cut pattern, which
    # FuzzedDataProvider reads from the end).
    def varint(v):
        out = b""
        while v >= 0x80:
            out += bytes([(v & 0x7F) | 0x80])
            v >>= 7
        return out + bytes([v])

    def chunk(data_size, metadata_size, offset, payload):
        return (b"\x08" + varint(data_size) + b"\x10" + varint(metadata_size) + b"\x18" + varint(offset) +
                b"\x22" + varint(len(payload)) + payload)
    write("object_chunk", "first", chunk(10, 2, 0, b"0123456789ab") + b"\x03")
    write("object_chunk", "middle", chunk(1 << 33, 0, 1 << 32, b"x" * 300) + b"\x41")
    write("object_chunk", "empty_object", chunk(0, 0, 0, b"") + b"\x00")
    write("object_chunk", "unknown_fields", b"\x48\x05\x5a\x02hi" + chunk(3, 0, 0, b"abc") + b"\x02")

    write("http_auth", "loopback_bearer", fdp_strings(b"localhost", b"shoal_token", b"0123456789abcdef0123456789abcdef")
          + b"shoal_token=0123456789abcdef0123456789abcdef" + b"\x01\x01\x00\x00\x01\x01\x00\x00\x00\x01\x20\x71")
    write("http_auth", "browser_post", fdp_strings(b"127.0.0.1", b"theme", b"dark", b"127.0.0.1:8265",
          b"http://127.0.0.1:8265", b"same-origin", b"") + b"theme=dark; shoal_token=0123456789abcdef0123456789abcdef"
          + b"\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x07\x12")
    write("http_auth", "rebinding", fdp_strings(b"evil.example", b"a", b"b", b"127.attacker.example:8265", b"", b"",
          b"Bearer 0123456789abcdef0123456789abcdef") + b"\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x20\x71")


if __name__ == "__main__":
    main()
