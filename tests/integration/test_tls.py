"""Mutual TLS for every gRPC connection (issue 12): a cluster started with --tls-cert/--tls-key/
--tls-ca serves only TLS clients whose certificate its CA signed, and still wants the token.
The test makes its own CAs and certificates with openssl."""
import glob
import json
import os
import subprocess
import sys
import textwrap

import grpc
import pytest

from conftest import PYTHON_DIR, SHOAL, TokenInterceptor, process_alive, wait_until
from tls_helpers import make_ca, make_cert


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    ca = make_ca(d, "cluster")
    make_ca(d, "other")
    cert, key = make_cert(d, "cluster", "node")
    stranger_cert, stranger_key = make_cert(d, "other", "stranger")
    return {"ca": ca, "cert": cert, "key": key, "stranger_cert": stranger_cert, "stranger_key": stranger_key,
            "other_ca": os.path.join(d, "other-ca.pem")}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def kv_get(channel):
    """A KV Get through `channel`; answers the gRPC status code (OK when it went through)."""
    method = channel.unary_unary("/shoal.rpc.KVService/Get", request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)
    try:
        method(b"", timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def test_mutual_tls_cluster_serves_only_its_clients(cluster, pki):
    flags = ["--tls-cert", pki["cert"], "--tls-key", pki["key"], "--tls-ca", pki["ca"]]
    cluster.start_head("--num-cpus", 1, *flags)
    # Clients (the CLI, drivers) take the files from the environment.
    cluster.env.update(SHOAL_TLS_CERT=pki["cert"], SHOAL_TLS_KEY=pki["key"], SHOAL_TLS_CA=pki["ca"])
    cluster.start_worker("--num-cpus", 2, *flags)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="2 alive nodes over TLS")

    # A driver with the cluster's certificate runs tasks on both nodes (its workers got the files
    # from their raylets).
    code = textwrap.dedent("""
        import os, shoal as ray
        ray.init(address=os.environ["SHOAL_TEST_ADDRESS"])
        @ray.remote
        def f(x):
            return x * 2
        # Only the worker node has 2 CPUs: it pulls the 8 MiB object from the driver's node
        # (over gRPC, under TLS: raylets serve no plain-socket pulls then).
        @ray.remote(num_cpus=2)
        def size(b):
            return len(b)
        assert ray.get(size.remote(ray.put(b"x" * (8 << 20)))) == 8 << 20
        print(sum(ray.get([f.remote(i) for i in range(20)])))
    """)
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR, SHOAL_TEST_ADDRESS=cluster.address,
               SHOAL_AUTH_TOKEN=cluster.auth_token())
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "380"

    token = TokenInterceptor(cluster.auth_token())
    # Plaintext: no TLS handshake, nothing served.
    plain = grpc.intercept_channel(grpc.insecure_channel(cluster.address), token)
    assert kv_get(plain) == grpc.StatusCode.UNAVAILABLE
    # TLS with a certificate another CA signed: refused in the handshake.
    stranger = grpc.ssl_channel_credentials(read(pki["ca"]), read(pki["stranger_key"]), read(pki["stranger_cert"]))
    assert kv_get(grpc.intercept_channel(grpc.secure_channel(cluster.address, stranger), token)) == \
        grpc.StatusCode.UNAVAILABLE
    # TLS without a client certificate: refused too (mutual).
    anonymous = grpc.ssl_channel_credentials(read(pki["ca"]))
    assert kv_get(grpc.intercept_channel(grpc.secure_channel(cluster.address, anonymous), token)) == \
        grpc.StatusCode.UNAVAILABLE
    # A client that does not trust the cluster's CA does not talk to it.
    wrong_ca = grpc.ssl_channel_credentials(read(pki["other_ca"]), read(pki["key"]), read(pki["cert"]))
    assert kv_get(grpc.intercept_channel(grpc.secure_channel(cluster.address, wrong_ca), token)) == \
        grpc.StatusCode.UNAVAILABLE
    # The right certificate without the token: the token is still required.
    good = grpc.ssl_channel_credentials(read(pki["ca"]), read(pki["key"]), read(pki["cert"]))
    assert kv_get(grpc.secure_channel(cluster.address, good)) == grpc.StatusCode.UNAUTHENTICATED
    assert kv_get(grpc.intercept_channel(grpc.secure_channel(cluster.address, good), token)) in (
        grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    # No raylet serves object pulls over a plain (unencrypted) socket under TLS.
    ports = [json.load(open(p))["port"] for p in glob.glob(os.path.join(cluster.root, "**", "raylet.ready.json"),
                                                            recursive=True)]
    assert len(set(ports)) == 2
    for port in set(ports):
        channel = grpc.intercept_channel(grpc.secure_channel(f"127.0.0.1:{port}", good), token)
        method = channel.unary_unary("/shoal.rpc.ObjectManagerService/TransferPort",
                                     request_serializer=lambda b: b, response_deserializer=lambda b: b)
        assert method(b"", timeout=10) == b""  # TransferPortReply with port 0: nothing encoded
    # The CLI without the files cannot reach the cluster, and says why it failed.
    bare = {k: v for k, v in cluster.env.items() if not k.startswith("SHOAL_TLS_")}
    status = subprocess.run([SHOAL, "status", "--address", cluster.address], env=bare, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode != 0
    assert all(process_alive(p) for p in cluster.all_pids())


def test_partial_or_unreadable_tls_files_are_refused_by_name(cluster, pki, tmp_path):
    proc = subprocess.run([SHOAL, "start", "--head", "--port", "0", "--include-dashboard=false",
                           "--tls-cert", pki["cert"], "--tls-key", pki["key"]],
                          env=cluster.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--tls-ca" in proc.stderr, proc.stderr
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    proc = subprocess.run([SHOAL, "start", "--head", "--port", "0", "--include-dashboard=false",
                           "--tls-cert", pki["cert"], "--tls-key", pki["key"], "--tls-ca", str(not_pem)],
                          env=cluster.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--tls-ca" in proc.stderr and "PEM" in proc.stderr, proc.stderr
    assert cluster.all_pids() == []
