"""HTTPS for the dashboard: `shoal start --head --dashboard-tls-cert C --dashboard-tls-key K` serves
the dashboard over TLS only; its clients (the CLI, Shoal's and Ray's job clients) verify its
certificate against the CA they are given, and the token is still required. The test makes its
own CAs and certificates with openssl."""
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from conftest import BIN, PYTHON_DIR, REPO, SHOAL, process_alive
from tls_helpers import make_ca, make_cert

JOB_DEADLINE_S = 120


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    ca = make_ca(d, "dash")
    other_ca = make_ca(d, "other")
    cert, key = make_cert(d, "dash", "dashboard")
    _, other_key = make_cert(d, "other", "stranger")
    return {"ca": ca, "cert": cert, "key": key, "other_ca": other_ca, "other_key": other_key}


@pytest.fixture
def https_head(cluster, pki):
    proc = cluster.start_head("--num-cpus", 2, "--dashboard-tls-cert", pki["cert"], "--dashboard-tls-key", pki["key"],
                              dashboard=True)
    url = cluster.dashboard()["url"]
    assert url.startswith("https://127.0.0.1:"), url
    assert url in proc.stdout, proc.stdout  # `shoal start` prints the https:// URL
    return cluster


def get(url, cafile, token=None, path="/api/version"):
    """GET over TLS trusting `cafile`; answers (status, body text)."""
    request = urllib.request.Request(url + path)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    context = ssl.create_default_context(cafile=cafile)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def test_https_dashboard_serves_the_api_over_tls_only_and_wants_the_token(https_head, pki):
    url, token = https_head.dashboard()["url"], https_head.auth_token()
    dashboard_pid = https_head.dashboard()["pid"]

    status, body = get(url, pki["ca"], token)
    assert status == 200 and "version" in json.loads(body)
    assert get(url, pki["ca"])[0] == 401  # the token is still required over HTTPS
    status, metrics = get(url, pki["ca"], token, "/metrics")
    assert status == 200 and "# TYPE" in metrics

    # curl with the CA: the same.
    curl = subprocess.run(["curl", "-sS", "--fail", "--cacert", pki["ca"], "-H", "Authorization: Bearer " + token,
                           url + "/api/version"], capture_output=True, text=True, timeout=60)
    assert curl.returncode == 0, curl.stderr
    assert "version" in json.loads(curl.stdout)
    # A client that trusts another CA refuses the dashboard.
    with pytest.raises(urllib.error.URLError) as refused:
        get(url, pki["other_ca"], token)
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    curl = subprocess.run(["curl", "-sS", "--cacert", pki["other_ca"], url + "/api/version"], capture_output=True,
                          text=True, timeout=60)
    assert curl.returncode != 0

    # Plain HTTP to the port: no HTTP reply, and the dashboard goes on serving.
    plain = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=30)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/api/version", headers={"Authorization": "Bearer " + token})
        plain.getresponse()
    plain.close()
    assert process_alive(dashboard_pid)
    assert get(url, pki["ca"], token)[0] == 200

    # The containers' readiness probe checks it over HTTPS, trusting $SHOAL_DASHBOARD_TLS_CA only.
    probe = [sys.executable, os.path.join(REPO, "deploy", "docker", "shoal_probe.py"), "head", "--dashboard"]
    proc = subprocess.run(probe, env=dict(https_head.env, SHOAL_DASHBOARD_TLS_CA=pki["ca"]), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("ready:"), (proc.stdout, proc.stderr)
    proc = subprocess.run(probe, env=dict(https_head.env, SHOAL_DASHBOARD_TLS_CA=pki["other_ca"]),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "not trusted" in proc.stdout, (proc.stdout, proc.stderr)


def test_shoal_job_cli_and_python_client_over_https(https_head, pki, tmp_path):
    url, token = https_head.dashboard()["url"], https_head.auth_token()
    env = dict(https_head.env)
    env.pop("SHOAL_DASHBOARD_TLS_CA", None)

    submit = subprocess.run([SHOAL, "job", "submit", "--address", url, "--dashboard-ca", pki["ca"], "--",
                             "echo", "hello-over-https"],
                            env=env, capture_output=True, text=True, timeout=JOB_DEADLINE_S)
    assert submit.returncode == 0, submit.stderr
    assert "hello-over-https" in submit.stdout
    assert "SUCCEEDED" in submit.stderr
    job_id = submit.stdout.split("'")[1]

    # The CA from the environment; the address from the local session (its URL is https://).
    listed = subprocess.run([SHOAL, "job", "list", "--json"], env=dict(env, SHOAL_DASHBOARD_TLS_CA=pki["ca"]),
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert job_id in [j["submission_id"] for j in json.loads(listed.stdout)]

    # Another CA, or the system's CAs only: refused, saying why.
    for extra in (["--dashboard-ca", pki["other_ca"]], []):
        refused = subprocess.run([SHOAL, "job", "status", job_id, "--address", url, *extra], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0
        assert "not trusted" in refused.stderr and "--dashboard-ca" in refused.stderr, refused.stderr
    # http:// to the https:// dashboard: a failure, not a reply.
    plain = subprocess.run([SHOAL, "job", "status", job_id, "--address", url.replace("https://", "http://")], env=env,
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0 and "https://" in plain.stderr, plain.stderr

    # Shoal's Python client: verify= as in Ray's.
    code = textwrap.dedent("""
        import json, sys
        from shoal.job_submission import JobSubmissionClient
        url, token, ca, other_ca = sys.argv[1:5]
        out = {}
        client = JobSubmissionClient(url, token=token, verify=ca)
        job = client.submit_job(entrypoint=sys.executable + " -c \\"print('py-over-https')\\"")
        out["logs"] = "".join(client.tail_job_logs(job, poll_interval=0.2))
        out["status"] = client.get_job_status(job)
        for verify in (other_ca, False):
            try:
                JobSubmissionClient(url, token=token, verify=verify)
                out[str(verify)] = "accepted"
            except (RuntimeError, ValueError) as e:
                out[str(verify)] = type(e).__name__ + ": " + str(e)
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", code, url, token, pki["ca"], pki["other_ca"]],
                          env=dict(env, PYTHONPATH=PYTHON_DIR), capture_output=True, text=True,
                          timeout=JOB_DEADLINE_S)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "py-over-https" in out["logs"] and out["status"] == "SUCCEEDED"
    assert out[pki["other_ca"]].startswith("RuntimeError") and "not trusted" in out[pki["other_ca"]]
    assert out["False"].startswith("ValueError")

    # The log's websocket, over TLS.
    context = ssl.create_default_context(cafile=pki["ca"])
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            key = base64.b64encode(os.urandom(16)).decode()
            tls.sendall((f"GET /api/jobs/{job_id}/logs/tail HTTP/1.1\r\nHost: {url[len('https://'):]}\r\n"
                         f"Authorization: Bearer {token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            received = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                received += chunk
    assert received.startswith(b"HTTP/1.1 101"), received[:200]
    assert b"hello-over-https" in received
    assert b"\x88\x02\x03\xe8" in received  # the close frame: the job had ended


def test_bad_dashboard_tls_files_are_refused_by_name(cluster, pki, tmp_path):
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    cases = [
        (["--dashboard-tls-cert", pki["cert"]], "--dashboard-tls-key"),
        (["--dashboard-tls-key", pki["key"]], "--dashboard-tls-cert"),
        (["--dashboard-tls-cert", str(tmp_path / "missing.pem"), "--dashboard-tls-key", pki["key"]],
         "--dashboard-tls-cert"),
        (["--dashboard-tls-cert", str(not_pem), "--dashboard-tls-key", pki["key"]], "--dashboard-tls-cert"),
        (["--dashboard-tls-cert", pki["cert"], "--dashboard-tls-key", pki["other_key"]], "--dashboard-tls-key"),
    ]
    for flags, named in cases:
        proc = subprocess.run([SHOAL, "start", "--head", "--port", "0", "--dashboard-port", "0", *flags],
                              env=cluster.env, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0, (flags, proc.stdout)
        assert named in proc.stderr, (flags, proc.stderr)
        assert cluster.all_pids() == []  # nothing was started
        # The dashboard itself refuses them too.
        proc = subprocess.run([os.path.join(BIN, "shoal-dashboard"), "--gcs-address", "127.0.0.1:1",
                               "--disable-auth", "--port", "0", *flags],
                              env=cluster.env, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0, (flags, proc.stdout)
        assert named in proc.stderr, (flags, proc.stderr)
    # From the environment: the same check, naming the variable.
    proc = subprocess.run([SHOAL, "start", "--head", "--port", "0", "--dashboard-port", "0"],
                          env=dict(cluster.env, SHOAL_DASHBOARD_TLS_CERT=pki["cert"]), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "SHOAL_DASHBOARD_TLS_KEY" in proc.stderr, proc.stderr
    assert cluster.all_pids() == []


def _ray_client():
    """Skips unless Ray's job client imports (checked in a child: Ray never loads into this process)."""
    probe = subprocess.run([sys.executable, "-c", "import ray.job_submission"], capture_output=True, text=True,
                           timeout=120)
    if probe.returncode != 0:
        pytest.skip("ray is not importable (%s)" % probe.stderr.strip().splitlines()[-1:])


RAY_CLIENT_SCRIPT = r"""
import asyncio, json, sys, time
from ray.job_submission import JobSubmissionClient
url, token, ca, other_ca, python, deadline = sys.argv[1:7]
headers = {"Authorization": "Bearer " + token}
client = JobSubmissionClient(url, headers=headers, verify=ca)
job_id = client.submit_job(entrypoint=python + " -c \"print('ray-over-https')\"")
end = time.time() + float(deadline)
while str(client.get_job_status(job_id)).split(".")[-1] != "SUCCEEDED":
    assert time.time() < end, "the job did not succeed: %s" % client.get_job_status(job_id)
    time.sleep(0.2)
async def tail():
    return "".join([chunk async for chunk in client.tail_job_logs(job_id)])
out = {"logs": client.get_job_logs(job_id), "tail": asyncio.run(tail())}
try:
    JobSubmissionClient(url, headers=headers, verify=other_ca)
    out["other_ca"] = "accepted"
except Exception as e:  # Ray's message hides the cause: look down the chain
    chain = []
    while e is not None and len(chain) < 10:
        chain.append(repr(e))
        e = e.__cause__ or e.__context__
    out["other_ca"] = " <- ".join(chain)
print(json.dumps(out))
"""


def test_rays_job_submission_client_over_https(https_head, pki):
    _ray_client()
    url = https_head.dashboard()["url"]
    proc = subprocess.run([sys.executable, "-c", RAY_CLIENT_SCRIPT, url, https_head.auth_token(), pki["ca"],
                           pki["other_ca"], sys.executable, str(JOB_DEADLINE_S)], capture_output=True, text=True,
                          timeout=JOB_DEADLINE_S + 120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "ray-over-https" in out["logs"]
    assert "ray-over-https" in out["tail"]  # the websocket, over TLS
    assert out["other_ca"] != "accepted" and "CERTIFICATE_VERIFY_FAILED" in out["other_ca"], out["other_ca"]
