"""The dashboard on a real head: jobs REST API and `shoal job`, entrypoint resources, auth,
bad input, /metrics, Ray's own job client, and the web UI in headless Chromium."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, process_alive, session_dirs, wait_until

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
JOB_DEADLINE_S = 90  # polling bound on a loaded machine, never an asserted duration
ARTIFACTS = os.path.join(REPO, "build", "test-artifacts")


def job_status(cluster, job_id):
    status, body = cluster.api("GET", f"/api/jobs/{job_id}")
    assert status == 200, body
    return body


def wait_for_status(cluster, job_id, wanted, timeout=JOB_DEADLINE_S):
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    return wait_until(lambda: (j := job_status(cluster, job_id))["status"] in wanted and j, timeout,
                      what=f"job {job_id} to become {wanted}")


def submit(cluster, *args):
    """`shoal job submit --no-wait ...`; answers the submission id."""
    proc = cluster.shoal("job", "submit", "--no-wait", *args)
    match = re.search(r"Job '([^']+)' submitted", proc.stdout)
    assert match, proc.stdout
    return match.group(1)


@pytest.fixture
def head(cluster):
    cluster.start_head("--num-cpus", 2, "--num-gpus", 1, dashboard=True)
    yield cluster
    print_logs(cluster)  # captured: pytest shows it only when the test failed


def print_logs(cluster):
    """The dashboard's and raylets' logs, to see why a test failed."""
    for path in sorted(glob.glob(os.path.join(cluster.root, "session_*", "logs", "*.log"))):
        if os.path.basename(path).startswith(("dashboard", "raylet")):
            with open(path, errors="replace") as f:
                print(f"==== {path}\n" + "".join(f.readlines()[-60:]))


def test_job_with_working_dir_and_env_vars_succeeds(head, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("payload-from-working-dir\n")
    (work / "main.py").write_text(
        "import os\n"
        "print(open('data.txt').read().strip())\n"
        "print('GREETING=' + os.environ['GREETING'])\n"
        "print('SHOAL_ADDRESS=' + os.environ['SHOAL_ADDRESS'])\n")
    proc = head.shoal("job", "submit", "--working-dir", work, "--runtime-env-json",
                      json.dumps({"env_vars": {"GREETING": "hello-env"}}), "--", sys.executable, "main.py",
                      timeout=JOB_DEADLINE_S)
    assert "payload-from-working-dir" in proc.stdout
    assert "GREETING=hello-env" in proc.stdout
    assert f"SHOAL_ADDRESS={head.address}" in proc.stdout
    job_id = re.search(r"Job '([^']+)' submitted", proc.stdout).group(1)
    job = job_status(head, job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["driver_exit_code"] == 0
    assert job["end_time"] >= job["start_time"] > 0
    logs = head.shoal("job", "logs", job_id).stdout
    assert "payload-from-working-dir" in logs and "GREETING=hello-env" in logs
    listed = head.shoal("job", "list").stdout
    assert job_id in listed and "SUCCEEDED" in listed


def test_failing_entrypoint_is_failed_with_exit_code(head):
    proc = head.shoal("job", "submit", "--", "echo before-failing; exit 7", check=False, timeout=JOB_DEADLINE_S)
    assert proc.returncode == 1, proc.stderr
    assert "before-failing" in proc.stdout
    job_id = re.search(r"Job '([^']+)' submitted", proc.stdout).group(1)
    job = job_status(head, job_id)
    assert job["status"] == "FAILED"
    assert job["driver_exit_code"] == 7
    assert "exit code 7" in job["message"]
    status = head.shoal("job", "status", job_id).stdout
    assert "FAILED" in status


def test_stop_running_job_ends_its_process_group(head, tmp_path):
    pid_file = tmp_path / "pids"
    script = f"sleep 1000 & echo $! > {pid_file}; echo $$ >> {pid_file}; echo started; wait"
    job_id = submit(head, "--", script)
    wait_for_status(head, job_id, "RUNNING")
    wait_until(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 30, what="the job's pids")
    pids = [int(p) for p in pid_file.read_text().split()]
    assert all(process_alive(p) for p in pids)
    head.shoal("job", "stop", job_id)
    job = wait_for_status(head, job_id, TERMINAL)
    assert job["status"] == "STOPPED"
    wait_until(lambda: not any(process_alive(p) for p in pids), 30, what="the job's processes to be gone")
    # Stopping again is not an error: it answers that the job had ended.
    assert head.api("POST", f"/api/jobs/{job_id}/stop") == (200, {"stopped": False})
    assert head.api("DELETE", f"/api/jobs/{job_id}") == (200, {"deleted": True})
    assert head.api("GET", f"/api/jobs/{job_id}")[0] == 404


def test_job_asking_for_more_gpus_than_any_node_stays_pending_as_demand(head):
    head.start_worker("--num-cpus", 1, "--num-gpus", 1)
    wait_until(lambda: len(head.alive_nodes()) == 2, 30, what="2 alive nodes")
    job_id = submit(head, "--entrypoint-num-gpus", 2, "--", "echo should-not-run")

    def gpu2_demand():
        return [d for d in head.status()["demands"] if d["shape"].get("GPU") == 2]
    demand = wait_until(gpu2_demand, 30, what="the job's GPU demand in shoal status")
    assert demand[0]["infeasible"] is True
    assert job_status(head, job_id)["status"] == "PENDING"
    head.shoal("job", "stop", job_id)
    assert wait_for_status(head, job_id, TERMINAL)["status"] == "STOPPED"
    wait_until(lambda: not gpu2_demand(), 30, what="the demand to go once the job stopped")
    assert "should-not-run" not in head.shoal("job", "logs", job_id).stdout


def test_entrypoint_resources_are_held_while_the_job_runs(head, tmp_path):
    job_id = submit(head, "--entrypoint-num-cpus", 2, "--", "sleep 1000")
    wait_for_status(head, job_id, "RUNNING")
    wait_until(lambda: head.status()["used"].get("CPU") == 2, 30, what="the job's 2 CPUs to be in use")
    head.shoal("job", "stop", job_id)
    wait_until(lambda: head.status()["used"].get("CPU") == 0, 30, what="the CPUs to come back")


def test_requests_without_the_token_are_refused(head):
    status, body = head.api("GET", "/api/jobs/", token=False)
    assert status == 401 and body["error"] == "unauthenticated"
    assert head.api("GET", "/api/jobs/", token="not-the-token")[0] == 401
    assert head.api("POST", "/api/jobs/", {"entrypoint": "echo x"}, token=False)[0] == 401
    assert head.api("GET", "/metrics", token=False)[0] == 401
    # Cross-site writes and foreign Host names are refused even with the token.
    status, body = head.api("POST", "/api/jobs/", {"entrypoint": "echo x"}, headers={"Origin": "http://evil.example"})
    assert status == 403, body
    assert head.api("GET", "/api/jobs/", headers={"Host": f"evil.example:{head.dashboard()['port']}"})[0] == 403
    # The token file is the user's alone.
    assert os.stat(head.dashboard()["token_file"]).st_mode & 0o777 == 0o600
    # No job ran from the refused submissions.
    assert head.api("GET", "/api/jobs/")[1] == []


def test_bad_input_gets_4xx_json_and_the_server_stays_up(cluster):
    cluster.env["SHOAL_MAX_UPLOAD_BYTES"] = "100000"
    cluster.start_head("--num-cpus", 1, dashboard=True)
    for raw in (b"{not json", b"[1,2]", b'{"entrypoint": 5}', b'{"entrypoint": "x", "runtime_env": {"env_vars": 3}}'):
        status, body = cluster.api("POST", "/api/jobs/", raw=raw)
        assert status == 400 and body["error"] == "bad_request", (raw, body)
    for method, path in (("GET", "/api/jobs/nope"), ("POST", "/api/jobs/nope/stop"), ("DELETE", "/api/jobs/nope"),
                         ("GET", "/api/jobs/nope/logs"), ("GET", "/api/no/such/route"),
                         ("GET", "/api/packages/gcs/missing.zip")):
        status, body = cluster.api(method, path)
        assert status == 404 and isinstance(body, dict) and body["message"], (method, path, body)
    status, body = cluster.api("PUT", "/api/packages/gcs/big.zip", raw=b"PK" + b"\0" * 200000)
    assert status == 413 and body["error"] == "payload_too_large", body
    status, body = cluster.api("PUT", "/api/packages/gcs/notzip.zip", raw=b"hello")
    assert status == 400, body
    status, body = cluster.api("POST", "/api/jobs/", {"entrypoint": "x", "runtime_env": {"working_dir": "gcs://nope.zip"}})
    assert status == 400 and "not uploaded" in body["message"]
    status, body = cluster.api("POST", "/api/jobs/", {"entrypoint": "true", "submission_id": "dup"})
    assert status == 200
    assert cluster.api("POST", "/api/jobs/", {"entrypoint": "true", "submission_id": "dup"})[0] == 409
    assert cluster.api("GET", "/api/version")[0] == 200
    assert process_alive(cluster.dashboard()["pid"])


def test_metrics_parse_and_match_shoal_status(head):
    from prometheus_client.parser import text_string_to_metric_families
    head.start_worker("--num-cpus", 3, "--resources", '{"TPU": 2}')
    wait_until(lambda: len(head.alive_nodes()) == 2, 30, what="2 alive nodes")
    job_id = submit(head, "--", "true")
    wait_for_status(head, job_id, TERMINAL)
    status, text = head.api("GET", "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    status = head.status()
    for name, total in status["total"].items():
        assert samples[("shoal_cluster_resource_total", (("resource", name),))] == pytest.approx(total)
        assert samples[("shoal_cluster_resource_used", (("resource", name),))] == pytest.approx(status["used"][name])
    for node in status["nodes"]:
        for name, total in node["resources_total"].items():
            key = ("shoal_node_resource_total", (("node_id", node["node_id"]), ("resource", name)))
            assert samples[key] == pytest.approx(total)
    assert samples[("shoal_jobs", (("status", "SUCCEEDED"),))] == 1
    assert samples[("shoal_gcs_up", ())] == 1
    assert any(k[0] == "shoal_dashboard_http_requests_total" for k in samples)
    assert any(k[0] == "shoal_dashboard_http_request_duration_seconds_bucket" for k in samples)


APP_METRICS_SCRIPT = r"""
import sys
import shoal as ray
from shoal.util.metrics import Counter, Gauge, Histogram

