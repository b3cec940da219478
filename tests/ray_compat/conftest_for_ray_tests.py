"""Ray's test fixtures (python/ray/tests/conftest.py), re-implemented on Shoal for the measure.

Deviations from Ray's conftest (harness choices, not Shoal gaps):
- the default fixture kwargs drop object_store_memory=150MiB and _system_config (Shoal's init
  refuses both); an object_store_memory a test asks for explicitly is still passed on;
- local_mode=True instances are skipped as OUT (deprecated Ray mode);
- numpy 2 removed np.alltrue: it is aliased to np.all.
Each test's outcome is appended as a JSON line to $RAYMEASURE_RESULTS (run_measure.py reads it).
"""
import json
import os
import time

import numpy as np
import pytest

if not hasattr(np, "alltrue"):
    np.alltrue = np.all  # harness: numpy>=2 removed it

import ray
import ray.util.state  # noqa: F401  (Ray's tests use ray.util.state.* after `import ray`)
from ray.cluster_utils import Cluster

_RESULTS = os.environ.get("RAYMEASURE_RESULTS")


def pytest_collection_modifyitems(config, items):
    """Exact-match deselection of the tests a previous attempt already ran (run_measure.py
    restarts a file after a hang; pytest's --deselect would match by prefix)."""
    markers_out = os.environ.get("RAYMEASURE_MARKERS_OUT")
    if markers_out:
        with open(markers_out, "w") as f:
            json.dump({item.nodeid: sorted({m.name for m in item.iter_markers()} & {"helpers", "newfeature"})
                       for item in items}, f, indent=0)
    path = os.environ.get("RAYMEASURE_DONE")
    if not path or not os.path.exists(path):
        return
    with open(path) as f:
        done = {line.strip() for line in f if line.strip()}
    keep, drop = [], []
    for item in items:
        (drop if item.nodeid in done else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config):
    config.addinivalue_line("markers", "helpers: needs Ray's test helpers (SignalActor, Cluster, ...)")
    config.addinivalue_line("markers", "newfeature: brand-new upstream Ray feature")


def _write(rec):
    if _RESULTS:
        with open(_RESULTS, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())


_phases = {}


def pytest_runtest_logstart(nodeid, location):
    _phases[nodeid] = {"t0": time.time(), "reports": []}
    _write({"nodeid": nodeid, "event": "start", "t": time.time()})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    markers = sorted({m.name for m in item.iter_markers()} & {"helpers", "newfeature"})
    rep.user_properties.append(("measure_markers", markers))


def pytest_runtest_logreport(report):
    entry = _phases.setdefault(report.nodeid, {"t0": time.time(), "reports": []})
    msg = ""
    detail = ""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        msg = crash.message if crash is not None else str(report.longrepr)[-2000:]
        detail = str(report.longrepr)[-6000:]
    elif report.skipped:
        lr = report.longrepr
        msg = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
    markers = dict(report.user_properties).get("measure_markers", [])
    entry["reports"].append({"when": report.when, "outcome": report.outcome, "msg": msg,
                             "markers": markers, "detail": detail})


def pytest_runtest_logfinish(nodeid, location):
    entry = _phases.pop(nodeid, {"t0": time.time(), "reports": []})
    reports = entry["reports"]
    outcome, msg, when, detail = "passed", "", "", ""
    for r in reports:
        if r["outcome"] == "failed":
            outcome, msg, when, detail = "failed", r["msg"], r["when"], r.get("detail", "")
            break
    else:
        for r in reports:
            if r["outcome"] == "skipped":
                outcome, msg, when = "skipped", r["msg"], r["when"]
                break
    markers = sorted({m for r in reports for m in r["markers"]})
    _write({"nodeid": nodeid, "event": "end", "outcome": outcome, "when": when, "msg": msg,
            "markers": markers, "duration": round(time.time() - entry["t0"], 2), "detail": detail})


# ---------------------------------------------------------------------------------------------
# Fixtures (shapes and names as in Ray's conftest.py)


_SHARED = {"ray_start_regular_shared", "ray_start_shared_local_modes"}


