"""Runtime environments end to end: packages through the GCS to every node, pip/uv virtualenvs,
Ray's inheritance and merge rules, failures as RuntimeEnvSetupError, jobs with their env.

Most tests share one three-node cluster (head without GPUs; nodes A and B) and run their driver
in this process; tasks are sent to node A or B (custom resources) so that what they see comes
from another raylet than the driver's."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile

import pytest

from conftest import PYTHON_DIR, session_dirs, wait_until

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal  # noqa: E402
from shoal.exceptions import RuntimeEnvSetupError  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])

NO_INDEX = ["--no-index"]  # the tests install local wheels only: no network needed


def make_wheel(directory, name="shoalrenvtest", value=42):
    """A pure-Python wheel built by hand (no build tools): `import <name>; <name>.VALUE`."""
    info = f"{name}-1.0.dist-info"
    path = os.path.join(directory, f"{name}-1.0-py3-none-any.whl")
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: shoal-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


def run_script(code, env, timeout=180, cwd=None):
    env = dict(env)
    env["PYTHONPATH"] = PYTHON_DIR
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or tempfile.gettempdir())


def node_of(cluster, resource):
    return next(n["node_id"] for n in cluster.alive_nodes() if resource in n["resources_total"])


@shoal.remote(num_cpus=0)
def probe(module=None):
    import importlib
    value = getattr(importlib.import_module(module), "VALUE", None) if module else None
    return {"cwd": os.getcwd(), "vars": {k: v for k, v in os.environ.items() if k.startswith("RENV_")},
            "value": value, "node": shoal.get_runtime_context().get_node_id(), "python": sys.executable}


# ---------------------------------------------------------------------------------------------
# Packages reach every node


def test_working_dir_and_env_vars_reach_a_task_on_another_node(driver, tmp_path):
    wd = tmp_path / "wd"
    (wd / "sub").mkdir(parents=True)
    (wd / "renv_helper.py").write_text("VALUE = 'from the working dir'\n")
    (wd / "sub" / "data.txt").write_text("payload")
    env = {"working_dir": str(wd), "env_vars": {"RENV_ONE": "1"}}
    out = shoal.get(probe.options(resources={"A": 1}, runtime_env=env).remote("renv_helper"), timeout=120)
    assert out["value"] == "from the working dir"
    assert out["vars"] == {"RENV_ONE": "1"}
    assert out["node"] == node_of(driver, "A")
    # The node's own unpacked copy of the package, not the driver's directory.
    assert "/runtime_resources/packages/_shoal_pkg_" in out["cwd"]
    assert not os.path.samefile(out["cwd"], wd)
    assert open(os.path.join(out["cwd"], "sub", "data.txt")).read() == "payload"
    # Node B unpacks its own copy; the package went through the GCS once.
    out_b = shoal.get(probe.options(resources={"B": 1}, runtime_env=env).remote("renv_helper"), timeout=120)
    assert out_b["value"] == "from the working dir"
    assert out_b["node"] == node_of(driver, "B")
    assert os.path.basename(out_b["cwd"]) == os.path.basename(out["cwd"])
    assert out_b["cwd"] != out["cwd"]


def test_excludes_leave_files_out_of_the_package(driver, tmp_path):
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    (wd / "keep.py").write_text("VALUE = 1\n")
    (wd / "big.bin").write_bytes(b"x" * 1000)
    (wd / "data" / "a.csv").write_text("a")
    (wd / "notes.log").write_text("log")

    @shoal.remote(num_cpus=0)
    def listing():
        out = []
        for root, _, files in os.walk("."):
            out += [os.path.normpath(os.path.join(root, f)) for f in files]
        return sorted(out)

    env = {"working_dir": str(wd), "excludes": ["*.bin", "data/", "/notes.log"]}
    assert shoal.get(listing.options(resources={"A": 1}, runtime_env=env).remote(), timeout=120) == ["keep.py"]


def test_py_modules_directory_importable_on_every_node(driver, tmp_path):
    pkg = tmp_path / "renv_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 'py_module'\n")
    env = {"py_modules": [str(pkg)]}
    for resource in ("A", "B"):
        out = shoal.get(probe.options(resources={resource: 1}, runtime_env=env).remote("renv_pkg"), timeout=120)
        assert out["value"] == "py_module"
        assert out["node"] == node_of(driver, resource)


def test_task_runtime_env_merges_with_the_jobs_and_nested_tasks_inherit(three_nodes, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "renv_job_mod.py").write_text("VALUE = 'job working dir'\n")
    proc = run_script(f"""
        import json, os
        import shoal
        shoal.init(address="auto", runtime_env={{"env_vars": {{"RENV_A": "1", "RENV_B": "2"}},
                                                "working_dir": {str(wd)!r}}})

        def seen():
            import renv_job_mod
            return {{k: v for k, v in os.environ.items() if k.startswith("RENV_")}}, renv_job_mod.VALUE

        @shoal.remote(num_cpus=0, resources={{"A": 1}})
        def task():
            return seen()

        @shoal.remote(num_cpus=0, resources={{"B": 1}})
        def parent():
            return seen(), shoal.get(child.remote())

        @shoal.remote(num_cpus=0, resources={{"A": 1}})
        def child():
            return seen()

        @shoal.remote(num_cpus=0, resources={{"B": 1}})
        class Actor:
            def seen(self):
                return seen()

        out = {{
            "plain": shoal.get(task.remote()),
            "merged": shoal.get(task.options(runtime_env={{"env_vars": {{"RENV_B": "3", "RENV_C": "4"}}}}).remote()),
            "nested": shoal.get(parent.options(runtime_env={{"env_vars": {{"RENV_C": "5"}}}}).remote()),
            "actor": shoal.get(Actor.options(runtime_env={{"env_vars": {{"RENV_D": "6"}}}}).remote().seen.remote()),
            "context": json.loads(shoal.get_runtime_context().get_runtime_env_string()),
        }}
        print("RESULT", json.dumps(out))
        shoal.shutdown()
    """, three_nodes.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    job = "job working dir"
    assert out["plain"] == [{"RENV_A": "1", "RENV_B": "2"}, job]
    # env_vars merge variable by variable (the task's win); the job's working_dir stays.
    assert out["merged"] == [{"RENV_A": "1", "RENV_B": "3", "RENV_C": "4"}, job]
    # A task submitted inside a task runs in its parent's environment.
    inherited = [{"RENV_A": "1", "RENV_B": "2", "RENV_C": "5"}, job]
    assert out["nested"] == [inherited, inherited]
    assert out["actor"] == [{"RENV_A": "1", "RENV_B": "2", "RENV_D": "6"}, job]
    assert out["context"]["env_vars"] == {"RENV_A": "1", "RENV_B": "2"}
    assert out["context"]["working_dir"].startswith("gcs://_shoal_pkg_")


# ---------------------------------------------------------------------------------------------
# pip and uv


def venvs(cluster):
    return sorted(p for s in session_dirs(cluster.root)
                  for p in glob.glob(os.path.join(s, "runtime_resources", "envs", "*")) if os.path.isdir(p))


def test_pip_env_is_built_once_per_node_and_reused(driver, tmp_path):
    wheel = make_wheel(str(tmp_path))
    env = {"py_modules": [wheel], "pip": {"packages": [], "pip_install_options": NO_INDEX}}
    before = venvs(driver)
    start = time.monotonic()
    first = shoal.get(probe.options(resources={"A": 1}, runtime_env=env).remote("shoalrenvtest"), timeout=300)
    cold = time.monotonic() - start
    assert first["value"] == 42
    assert "/runtime_resources/envs/" in first["python"]  # the virtualenv's interpreter
    built = [v for v in venvs(driver) if v not in before]
    assert len(built) == 1
    # Another environment with the same requirements (different env_vars) reuses the virtualenv.
    start = time.monotonic()
    env2 = dict(env, env_vars={"RENV_OTHER": "1"})
    second = shoal.get(probe.options(resources={"A": 1}, runtime_env=env2).remote("shoalrenvtest"), timeout=300)
    warm = time.monotonic() - start
    assert second["value"] == 42 and second["vars"] == {"RENV_OTHER": "1"}
    assert second["python"] == first["python"]
    assert [v for v in venvs(driver) if v not in before] == built
    print(f"pip env set-up: cold {cold:.1f}s, cached {warm:.1f}s")
    # System packages stay visible inside the environment (Shoal itself imported; numpy too).

    @shoal.remote(num_cpus=0, resources={"A": 1}, runtime_env=env)
    def imports_numpy():
        import numpy
        return numpy.__name__

    assert shoal.get(imports_numpy.remote(), timeout=120) == "numpy"


def test_uv_installs_too(driver, tmp_path):
    if shutil.which("uv") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "uv")):
        pytest.fail("uv is not installed (scripts/setup.sh installs it)")
    wheel = make_wheel(str(tmp_path), name="shoaluvtest", value=7)
    env = {"uv": {"packages": [wheel], "uv_pip_install_options": ["--offline"]}}
    out = shoal.get(probe.options(resources={"B": 1}, runtime_env=env).remote("shoaluvtest"), timeout=300)
    assert out["value"] == 7


def test_failed_install_is_a_runtime_env_setup_error_and_the_cluster_is_fine(driver):
    bad = {"pip": {"packages": ["shoal-no-such-package-anywhere==9.9.9"], "pip_install_options": NO_INDEX}}
    with pytest.raises(RuntimeEnvSetupError) as info:
        shoal.get(probe.options(resources={"A": 1}, runtime_env=bad).remote(), timeout=300)
    message = str(info.value)
    assert "pip install failed" in message
    assert "shoal-no-such-package-anywhere" in message  # pip's own words reach the caller

    @shoal.remote(num_cpus=0, resources={"A": 1}, runtime_env=bad)
    class Broken:
        def ping(self):
            return "pong"

    with pytest.raises(RuntimeEnvSetupError):
        shoal.get(Broken.remote().ping.remote(), timeout=300)
    # Nothing half-built is used, and the node runs other work.
    assert shoal.get(probe.options(resources={"A": 1}).remote(), timeout=60)["node"] == node_of(driver, "A")


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors, nothing written where it should not be


def test_bad_runtime_envs_are_refused_by_name(driver, tmp_path, monkeypatch):
    def f_with(env):
        return probe.options(resources={"A": 1}, runtime_env=env)

    with pytest.raises(ValueError, match="'nope' is not supported"):
        f_with({"nope": 1}).remote()
    with pytest.raises(ValueError, match="conda"):
        f_with({"conda": "env"}).remote()
    with pytest.raises(TypeError, match="pip"):
        f_with({"pip": 42}).remote()
    with pytest.raises(ValueError, match="not a requirements file"):
        f_with({"pip": str(tmp_path / "missing.txt")}).remote()
    with pytest.raises(ValueError, match="both 'pip' and 'uv'"):
        f_with({"pip": ["a"], "uv": ["b"]}).remote()
    with pytest.raises(ValueError, match="working_dir"):
        f_with({"working_dir": str(tmp_path / "missing")}).remote()
    with pytest.raises(ValueError, match="remote URI"):
        f_with({"working_dir": "s3://bucket/code.zip"}).remote()
    with pytest.raises(ValueError, match="is not an environment variable name"):
        f_with({"env_vars": {"1X": "y"}}).remote()
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob.bin").write_bytes(os.urandom(5000))
    monkeypatch.setenv("SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES", "4096")
    with pytest.raises(ValueError, match="over the package limit"):
        f_with({"working_dir": str(big)}).remote()


def test_zip_with_parent_paths_is_refused_and_writes_nothing_outside(driver, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.py", "VALUE = 1\n")
        zf.writestr("../../renv_escaped.txt", "escaped")
    with pytest.raises(RuntimeEnvSetupError, match="refused"):
        shoal.get(probe.options(resources={"A": 1}, runtime_env={"working_dir": str(archive)}).remote(), timeout=120)
    for session in session_dirs(driver.root):
        for parent in (session, os.path.join(session, "runtime_resources")):
            assert not os.path.exists(os.path.join(parent, "renv_escaped.txt"))
    assert not glob.glob(os.path.join(driver.root, "**", "renv_escaped.txt"), recursive=True)


# ---------------------------------------------------------------------------------------------
# Jobs


JOB_SCRIPT = """
import json, os, sys
import shoaljobwheel  # the job's requirement, importable by the driver itself
import shoal
shoal.init()

