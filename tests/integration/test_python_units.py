"""Pure-Python parts of the shoal package, without a cluster: serialization layout, exception
types, option validation."""
import json
import os
import pickle
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "build", "python"))

import numpy as np  # noqa: E402

from shoal import exceptions  # noqa: E402
from shoal._private import options, serialization  # noqa: E402
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402


def test_round_trip_of_plain_values():
    for value in [None, 0, -1, 2**70, 1.5, "text", b"bytes", [1, [2, 3]], {"a": (1, 2)}, {1, 2}, lambda x: x + 1]:
        parts, total, refs = serialization.serialize(value)
        blob = b"".join(bytes(p) for p in parts)
        assert len(blob) == total
        assert refs == []
        got = serialization.deserialize(blob)
        if callable(value):
            assert got(1) == 2
        else:
            assert got == value


def test_plain_values_take_the_standard_pickler_with_the_same_bytes():
    import cloudpickle
    plain = [0, -7, 1.5, 2j, "text", b"bytes", None, True, [1, "a", None], (2.5, b"x"), {"k": 1, 2: "v"},
             np.arange(12, dtype=np.int16).reshape(3, 4)]
    for value in plain:
        assert serialization._plain(value), value
        buffers = []
        assert serialization.serialize(value)[0][1] == cloudpickle.dumps(value, protocol=5,
                                                                         buffer_callback=buffers.append)
    # Anything that may hold a function, a class, an ObjectRef or a subclass takes cloudpickle.
    local = lambda: 1  # noqa: E731
    for value in ([local], {"f": local}, [[1]], np.array([local], dtype=object), list(range(1000)), True.__class__,
                  type("Sub", (int,), {})(3)):
        assert not serialization._plain(value), value
    assert pickle.loads(serialization.serialize([local])[0][1])[0]() == 1


def test_numpy_buffers_are_out_of_band_aligned_and_read_only():
    a = np.arange(1000, dtype=np.float64)
    b = np.ones((3, 5), dtype=np.int32)
    parts, total, _ = serialization.serialize({"a": a, "b": b})
    blob = bytearray(b"".join(bytes(p) for p in parts))
    assert len(blob) == total
    # The arrays' bytes lie in the blob as they are (not pickled in-band).
    assert a.tobytes() in blob and b.tobytes() in blob
    view = memoryview(bytes(blob))  # read-only, like a store buffer
    got = serialization.deserialize(view)
    assert np.array_equal(got["a"], a) and np.array_equal(got["b"], b)
    assert not got["a"].flags.writeable
    # Each buffer starts 64-byte aligned relative to the object's start.
    base = np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]
    assert (got["a"].__array_interface__["data"][0] - base) % 64 == 0


def test_garbage_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="not a Shoal Python value"):
        serialization.deserialize(b"definitely not")
    with pytest.raises(ValueError):
        serialization.deserialize(b"x" * 100)


def test_unpicklable_values_raise_type_error():
    import threading
    with pytest.raises(TypeError, match="could not serialize"):
        serialization.serialize(threading.Lock())


def test_task_error_is_instance_of_cause_and_pickles():
    try:
        raise KeyError("missing")
    except KeyError as cause:
        err = exceptions.TaskError("f", "Traceback...\nKeyError: 'missing'", cause, 123, "ab" * 14)
    derived = err.as_instanceof_cause()
    assert isinstance(derived, exceptions.TaskError) and isinstance(derived, KeyError)
    assert "f() failed (pid=123" in str(derived)
    again = pickle.loads(pickle.dumps(derived))
    assert isinstance(again, KeyError) and isinstance(again, exceptions.RayTaskError)
    assert again.traceback_str == err.traceback_str
    assert issubclass(exceptions.GetTimeoutError, TimeoutError)
    assert exceptions.RayActorError is exceptions.ActorDiedError


