"""The dashboard under abuse, against a real shoal-dashboard process: huge bodies sent without a
token are refused unread, headers are bounded, uploads stream to disk, slow clients are cut off
and cannot starve others, connections are limited, and Host names that merely point at the
dashboard (DNS rebinding) are refused.

Memory is measured from /proc/<pid>/status: VmHWM is the process's peak resident set, so a body
held in memory even for a moment shows in it. Timeouts here are guards against a hang, never
assertions on speed."""
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import BIN, process_alive, session_dirs, wait_until

MIB = 1 << 20
GUARD_S = 15  # a reply that takes longer than this is a hang, not a slow machine


def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Dashboard:
    """A shoal-dashboard this test started, on loopback, for the head of `cluster`."""

    def __init__(self, cluster, tmp_path, *flags, session_dir=None):
        self.cluster = cluster
        self.dir = session_dir or tmp_path / f"dash-{time.monotonic_ns()}"
        self.dir.mkdir(exist_ok=True)
        ready = self.dir / "ready.json"
        if ready.exists():
            ready.unlink()
        self.token = cluster.auth_token()
        token_file = [os.path.join(s, "auth_token") for s in session_dirs(cluster.root)
                      if os.path.exists(os.path.join(s, "auth_token"))][0]
        self.proc = cluster.spawn([os.path.join(BIN, "shoal-dashboard"), "--gcs-address", cluster.address,
                                   "--port", "0", "--token-file", token_file, "--session-dir", str(self.dir),
                                   "--ready-file", str(ready), *map(str, flags)])
        wait_until(lambda: ready.exists() or self.proc.poll() is not None, 30, what="the dashboard to start")
        assert self.proc.poll() is None, self.proc.communicate()
        info = json.loads(ready.read_text())
        self.pid, self.port = info["pid"], info["port"]
        self.host = f"127.0.0.1:{self.port}"
        self.packages = self.dir / "runtime_resources" / "packages"

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=GUARD_S)
        s.settimeout(GUARD_S)
        return s

    def request(self, method, path, body=b"", headers=None, token=True):
        """One request on a new connection: answers (status, parsed body)."""
        headers = {"Host": self.host, **(headers or {})}
        head = [f"{method} {path} HTTP/1.1", "Connection: close", f"Content-Length: {len(body)}"]
        if token:
            head.append(f"Authorization: Bearer {self.token}")
        head += [f"{k}: {v}" for k, v in headers.items()]
        with self.connect() as s:
            s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            return parse_reply(read_all(s))

    def peak_kib(self):
        return proc_status_kib(self.pid, "VmHWM")

    def rss_kib(self):
        return proc_status_kib(self.pid, "VmRSS")