@pytest.fixture(autouse=True)
def _measure_no_leaked_session(request):
    """Harness guard (not in Ray's conftest): a session that an earlier test left connected
    (a failed test that auto-initialized, or a module's shared session whose module-scoped
    fixture this test does not use) is shut down first, so that one failure does not cascade
    into 'init twice' errors in every later test of the file."""
    if not (_SHARED & set(request.fixturenames)) and ray.is_initialized():
        ray.shutdown()
    yield


def get_default_fixture_ray_kwargs():
    # Ray: num_cpus=1, object_store_memory=150MiB, dashboard_port=None,
    # namespace="default_test_namespace", _system_config=<test defaults>.
    return {"num_cpus": 1, "namespace": "default_test_namespace"}


_DROPPED = ("dashboard_port",)


class _start:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __enter__(self):
        init_kwargs = get_default_fixture_ray_kwargs()
        init_kwargs.update(self.kwargs)
        if init_kwargs.pop("local_mode", False):
            pytest.skip("OUT: local_mode=True (deprecated Ray mode)")
        for k in _DROPPED:
            init_kwargs.pop(k, None)
        return ray.init("local", **init_kwargs)

    def __exit__(self, *exc):
        ray.shutdown()


@pytest.fixture
def ray_start_regular(request):
    param = getattr(request, "param", {})
    with _start(**param) as res:
        yield res


@pytest.fixture(scope="module")
def ray_start_regular_shared(request):
    param = getattr(request, "param", {})
    with _start(**param) as res:
        yield res


@pytest.fixture(scope="module", params=[{"local_mode": True}, {"local_mode": False}])
def ray_start_shared_local_modes(request):
    param = getattr(request, "param", {})
    with _start(**param) as res:
        yield res


@pytest.fixture
def ray_start_2_cpus(request):
    param = getattr(request, "param", {})
    with _start(num_cpus=2, **param) as res:
        yield res


@pytest.fixture
def ray_start_10_cpus(request):
    param = getattr(request, "param", {})
    with _start(num_cpus=10, **param) as res:
        yield res


@pytest.fixture
def ray_start_no_cpu(request):
    param = getattr(request, "param", {})
    with _start(num_cpus=0, **param) as res:
        yield res


@pytest.fixture
def shutdown_only():
    yield None
    ray.shutdown()


@pytest.fixture
def set_enable_auto_connect(request):
    value = getattr(request, "param", "1")
    if value == "0":
        pytest.skip("INTERNAL: RAY_ENABLE_AUTO_CONNECT=0 env knob")
    yield value


class _start_cluster:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.cluster = None

    def __enter__(self):
        kwargs = dict(self.kwargs)
        init_kwargs = get_default_fixture_ray_kwargs()
        num_nodes = kwargs.pop("num_nodes", 0)
        do_init = kwargs.pop("do_init", num_nodes > 0)
        init_kwargs.update(kwargs)
        namespace = init_kwargs.pop("namespace")
        self.cluster = Cluster()
        try:
            for i in range(num_nodes):
                self.cluster.add_node(**init_kwargs)
                if i == 0 and do_init:
                    ray.init(address=self.cluster.address, namespace=namespace)
        except BaseException:
            self.__exit__()
            raise
        return self.cluster

    def __exit__(self, *exc):
        try:
            ray.shutdown()
        finally:
            self.cluster.shutdown()


@pytest.fixture
def ray_start_cluster(request):
    param = getattr(request, "param", {})
    with _start_cluster(**param) as res:
        yield res


@pytest.fixture
def ray_start_cluster_init(request):
    param = getattr(request, "param", {})
    with _start_cluster(do_init=True, **param) as res:
        yield res


@pytest.fixture
def ray_start_cluster_head(request):
    param = getattr(request, "param", {})
    with _start_cluster(do_init=True, num_nodes=1, **param) as res:
        yield res


@pytest.fixture
def ray_start_cluster_2_nodes(request):
    param = getattr(request, "param", {})
    with _start_cluster(do_init=True, num_nodes=2, **param) as res:
        yield res