@shoal.remote(num_cpus=0, resources={"A": 1})
def task():
    import job_helper, shoaljobwheel
    return [job_helper.VALUE, shoaljobwheel.VALUE, os.environ.get("RENV_JOB"),
            shoal.get_runtime_context().get_node_id()]

from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
head = next(n["NodeID"] for n in shoal.nodes() if n["Alive"] and "A" not in n["Resources"])
on_head = task.options(resources={}, scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False))
print("RESULT " + json.dumps({"task": shoal.get(task.remote(), timeout=300),
                              "task_on_head": shoal.get(on_head.remote(), timeout=300),
                              "driver_node": shoal.get_runtime_context().get_node_id(),
                              "driver_gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                              "driver_python": sys.executable}))
"""


def test_job_runs_on_its_gpu_node_with_working_dir_and_requirements(cluster, tmp_path):
    """The seeds' workflow: a head without GPUs, a GPU worker; `shoal job submit --working-dir .
    --runtime-env runtime.json --entrypoint-num-gpus 1 -- python3 main.py` with a requirements
    file: the driver runs on the GPU node with its GPU, imports the requirement, and its tasks
    get the working_dir and the requirement too."""
    cluster.start_head("--num-cpus", 1, "--num-gpus", 0, dashboard=True)
    cluster.start_worker("--num-cpus", 2, "--num-gpus", 2, "--resources", '{"A": 10}')
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="2 alive nodes")
    gpu_node = next(n["node_id"] for n in cluster.alive_nodes() if "A" in n["resources_total"])
    work = tmp_path / "job"
    work.mkdir()
    (work / "job_helper.py").write_text("VALUE = 'job module'\n")
    (work / "main.py").write_text(JOB_SCRIPT)
    wheel = make_wheel(str(tmp_path), name="shoaljobwheel", value=5)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--no-index\n{wheel}\n")
    runtime = tmp_path / "runtime.json"
    runtime.write_text(json.dumps({"pip": str(requirements),
                                   "env_vars": {"RENV_JOB": "yes", "PYTHONPATH": PYTHON_DIR}}))

    def submit(*extra):
        start = time.monotonic()
        proc = cluster.shoal("job", "submit", "--working-dir", work, "--runtime-env", runtime, "--entrypoint-num-gpus",
                             1, *extra, "--", "python3", "main.py", timeout=400, check=False)
        return proc, time.monotonic() - start

    proc, cold = submit()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["task"] == ["job module", 5, "yes", gpu_node]
    head_node = next(n["node_id"] for n in cluster.alive_nodes() if "A" not in n["resources_total"])
    assert result["task_on_head"] == ["job module", 5, "yes", head_node]  # every node has both
    assert result["driver_node"] == gpu_node
    assert result["driver_gpus"] in ("0", "1")
    assert "/runtime_resources/envs/" in result["driver_python"]  # the job's virtualenv
    built = venvs(cluster)
    # One per node: on the GPU node the driver and its task share it; the head built its own.
    assert len(built) == 2 and len({os.path.dirname(os.path.dirname(os.path.dirname(v))) for v in built}) == 2
    # A second job with the same requirements reuses it.
    proc, warm = submit()
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert venvs(cluster) == built
    print(f"job with pip env: first {cold:.1f}s, second (cached env) {warm:.1f}s")
    # A requirement that exists nowhere fails the job with pip's error; the cluster goes on.
    requirements.write_text("--no-index\nshoal-no-such-job-requirement==1.0\n")
    proc, _ = submit()
    assert proc.returncode != 0
    job_id = proc.stdout.split("Job '", 1)[1].split("'", 1)[0]
    status, job = cluster.api("GET", f"/api/jobs/{job_id}")
    assert job["status"] == "FAILED"
    assert "shoal-no-such-job-requirement" in job["message"] and "runtime env" in job["message"], job["message"]
    # The cluster is fine afterwards: the next job with good requirements runs.
    requirements.write_text(f"--no-index\n{wheel}\n")
    proc, _ = submit()
    assert proc.returncode == 0, proc.stdout[-4000:]
    status, body = cluster.api("POST", "/api/jobs/", {"entrypoint": "true", "runtime_env": {"conda": "x"}})
    assert status == 400 and "conda" in body["message"], body
    status, body = cluster.api("POST", "/api/jobs/", {"entrypoint": "true", "runtime_env": {"nope": 1}})
    assert status == 400 and "'nope'" in body["message"], body
    # A head path cannot follow an entrypoint that runs on another node: refused, not ignored.
    status, body = cluster.api("POST", "/api/jobs/", {"entrypoint": "true", "entrypoint_num_gpus": 1,
                                                      "runtime_env": {"py_modules": [str(work)]}})
    assert status == 400 and "path on the head" in body["message"], body


def test_a_job_says_it_installs_its_runtime_env_and_can_be_stopped_meanwhile(cluster, tmp_path):
    cluster.start_head("--num-cpus", 2, dashboard=True)

    def submit(name, cpus=1):
        wheel = make_wheel(str(tmp_path), name=name)
        status, body = cluster.api("POST", "/api/jobs/", {
            "entrypoint": f"python3 -c 'import {name}'", "entrypoint_num_cpus": cpus,  # the env's python3
            "runtime_env": {"pip": {"packages": [wheel], "pip_install_options": NO_INDEX},
                            "env_vars": {"PYTHONPATH": PYTHON_DIR}}})
        assert status == 200, body
        return body["submission_id"]

    def installing(job_id):
        job = cluster.api("GET", f"/api/jobs/{job_id}")[1]
        return job["status"] == "PENDING" and "installing its runtime env" in job["message"] and job

    job_id = submit("shoalwaits")
    wait_until(lambda: installing(job_id), 60, interval=0.1, what="the job to say it installs its runtime env")
    done = wait_until(lambda: (j := cluster.api("GET", f"/api/jobs/{job_id}")[1])["status"] in
                      ("SUCCEEDED", "FAILED", "STOPPED") and j, 120, what="the job to end once its env is ready")
    assert done["status"] == "SUCCEEDED", (done, cluster.api("GET", f"/api/jobs/{job_id}/logs")[1])
    # Stopped while its env is installed: STOPPED at once, nothing runs.
    job_id = submit("shoalstops")
    wait_until(lambda: installing(job_id), 60, interval=0.1, what="the second job to install its env")
    assert cluster.api("POST", f"/api/jobs/{job_id}/stop")[0] == 200
    wait_until(lambda: cluster.api("GET", f"/api/jobs/{job_id}")[1]["status"] == "STOPPED", 30, what="STOPPED")
    assert cluster.api("GET", f"/api/jobs/{job_id}")[1]["driver_exit_code"] is None
    # Without entrypoint resources (Ray's default) the entrypoint still runs inside its env.
    job_id = submit("shoalnocpus", cpus=0)
    done = wait_until(lambda: (j := cluster.api("GET", f"/api/jobs/{job_id}")[1])["status"] in
                      ("SUCCEEDED", "FAILED", "STOPPED") and j, 120, what="the job without resources to end")
    assert done["status"] == "SUCCEEDED", (done, cluster.api("GET", f"/api/jobs/{job_id}/logs")[1])


STOPPABLE = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(600)
"""


def test_a_job_on_another_node_is_stopped_and_ends_with_its_dashboard(cluster, tmp_path):
    cluster.start_head("--num-cpus", 1, "--num-gpus", 0, dashboard=True)
    cluster.start_worker("--num-cpus", 1, "--num-gpus", 1)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="2 alive nodes")
    script = tmp_path / "sleep.py"
    script.write_text(STOPPABLE)

    def start(name):
        pid_file = tmp_path / f"{name}.pid"
        status, body = cluster.api("POST", "/api/jobs/", {"entrypoint": f"{sys.executable} {script} {pid_file}",
                                                         "entrypoint_num_gpus": 1})
        assert status == 200, body
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, what=f"{name} to start")
        return body["submission_id"], int(pid_file.read_text())

    job_id, pid = start("stopped")
    assert os.path.exists(f"/proc/{pid}")
    status, _ = cluster.api("POST", f"/api/jobs/{job_id}/stop")
    assert status == 200
    wait_until(lambda: cluster.api("GET", f"/api/jobs/{job_id}")[1]["status"] == "STOPPED", 30, what="STOPPED")
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30, what="the stopped entrypoint to end")
    # The GPU is free again: the next job gets it, and dies with the dashboard.
    job_id, pid = start("orphaned")
    dashboard_pid = cluster.dashboard()["pid"]
    os.kill(dashboard_pid, 9)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 60, what="the entrypoint to end with its dashboard")


def test_unused_packages_are_deleted(cluster, tmp_path):
    """A raylet told to keep no unused package deletes one once no worker uses it."""
    cluster.start_head("--num-cpus", 1, "--runtime-env-cache-packages", 0)
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "renv_gc_mod.py").write_text("VALUE = 'gc'\n")
    proc = run_script(f"""
        import os, shoal
        shoal.init(address="auto")

        @shoal.remote(runtime_env={{"working_dir": {str(wd)!r}}})
        def where():
            import renv_gc_mod
            return os.getcwd(), renv_gc_mod.VALUE

        print("CWD", shoal.get(where.remote())[0])
        shoal.shutdown()
    """, cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cwd = proc.stdout.split("CWD", 1)[1].strip()
    assert "/runtime_resources/packages/" in cwd
    # The driver is gone, so are its workers: the package goes within seconds.
    wait_until(lambda: not os.path.exists(cwd), 60, what=f"{cwd} to be deleted")


def test_a_finished_jobs_packages_leave_the_gcs_unless_another_job_uses_them(cluster, tmp_path):
    cluster.start_head("--num-cpus", 2)
    shared, own = tmp_path / "shared", tmp_path / "own"
    for d in (shared, own):
        d.mkdir()
        (d / "mod.py").write_text(f"VALUE = {str(d)!r}\n")
    script = """
        import json, sys, shoal
        from shoal._private import runtime
        shoal.init(address="auto")

        @shoal.remote(num_cpus=0)
        def where():
            import os
            return os.getcwd()

        uris = {}
        for d in sys.argv[1:]:
            env = json.loads(runtime.core_runtime_env({"working_dir": d}))
            shoal.get(where.options(runtime_env={"working_dir": d}).remote())
            uris[d] = env["working_dir"]
        print("URIS " + json.dumps(uris), flush=True)
        input()  # held open until the test says so
        shoal.shutdown()
    """
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR)

    def start(*dirs):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, dirs)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cluster.extra_pids.append(proc.pid)
        line = proc.stdout.readline()
        assert line.startswith("URIS "), line + proc.stderr.read()
        return proc, json.loads(line[5:])

    def finish(proc):
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()

    first, uris = start(shared, own)
    second, _ = start(shared)
    import shoal
    shoal.init(address=cluster.address)
    try:
        core = shoal._private.runtime.core()
        assert core.package_exists(uris[str(shared)]) and core.package_exists(uris[str(own)])
        finish(first)
        # Its own package goes; the one the second job still uses stays.
        wait_until(lambda: not core.package_exists(uris[str(own)]), 30, what="the first job's package to go")
        assert core.package_exists(uris[str(shared)])
        finish(second)
        wait_until(lambda: not core.package_exists(uris[str(shared)]), 30, what="the shared package to go")
        # A later job with the same directory uploads it again (same name), and its tasks run.
        third, again = start(shared)
        assert again[str(shared)] == uris[str(shared)]
        assert core.package_exists(uris[str(shared)])
        finish(third)
    finally:
        shoal.shutdown()