def read_all(s):
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse_reply(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), raw[:200]
    status = int(head.split()[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def send_blindly(s, head, body_chunks):
    """Sends a head then body chunks without reading, as a client that ignores early replies
    does; stops when the server closes. Answers the bytes of body sent."""
    s.sendall(head)
    sent = 0
    try:
        for chunk in body_chunks:
            s.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def zeros(total, chunk=MIB):
    block = b"\0" * chunk
    while total > 0:
        yield block[:min(chunk, total)]
        total -= chunk


def chunked(chunks):
    for c in chunks:
        yield b"%x\r\n" % len(c) + c + b"\r\n"
    yield b"0\r\n\r\n"


@pytest.fixture
def head(cluster):
    cluster.start_head("--num-cpus", 1)
    return cluster


def test_huge_bodies_without_a_token_are_refused_unread(head, tmp_path):
    dash = Dashboard(head, tmp_path)
    assert dash.request("GET", "/api/version")[0] == 200
    before = dash.rss_kib()
    attempts = [
        # A protected route, a declared 300 MiB body, no token.
        (b"POST /api/jobs/ HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
         % (dash.host.encode(), 300 * MIB), zeros(300 * MIB), 401),
        # The same as a chunked upload, whose size nothing declares.
        (b"PUT /api/packages/gcs/big.zip HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
         % dash.host.encode(), chunked(zeros(300 * MIB)), 401),
        # A wrong token.
        (b"PUT /api/packages/gcs/big.zip HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer nope\r\n"
         b"Content-Length: %d\r\n\r\n" % (dash.host.encode(), 300 * MIB), zeros(300 * MIB), 401),
        # The public login takes no token, but no more than a small body.
        (b"POST /api/auth/login HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
         % (dash.host.encode(), 300 * MIB), zeros(300 * MIB), 413),
        (b"POST /api/auth/login HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
         % dash.host.encode(), chunked(zeros(300 * MIB)), 413),
    ]
    for head_bytes, body, wanted in attempts:
        with dash.connect() as s:
            send_blindly(s, head_bytes, body)
            status, reply = parse_reply(read_all(s))
        assert status == wanted, (head_bytes, reply)
        assert reply["message"], reply
    grown_mib = (dash.peak_kib() - before) / 1024
    print(f"peak RSS grew by {grown_mib:.1f} MiB")
    assert grown_mib < 50, f"the dashboard's peak RSS grew by {grown_mib:.0f} MiB"
    assert process_alive(dash.pid)
    assert dash.request("GET", "/api/version")[0] == 200
    assert not dash.packages.exists() or os.listdir(dash.packages) == []


def test_a_client_that_reads_early_replies_stops_sending_at_the_refusal(head, tmp_path):
    # Expect: 100-continue (curl's way for big bodies): the refusal comes before any body.
    dash = Dashboard(head, tmp_path)
    with dash.connect() as s:
        s.sendall(b"PUT /api/packages/gcs/x.zip HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % (dash.host.encode(), 300 * MIB))
        status, reply = parse_reply(read_all(s))
    assert status == 401, reply
    token = f"Authorization: Bearer {dash.token}\r\n".encode()
    with dash.connect() as s:
        s.sendall(b"PUT /api/packages/gcs/x.zip HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n" % (dash.host.encode(), token))
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"PK\3\4")
        status, reply = parse_reply(read_all(s))
    assert status == 200, reply


def test_oversized_request_heads_are_refused_and_the_server_lives(head, tmp_path):
    dash = Dashboard(head, tmp_path)
    before = dash.rss_kib()
    many = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(1024))  # 1 MiB of headers
    one = "X-Big: " + "b" * MIB + "\r\n"                                  # one 1 MiB header
    for extra, path, wanted in ((many, "/api/version", 431), (one, "/api/version", 431),
                                ("", "/api/jobs/" + "c" * MIB, 414)):
        with dash.connect() as s:
            send_blindly(s, f"GET {path} HTTP/1.1\r\nHost: {dash.host}\r\n{extra}\r\n".encode(), [])
            status, reply = parse_reply(read_all(s))
        assert status == wanted, reply
        assert process_alive(dash.pid)
    assert (dash.peak_kib() - before) / 1024 < 50
    assert dash.request("GET", "/api/version")[0] == 200


def test_uploads_stream_to_disk_within_the_limit(head, tmp_path):
    dash = Dashboard(head, tmp_path)
    token = f"Authorization: Bearer {dash.token}\r\n".encode()
    before = dash.rss_kib()
    size = 100 * MIB  # the default --max-upload-bytes: allowed
    with dash.connect() as s:
        s.sendall(b"PUT /api/packages/gcs/big.zip HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n"
                  % (dash.host.encode(), token, size))
        s.sendall(b"PK")
        for chunk in zeros(size - 2):
            s.sendall(chunk)
        status, reply = parse_reply(read_all(s))
    assert status == 200, reply
    grown_mib = (dash.peak_kib() - before) / 1024
    print(f"peak RSS grew by {grown_mib:.1f} MiB")
    assert grown_mib < 50, f"a 100 MiB upload grew the dashboard's peak RSS by {grown_mib:.0f} MiB"
    assert os.path.getsize(dash.packages / "big.zip") == size
    assert os.listdir(dash.packages) == ["big.zip"]  # no temporary file left
    assert dash.request("GET", "/api/packages/gcs/big.zip")[0] == 200

    # Past the limit: refused whole when declared, cut off when chunked; nothing is left on disk.
    with dash.connect() as s:
        send_blindly(s, b"PUT /api/packages/gcs/over.zip HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n"
                     % (dash.host.encode(), token, size + 1), zeros(size + 1))
        status, reply = parse_reply(read_all(s))
    assert status == 413 and reply["error"] == "payload_too_large", reply
    with dash.connect() as s:
        body = chunked(b"PK" + c if i == 0 else c for i, c in enumerate(zeros(size + MIB)))
        send_blindly(s, b"PUT /api/packages/gcs/over.zip HTTP/1.1\r\nHost: %s\r\n%sTransfer-Encoding: chunked\r\n\r\n"
                     % (dash.host.encode(), token), body)
        status, reply = parse_reply(read_all(s))
    assert status == 413 and "larger than" in reply["message"], reply
    assert os.listdir(dash.packages) == ["big.zip"]
    assert dash.request("GET", "/api/packages/gcs/over.zip")[0] == 404
    # A small chunked upload is stored whole.
    with dash.connect() as s:
        s.sendall(b"PUT /api/packages/gcs/small.zip HTTP/1.1\r\nHost: %s\r\n%sTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n" % (dash.host.encode(), token) + b"".join(chunked([b"PK\3\4", b"rest"])))
        assert parse_reply(read_all(s))[0] == 200
    assert (dash.packages / "small.zip").read_bytes() == b"PK\3\4rest"

    # Stopped with a connection open (SIGTERM), it exits; restarted, it removes what an upload
    # it never finished left behind, and keeps the packages.
    idle = dash.connect()
    idle.sendall(b"PUT /api/packages/gcs/cut.zip HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 100\r\n\r\nPK"
                 % (dash.host.encode(), token))
    dash.proc.terminate()
    assert dash.proc.wait(timeout=60) == 0
    idle.close()
    stale = dash.packages / "cut.zip.upload-a1b2c3"
    stale.write_bytes(b"PK")
    (dash.packages / "x.upload-a.zip").write_bytes(b"PK\3\4")  # a valid package name: kept
    again = Dashboard(head, tmp_path, session_dir=dash.dir)
    assert sorted(os.listdir(again.packages)) == ["big.zip", "small.zip", "x.upload-a.zip"]
    assert again.request("GET", "/api/packages/gcs/big.zip")[0] == 200


def test_slow_clients_do_not_starve_others_and_are_cut_off(head, tmp_path):
    dash = Dashboard(head, tmp_path, "--read-timeout-s", 2)
    stalled = []
    for _ in range(40):  # slowloris: half a request line, then nothing
        s = dash.connect()
        s.sendall(b"GET /api/version HT")
        stalled.append(s)
    trickler = dash.connect()  # never pauses as long as the read timeout, never finishes its head
    trickler.sendall(b"GET /api/version HTTP/1.1\r\nX-Slow: ")
    status, body = dash.request("GET", "/api/version")
    assert status == 200 and body["version"], body

    cut_off = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            trickler.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True
            break
        trickler.settimeout(0.3)
        try:
            if trickler.recv(4096) is not None:  # the 408, or the close
                cut_off = True
                break
        except socket.timeout:
            pass
    assert cut_off, "a client trickling its headers kept its connection for 60 s"
    trickler.close()
    # Every stalled client is dropped by the read timeout, with a 408 (it had begun a request).
    for s in stalled:
        status, reply = parse_reply(read_all(s))
        assert status == 408 and reply["error"] == "request_timeout", reply
        s.close()
    assert process_alive(dash.pid)
    assert dash.request("GET", "/api/version")[0] == 200


def test_connections_past_the_limit_are_refused_until_one_frees(head, tmp_path):
    dash = Dashboard(head, tmp_path, "--max-connections", 8, "--read-timeout-s", 60)
    stalled = []
    for _ in range(8):
        s = dash.connect()
        s.sendall(b"GET /api/version HTTP/1.1\r\n")
        stalled.append(s)
    with dash.connect() as s:  # answered at once, before it sends anything
        status, reply = parse_reply(read_all(s))
    assert status == 503 and "--max-connections" in reply["message"], reply
    for s in stalled:
        s.close()

    def served():
        try:
            return dash.request("GET", "/api/version")[0] == 200
        except (AssertionError, OSError):  # refused (503, or a reset) while the slots free
            return False
    wait_until(served, GUARD_S, what="a freed connection slot")


def test_requests_without_a_length_have_no_body_and_keep_the_connection(head, tmp_path):
    # A POST with neither Content-Length nor Transfer-Encoding has no body (RFC 9112): it is
    # answered at once instead of waiting for the client to close, and the connection goes on.
    dash = Dashboard(head, tmp_path)
    token = f"Authorization: Bearer {dash.token}\r\n".encode()
    with dash.connect() as s:
        s.sendall(b"POST /api/jobs/nope/stop HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (dash.host.encode(), token))
        reply = b""
        while b"}" not in reply:
            reply += s.recv(4096)
        assert parse_reply(reply)[0] == 404
        s.sendall(b"GET /api/version HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" % (dash.host.encode(), token))
        assert parse_reply(read_all(s))[0] == 200
    # Compressed bodies are refused (a small gzip body can inflate to gigabytes).
    status, reply = dash.request("POST", "/api/auth/login", b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    assert status == 415, reply
    # A chunked body within the limit is read.
    with dash.connect() as s:
        body = json.dumps({"token": dash.token}).encode()
        s.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  % dash.host.encode() + b"".join(chunked([body[:5], body[5:]])))
        assert parse_reply(read_all(s))[0] == 200


def test_host_names_that_only_point_here_are_refused(head, tmp_path):
    dash = Dashboard(head, tmp_path, "--allowed-hosts", "dash.test, other.test")
    port = dash.port
    for host in (f"127.attacker.example:{port}", f"127.0.0.1.attacker.example:{port}", f"localhost.attacker.example:{port}",
                 f"attacker.example:{port}", f"127.0.0.1.nip.io:{port}", f"10.1.2.3:{port}", f"127.0.0.1:{port + 1}",
                 f"dash.test.attacker.example:{port}", "dash.test"):
        status, reply = dash.request("GET", "/api/version", headers={"Host": host})
        assert status == 403 and "DNS rebinding" in reply["message"], (host, reply)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"dash.test:{port}", f"OTHER.test:{port}"):
        assert dash.request("GET", "/api/version", headers={"Host": host})[0] == 200, host
    # Two Host headers: which one counts would depend on the reader, so neither does.
    with dash.connect() as s:
        s.sendall(b"GET /api/version HTTP/1.1\r\nHost: %s\r\nHost: attacker.example:%d\r\n"
                  b"Authorization: Bearer %s\r\n\r\n" % (dash.host.encode(), port, dash.token.encode()))
        status, reply = parse_reply(read_all(s))
    assert status == 400 and "Host" in reply["message"], reply
    assert process_alive(dash.pid)


@pytest.mark.parametrize("flag, value", [("--max-connections", "0"), ("--max-connections", "100000000"),
                                         ("--read-timeout-s", "0"), ("--read-timeout-s", "-3"),
                                         ("--read-timeout-s", "soon"), ("--max-upload-bytes", "0"),
                                         ("--allowed-hosts", "dash.test:8265")])
def test_bad_limits_are_refused_with_the_flag_named(flag, value, tmp_path):
    proc = subprocess.run([os.path.join(BIN, "shoal-dashboard"), "--gcs-address", "127.0.0.1:1", "--disable-auth",
                           "--session-dir", str(tmp_path), flag, value], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert flag in proc.stderr, proc.stderr


def test_help_documents_the_limits():
    proc = subprocess.run([os.path.join(BIN, "shoal-dashboard"), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for flag in ("--max-connections", "--read-timeout-s", "--allowed-hosts", "--max-upload-bytes"):
        assert flag in proc.stdout + proc.stderr, flag