ray.init(address=sys.argv[1])
requests = Counter("app_requests", description="Requests served", tag_keys=("route",))
requests.inc(tags={"route": "/a"})
requests.inc(2.0, tags={"route": "/a"})
latency = Histogram("app_latency_s", boundaries=[0.1, 1.0], tag_keys=("route",)).set_default_tags({"route": "/a"})
for v in (0.05, 0.5, 5.0):
    latency.observe(v)

@ray.remote
def work():
    c = Counter("app_task_runs", description="Runs of work()")
    c.inc()
    c.inc()
    return ray.get_runtime_context().get_worker_id()

@ray.remote
class Depth:
    def __init__(self):
        self.g = Gauge("app_queue_depth", tag_keys=("queue",))
    def set(self, v):
        self.g.set(v, tags={"queue": "q1"})
        return ray.get_runtime_context().get_worker_id()

@ray.remote
class Clicker:
    def __init__(self):
        self.c = Counter("app_clicks", tag_keys=("page",))
    def click(self, n):
        for _ in range(n):
            self.c.inc(tags={"page": "home"})
        return ray.get_runtime_context().get_worker_id()

task_worker = ray.get(work.remote())
depth = Depth.remote()  # kept: an actor ends with its last handle
actor_worker = ray.get(depth.set.remote(7.5))
clickers = [Clicker.remote(), Clicker.remote()]
assert len(set(ray.get([clickers[0].click.remote(4), clickers[1].click.remote(6)]))) == 2
print(ray.get_runtime_context().get_worker_id(), task_worker, actor_worker, flush=True)
sys.stdin.readline()  # the test scrapes while the job (and so its workers) lives
"""


def test_application_metrics_of_drivers_tasks_and_actors_reach_metrics(head, tmp_path):
    """shoal.util.metrics (Ray's ray.util.metrics) recorded in a driver, a task and an actor
    are served at /metrics, labelled with the process that recorded them."""
    script = tmp_path / "metrics_driver.py"
    script.write_text(APP_METRICS_SCRIPT)
    env = dict(head.env, PYTHONPATH=os.path.join(REPO, "build", "python"), SHOAL_AUTH_TOKEN=head.auth_token())
    proc = subprocess.Popen([sys.executable, str(script), head.address], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:]
        driver, task_worker, actor_worker = line.split()
        check_app_metrics(head, driver, task_worker, actor_worker)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def check_app_metrics(head, driver, task_worker, actor_worker):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape():
        status, text = head.api("GET", "/metrics")
        assert status == 200
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = (family.type, sample.value)
        return out

    def find(samples, name, worker, **tags):
        for (n, ls), v in samples.items():
            d = dict(ls)
            le = tags.get("le")
            if (n == name and d.get("WorkerId") == worker and (le is None or float(d.get("le", "nan")) == float(le))
                    and all(d.get(k) == t for k, t in tags.items() if k != "le")):
                return v
        return None

    # Every process reports every 2 s.
    def clicks(samples):  # the two actors' counters, summed over WorkerId
        return sum(v for (n, ls), (_, v) in samples.items() if n == "app_clicks_total" and dict(ls)["page"] == "home")

    samples = wait_until(lambda: (s := scrape()) and find(s, "app_queue_depth", actor_worker, queue="q1") and
                         find(s, "app_task_runs_total", task_worker) and find(s, "app_requests_total", driver, route="/a")
                         and clicks(s) == 10 and s, 60, what="the application metrics")
    assert len({dict(ls)["WorkerId"] for (n, ls) in samples if n == "app_clicks_total"}) == 2
    assert find(samples, "app_requests_total", driver, route="/a") == ("counter", 3.0)
    assert find(samples, "app_task_runs_total", task_worker) == ("counter", 2.0)
    assert find(samples, "app_queue_depth", actor_worker, queue="q1") == ("gauge", 7.5)
    assert find(samples, "app_latency_s_bucket", driver, route="/a", le="0.1") == ("histogram", 1.0)
    assert find(samples, "app_latency_s_bucket", driver, route="/a", le="1.0") == ("histogram", 2.0)
    assert find(samples, "app_latency_s_bucket", driver, route="/a", le="+Inf") == ("histogram", 3.0)
    assert find(samples, "app_latency_s_count", driver, route="/a") == ("histogram", 3.0)
    assert find(samples, "shoal_app_metrics_reporters", None, state="fresh")[1] >= len({driver, task_worker, actor_worker})
    node_ids = {dict(ls).get("NodeId") for (n, ls) in samples if n == "app_requests_total"}
    assert node_ids and None not in node_ids


def _ray_client():
    """Skips unless Ray's job client imports. The check runs in a child: Ray is never loaded into this process,
    since its module exports its own gRPC and protobuf symbols globally beside Shoal's extension."""
    probe = subprocess.run([sys.executable, "-c", "import ray.job_submission"], capture_output=True, text=True,
                           timeout=120)
    if probe.returncode != 0:
        pytest.skip("ray is not importable (%s); `pip install \"ray[default]\"` to run this test"
                    % probe.stderr.strip().splitlines()[-1:])


# Ray's JobSubmissionClient, run in a child process (see _ray_client) against Shoal's dashboard.
RAY_CLIENT_SCRIPT = r"""
import asyncio, json, sys, time
from ray.job_submission import JobSubmissionClient
url, token, work, python, deadline = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
client = JobSubmissionClient(url, headers={"Authorization": "Bearer " + token})
job_id = client.submit_job(entrypoint=python + " hello.py",
                           runtime_env={"working_dir": work, "env_vars": {"WHO": "shoal"}}, metadata={"team": "a"})
end = time.time() + deadline
while str(client.get_job_status(job_id)).split(".")[-1] != "SUCCEEDED":
    assert time.time() < end, "the Ray-submitted job did not succeed: %s" % client.get_job_status(job_id)
    time.sleep(0.2)
async def tail():
    return "".join([chunk async for chunk in client.tail_job_logs(job_id)])
info = client.get_job_info(job_id)
print(json.dumps({"logs": client.get_job_logs(job_id), "tail": asyncio.run(tail()), "metadata": info.metadata,
                  "exit_code": info.driver_exit_code, "listed": job_id in [j.submission_id for j in client.list_jobs()],
                  "deleted": client.delete_job(job_id)}))
"""


def test_rays_job_submission_client_works_against_shoal(head, tmp_path):
    _ray_client()
    work = tmp_path / "raywd"
    work.mkdir()
    (work / "hello.py").write_text("import os\nprint('ray-client', os.environ['WHO'])\n")
    proc = subprocess.run([sys.executable, "-c", RAY_CLIENT_SCRIPT, head.dashboard()["url"], head.auth_token(), str(work),
                           sys.executable, str(JOB_DEADLINE_S)], capture_output=True, text=True,
                          timeout=JOB_DEADLINE_S + 120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "ray-client shoal" in seen["logs"]
    assert "ray-client shoal" in seen["tail"]
    assert seen["metadata"] == {"team": "a"} and seen["exit_code"] == 0
    assert seen["listed"] and seen["deleted"] is True


def test_ray_job_cli_works_against_shoal(head):
    _ray_client()
    ray = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    if not os.path.exists(ray):
        pytest.skip("the `ray` command is not installed")
    env = dict(head.env, RAY_ADDRESS=head.dashboard()["url"])
    headers = json.dumps({"Authorization": f"Bearer {head.auth_token()}"})

    def ray_job(*args):
        return subprocess.run([ray, "job", args[0], "--headers", headers, *args[1:]], env=env, capture_output=True, text=True,
                              timeout=120)
    # Without --no-wait, `ray job submit` follows the log through the websocket tail.
    proc = ray_job("submit", "--submission-id", "from-ray-cli", "--", "echo", "hello-ray-cli")
    assert proc.returncode == 0, proc.stderr
    assert "hello-ray-cli" in proc.stdout + proc.stderr, proc
    wait_for_status(head, "from-ray-cli", "SUCCEEDED")
    proc = ray_job("status", "from-ray-cli")
    assert proc.returncode == 0 and "succeeded" in (proc.stdout + proc.stderr).lower(), proc
    proc = ray_job("logs", "from-ray-cli")
    assert "hello-ray-cli" in proc.stdout, proc


def test_web_ui_in_headless_chromium(head):
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
    except ImportError:
        pytest.skip("selenium is not installed (scripts/setup.sh installs it)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    job_id = submit(head, "--submission-id", "ui-job", "--", "echo shown-in-ui")
    wait_for_status(head, job_id, TERMINAL)
    # A detached placement group, made by a driver that has exited: the UI lists it.
    from conftest import PYTHON_DIR
    made = subprocess.run([sys.executable, "-c", "import shoal; shoal.init(address=%r); "
                           "pg = shoal.util.placement_group([{'CPU': 1}], name='ui-group', lifetime='detached'); "
                           "assert pg.wait(60)" % head.address],
                          env=dict(head.env, PYTHONPATH=PYTHON_DIR), capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    # More tasks than a page: the list shows 50 and a button for the rest.
    ran = subprocess.run([sys.executable, "-c", "import shoal; shoal.init(address=%r)\n"
                          "@shoal.remote(num_cpus=0)\ndef tick(i):\n    return i\n"
                          "assert shoal.get([tick.remote(i) for i in range(70)]) == list(range(70))" % head.address],
                         env=dict(head.env, PYTHONPATH=PYTHON_DIR), capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    wait_until(lambda: head.api("GET", "/api/cluster_status")[1].get("num_tasks", 0) >= 70, 30,
               what="the tasks in the GCS")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    try:
        driver.get(head.dashboard()["url"] + "/")
        token = wait_until(lambda: (e := driver.find_element(By.ID, "token")) and e.is_displayed() and e, 30,
                           what="the login form")
        token.send_keys(head.auth_token())
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        node_id = head.status()["nodes"][0]["node_id"][:12]
        wait_until(lambda: node_id in driver.find_element(By.ID, "nodes").text, 30, what="the node in the UI")
        wait_until(lambda: "ui-job" in driver.find_element(By.ID, "jobs").text, 30, what="the job in the UI")
        assert "SUCCEEDED" in driver.find_element(By.ID, "jobs").text
        assert driver.find_element(By.ID, "actors").text == "none"
        wait_until(lambda: "ui-group" in driver.find_element(By.ID, "placement-groups").text, 30,
                   what="the placement group in the UI")
        assert "CREATED" in driver.find_element(By.ID, "placement-groups").text
        # The bundles' formatted resource names stay out of the node and cluster totals.
        assert "_group_" not in driver.find_element(By.ID, "nodes").text
        assert "_group_" not in driver.find_element(By.ID, "resources").text
        tasks = driver.find_element(By.ID, "tasks")
        total = head.api("GET", "/api/cluster_status")[1]["num_tasks"]
        assert len(tasks.find_elements(By.CSS_SELECTOR, "tr")) == 51  # a page and the header row
        assert f"showing 50 of {total}" in tasks.text
        tasks.find_element(By.CSS_SELECTOR, "button.more").click()
        wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#tasks tr")) == min(total, 100) + 1, 30,
                   what="a second page of tasks")
        os.makedirs(ARTIFACTS, exist_ok=True)
        driver.save_screenshot(os.path.join(ARTIFACTS, "dashboard.png"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()


def test_shoal_python_job_client_finds_the_local_dashboard(head, tmp_path, monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "shoal_job_submission", os.path.join(REPO, "python_bindings", "shoal", "job_submission.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("SHOAL_TMPDIR", head.root)
    monkeypatch.delenv("SHOAL_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    work = tmp_path / "pywd"
    work.mkdir()
    (work / "run.sh").write_text("echo from-python-client $X\n")
    client = module.JobSubmissionClient()  # address and token found from the local session
    job_id = client.submit_job(entrypoint="sh run.sh", runtime_env={"working_dir": str(work), "env_vars": {"X": "42"}})
    text = "".join(client.tail_job_logs(job_id, poll_interval=0.2))
    assert "from-python-client 42" in text
    assert client.get_job_status(job_id) == module.JobStatus.SUCCEEDED
    assert client.stop_job(job_id) is False
    assert client.delete_job(job_id) is True
    with pytest.raises(RuntimeError, match="401"):
        module.JobSubmissionClient(head.dashboard()["url"], token="wrong-token")


def test_job_records_survive_gcs_and_dashboard_restarts_with_redis(cluster, redis_server, tmp_path):
    import signal
    import urllib.request
    from conftest import BIN
    from test_cluster import restart_gcs
    redis = f"127.0.0.1:{redis_server.port}"
    cluster.start_head("--num-cpus", 1, "--redis-address", redis, dashboard=True)
    done = submit(cluster, "--submission-id", "persisted", "--", "echo persisted")
    wait_for_status(cluster, done, "SUCCEEDED")
    pid_file = tmp_path / "child.pid"
    running = submit(cluster, "--submission-id", "interrupted", "--", f"sleep 1000 & echo $! > {pid_file}; wait")
    wait_for_status(cluster, running, "RUNNING")
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, what="the job's child pid")
    child = int(pid_file.read_text())

    gcs = cluster.recorded_pids()["gcs"][0]
    os.kill(gcs, signal.SIGKILL)
    wait_until(lambda: not process_alive(gcs), 10, what="the GCS to die")
    restart_gcs(cluster, "--redis-address", redis)
    dashboard = cluster.dashboard()["pid"]
    os.kill(dashboard, signal.SIGKILL)
    wait_until(lambda: not process_alive(dashboard), 10, what="the dashboard to die")
    # Its job's processes die with it (the job's guard kills the process group).
    wait_until(lambda: not process_alive(child), 30, what="the killed dashboard's job to end")

    ready = tmp_path / "ready.json"
    token_file = [os.path.join(s, "auth_token") for s in session_dirs(cluster.root)
                  if os.path.exists(os.path.join(s, "auth_token"))][0]
    cluster.spawn([os.path.join(BIN, "shoal-dashboard"), "--gcs-address", cluster.address, "--port", "0",
                   "--token-file", token_file, "--session-dir", str(tmp_path), "--ready-file", str(ready)])
    wait_until(ready.exists, 30, what="the new dashboard")
    url = json.loads(ready.read_text())["url"]

    def job(job_id):
        request = urllib.request.Request(f"{url}/api/jobs/{job_id}",
                                         headers={"Authorization": f"Bearer {cluster.auth_token()}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())
    assert job("persisted")["status"] == "SUCCEEDED"
    assert job("persisted")["driver_exit_code"] == 0
    lost = job("interrupted")
    assert lost["status"] == "FAILED" and "dashboard restarted" in lost["message"]


def test_disable_auth_warns_and_serves_without_a_token(cluster):
    proc = cluster.start_head("--num-cpus", 1, "--disable-auth", dashboard=True)
    assert "auth is disabled" in proc.stdout + proc.stderr
    assert cluster.api("GET", "/api/jobs/", token=False) == (200, [])
    assert glob.glob(os.path.join(cluster.root, "session_*", "auth_token")) == []
    # The cross-site checks stay on.
    assert cluster.api("POST", "/api/jobs/", {"entrypoint": "true"}, token=False,
                       headers={"Origin": "http://evil.example"})[0] == 403
    job_id = submit(cluster, "--", "echo no-token-needed")
    assert wait_for_status(cluster, job_id, TERMINAL)["status"] == "SUCCEEDED"


def test_state_api_over_http(head):
    head.start_worker("--num-cpus", 1)
    wait_until(lambda: len(head.alive_nodes()) == 2, 30, what="2 alive nodes")
    status, body = head.api("GET", "/api/v0/nodes?limit=1&detail=true")
    assert status == 200 and body["result"] is True, body
    listed = body["data"]["result"]
    assert listed["total"] == 2 and listed["num_after_truncation"] == 1
    assert "resources_available" in listed["result"][0]  # a detail column
    status, body = head.api("GET", "/api/v0/nodes?filter_keys=is_head_node&filter_predicates=%3D&filter_values=true")
    assert status == 200 and [n["is_head_node"] for n in body["data"]["result"]["result"]] == [True]
    for path, words in [("/api/v0/gizmos", "placement-groups"), ("/api/v0/nodes?limit=-3", "limit"),
                        ("/api/v0/nodes?filter_keys=colour&filter_predicates=%3D&filter_values=red", "colour"),
                        ("/api/v0/nodes?filter_keys=state", "equal numbers")]:
        status, body = head.api("GET", path)
        assert status == 400 and words in body["message"], (path, status, body)
    status, body = head.api("GET", "/api/v0/runtime_envs")
    assert status == 501 and "not supported" in body["message"]
    # Objects come from the processes that refer to them: none here but answered, as a list.
    status, body = head.api("GET", "/api/v0/objects?detail=true")
    assert status == 200 and body["result"] is True, body
    assert isinstance(body["data"]["result"]["result"], list)
    status, body = head.api("GET", "/api/v0/workers?detail=true")  # from the raylets
    assert status == 200 and body["result"] is True, body
    assert all({"worker_id", "pid", "state", "job_id"} <= set(w) for w in body["data"]["result"]["result"])
    assert head.api("GET", "/api/v0/nodes", token=False)[0] == 401  # authenticated like the rest


def test_cluster_status_list_limits(head):
    status, body = head.api("GET", "/api/cluster_status?limit=1&actor_limit=1&task_limit=2&group_limit=3")
    assert status == 200, body
    assert len(body["nodes"]) == 1 and body["num_nodes"] == 1
    for query in ("actor_limit=0", "task_limit=abc", "limit=-1", "group_limit=10001"):
        status, body = head.api("GET", "/api/cluster_status?" + query)
        assert status == 400, (query, body)
        assert query.split("=")[0] in body["message"]
    assert head.api("GET", "/api/cluster_status")[0] == 200  # the dashboard lives on
