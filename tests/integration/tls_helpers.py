"""Test CAs and certificates made with the openssl command (shared by the TLS tests)."""
import os
import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem",
            "-days", "2", "-subj", f"/CN={name} test CA", cwd=d)
    return os.path.join(d, f"{name}-ca.pem")


def make_cert(d, ca, name):
    """A certificate for 127.0.0.1, usable by servers and clients, signed by `ca`."""
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}-ca.pem", "-CAkey", f"{ca}-ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")