def test_option_validation():
    assert options.validate({"num_cpus": 0.5, "num_gpus": 2, "resources": {"TPU": 1}})
    for bad in [{"num_cpus": -1}, {"num_gpus": 1.5}, {"resources": {"GPU": 1}}, {"max_retries": -2},
                {"num_returns": -1}, {"scheduling_strategy": "ANYWHERE"}, {"bogus": 1}]:
        with pytest.raises((ValueError, TypeError)):
            options.validate(bad)
    with pytest.raises(TypeError):
        options.validate({"num_cpus": "1"})
    core = options.core_options({"num_cpus": 0, "num_gpus": 0.25,
                                 "scheduling_strategy": NodeAffinitySchedulingStrategy("ab" * 14, soft=True)})
    assert core["resources"] == {"GPU": 0.25}
    assert json.loads(core["strategy"]) == {"kind": "NODE_AFFINITY", "node_id": "ab" * 14, "soft": True}
    assert json.loads(options.core_options({"scheduling_strategy": "SPREAD"})["strategy"]) == {"kind": "SPREAD"}
    assert "strategy" not in options.core_options({"scheduling_strategy": "DEFAULT"})
    assert "strategy" not in options.core_options({"scheduling_strategy": None})
    assert options.core_options({})["resources"] == {"CPU": 1.0}


def test_application_metrics_validate_as_ray_and_refuse_what_ray_drops():
    from shoal.util.metrics import Counter, Gauge, Histogram
    with pytest.raises(ValueError, match="Empty name"):
        Counter("")
    with pytest.raises(ValueError, match="Invalid metric name"):
        Counter("9lives")  # Ray warns and drops the metric; Shoal refuses it
    with pytest.raises(ValueError, match="shoal_"):
        Gauge("shoal_tasks")
    with pytest.raises(TypeError, match="tuple"):
        Counter("c_list_keys", tag_keys=["a"])
    with pytest.raises(ValueError, match="added by Shoal"):
        Counter("c_reserved", tag_keys=("WorkerId",))
    with pytest.raises(ValueError, match="boundaries"):
        Histogram("h_none")
    with pytest.raises(ValueError, match="positive"):
        Histogram("h_neg", boundaries=[-1, 2])
    with pytest.raises(ValueError, match="increasing"):
        Histogram("h_order", boundaries=[2, 1])
    c = Counter("c_ok", description="d", tag_keys=("route",))
    with pytest.raises(ValueError, match=">0"):
        c.inc(0, tags={"route": "/"})
    with pytest.raises(ValueError, match="Missing value for tag key"):
        c.inc()
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        c.inc(tags={"route": "/", "other": "x"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        c.inc(tags={"route": 5})
    assert c.set_default_tags({"route": "/"}) is c
    c.inc()
    c.inc(2.5)
    g = Gauge("g_ok")
    g.set(3)
    g.set(None)  # a no-op, as in Ray
    h = Histogram("h_ok", boundaries=[1, 10])
    for v in (0.5, 1, 5, 50):
        h.observe(v)
    assert c._snapshot()["series"] == [{"tags": {"route": "/"}, "value": 3.5}]
    assert g._snapshot()["series"] == [{"tags": {}, "value": 3.0}]
    assert h._snapshot()["series"] == [{"tags": {}, "buckets": [2, 1, 1], "sum": 56.5, "count": 4}]
    assert pickle.loads(pickle.dumps(h)).info["boundaries"] == [1.0, 10.0]


def test_call_checks_agree_with_inspect_for_every_shape_of_call():
    # The checker answers plain positional calls without binding; whatever it answers must be
    # what inspect.Signature.bind says, for every kind of parameter list and call.
    from shoal._private import signature

    def plain(a, b, c=1): pass
    def no_params(): pass
    def star(a, *rest): pass
    def kw_only(a, *, k): pass
    def kw_default(a, *, k=2): pass
    def pos_only(a, /, b=0): pass
    def var_kw(a, **extra): pass

    calls = [((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {}), ((1, 2, 3, 4), {}),
             ((1,), {"b": 2}), ((), {"a": 1, "b": 2}), ((1,), {"k": 3}), ((1,), {"zz": 0}),
             ((1, 2), {"a": 1})]
    for fn in (plain, no_params, star, kw_only, kw_default, pos_only, var_kw):
        checked = signature.rebuild(signature.describe(fn))
        for args, kwargs in calls:
            try:
                inspect_sig = signature.inspect.signature(fn)
                inspect_sig.bind(*args, **kwargs)
                expected = None
            except TypeError as e:
                expected = str(e)
            try:
                signature.check(checked, args, kwargs, "f.remote()")
                got = None
            except TypeError as e:
                got = str(e)
            assert (got is None) == (expected is None), (fn.__name__, args, kwargs, got, expected)
            if expected is not None:
                assert got == f"f.remote(): {expected}"
