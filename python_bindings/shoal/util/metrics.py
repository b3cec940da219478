"""Application metrics, as Ray's `ray.util.metrics`: Counter, Gauge and Histogram that any driver,
task or actor records, served by the dashboard's /metrics (Prometheus text) beside Shoal's own.

Each process keeps its metrics' current values and sends a snapshot to the GCS every
REPORT_INTERVAL_S seconds (key-value namespace "app_metrics", one key per process, also at
shutdown). The dashboard merges the snapshots of the last STALE_AFTER_S seconds: every series is
labelled with the tags given plus WorkerId, NodeId and JobId of the process that recorded it
(sum over WorkerId for a cluster-wide figure). A Counter is exported as `<name>_total`, Ray's
counter name since 2.10. Names are exported as given.

Unlike Ray, a name Prometheus cannot take, a tag key that was not declared, a name in Shoal's own
`shoal_` namespace or a label Shoal adds is refused with an error, not dropped silently.
"""
import json
import re
import threading
import time

REPORT_INTERVAL_S = 2.0
KV_NAMESPACE = "app_metrics"
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_TAG_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED_TAGS = ("WorkerId", "NodeId", "JobId")


class Metric:
    """What Counter, Gauge and Histogram share: name, description, tag keys, default tags."""

    _kind = None

    def __init__(self, name, description="", tag_keys=None):
        if not isinstance(name, str) or len(name) == 0:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        if not _NAME_RE.match(name):
            raise ValueError(f"Invalid metric name: {name!r}. Metric names can only contain letters, numbers, _ "
                             "and :, and cannot start with a number.")
        if name.startswith("shoal_"):
            raise ValueError(f"Invalid metric name: {name!r}: names starting with 'shoal_' are Shoal's own metrics.")
        if not isinstance(description, str):
            raise TypeError(f"description must be a str, got {type(description)}")
        tag_keys = tuple() if tag_keys is None else tag_keys
        if not isinstance(tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(tag_keys)}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
            if not _TAG_RE.match(key) or key.startswith("__"):
                raise ValueError(f"Invalid tag key {key!r}: letters, numbers and _, not starting with a number "
                                 "or '__'.")
            if key in _RESERVED_TAGS:
                raise ValueError(f"Tag key {key!r} is added by Shoal to every series; choose another name.")
        self._name = name
        self._description = description
        self._tag_keys = tag_keys
        self._default_tags = {}
        self._lock = threading.Lock()
        self._series = {}  # tuple of tag values (in tag_keys order) -> state
        _registry.add(self)

    def set_default_tags(self, default_tags):
        """Tags used when a record does not give them; answers the metric itself."""
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = dict(default_tags)
        return self

    @property
    def info(self):
        return {"name": self._name, "description": self._description, "tag_keys": self._tag_keys,
                "default_tags": self._default_tags}

    def _key(self, tags):
        final = dict(self._default_tags)
        if tags:
            for key, value in tags.items():
                if key not in self._tag_keys:
                    raise ValueError(f"Unrecognized tag key {key} (the metric's tag keys: {self._tag_keys}).")
                if not isinstance(value, str):
                    raise TypeError(f"Tag values must be str, got {type(value)}.")
            final.update(tags)
        missing = [k for k in self._tag_keys if k not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return tuple(final[k] for k in self._tag_keys)

    @staticmethod
    def _check_value(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"value must be int or float, got {type(value)}.")

    def _snapshot(self):
        with self._lock:
            series = [{"tags": dict(zip(self._tag_keys, key)), **self._export(state)}
                      for key, state in self._series.items()]
        return {"name": self._name, "type": self._kind, "help": self._description, "series": series}

    def __reduce__(self):
        return (self.__class__, (self._name, self._description, self._tag_keys))


class Counter(Metric):
    """A total that only goes up (Prometheus counter, exported as `<name>_total`)."""

    _kind = "counter"

    def inc(self, value=1.0, tags=None):
        self._check_value(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        key = self._key(tags)
        with self._lock:
            self._series[key] = self._series.get(key, 0.0) + value

    @staticmethod
    def _export(state):
        return {"value": state}


class Gauge(Metric):
    """The last value set (Prometheus gauge)."""

    _kind = "gauge"

    def set(self, value, tags=None):
        if value is None:
            return
        self._check_value(value)
        key = self._key(tags)
        with self._lock:
            self._series[key] = float(value)

    @staticmethod
    def _export(state):
        return {"value": state}


class Histogram(Metric):
    """Counts of observed values in buckets (Prometheus histogram, cumulative `le` buckets)."""

    _kind = "histogram"

    def __init__(self, name, description="", boundaries=None, tag_keys=None):
        if boundaries is None or len(boundaries) == 0:
            raise ValueError("boundaries argument should be provided when using the Histogram class. e.g., "
                             'Histogram("name", boundaries=[1.0, 2.0])')
        for i, boundary in enumerate(boundaries):
            if isinstance(boundary, bool) or not isinstance(boundary, (int, float)) or boundary <= 0:
                raise ValueError(f"Invalid `boundaries` argument at index {i}, {boundaries}. Use positive values "
                                 "for the arguments.")
        if list(boundaries) != sorted(set(boundaries)):
            raise ValueError(f"boundaries must be strictly increasing, got {boundaries}")
        self.boundaries = [float(b) for b in boundaries]
        super().__init__(name, description, tag_keys)

    def observe(self, value, tags=None):
        self._check_value(value)
        key = self._key(tags)
        with self._lock:
            state = self._series.get(key)
            if state is None:
                state = self._series[key] = [[0] * (len(self.boundaries) + 1), 0.0, 0]
            index = len(self.boundaries)
            for i, bound in enumerate(self.boundaries):
                if value <= bound:
                    index = i
                    break
            state[0][index] += 1
            state[1] += value
            state[2] += 1

    def _export(self, state):
        return {"buckets": list(state[0]), "sum": state[1], "count": state[2]}

    def _snapshot(self):
        out = super()._snapshot()
        out["boundaries"] = self.boundaries
        return out

    @property
    def info(self):
        info = super().info
        info["boundaries"] = self.boundaries
        return info

    def __reduce__(self):
        return (Histogram, (self._name, self._description, self.boundaries, self._tag_keys))


class _Registry:
    """This process's metrics and the thread that reports them to the GCS."""

    def __init__(self):
        self._lock = threading.Lock()
        self._metrics = []
        self._reporter = None

    def add(self, metric):
        with self._lock:
            self._metrics.append(metric)
            if self._reporter is None:
                self._reporter = threading.Thread(target=self._report_forever, name="shoal-metrics", daemon=True)
                self._reporter.start()

    def snapshot(self):
        with self._lock:
            metrics = list(self._metrics)
        return [m._snapshot() for m in metrics]

    def report(self, core=None):
        """Sends this process's snapshot to the GCS (a no-op when not connected)."""
        from shoal._private import runtime
        core = core or runtime.state.core
        if core is None:
            return
        try:
            context = runtime.connected_identity(core)
        except Exception:  # noqa: BLE001 - shutting down
            return
        body = json.dumps({"time": time.time(), "labels": context, "metrics": self.snapshot()})
        try:
            core.kv_put(KV_NAMESPACE, context["WorkerId"], body.encode(), True)
        except Exception:  # noqa: BLE001 - the GCS may be restarting; the next report catches up
            pass

    def _report_forever(self):
        from shoal._private import runtime
        while True:
            time.sleep(REPORT_INTERVAL_S)
            if runtime.state.core is not None:
                self.report()


_registry = _Registry()


def _report_before_shutdown():
    from shoal._private import runtime
    core = runtime.last_core()
    if core is not None and _registry.snapshot():
        _registry.report(core)


def _install_hook():
    from shoal._private import runtime
    if _report_before_shutdown not in runtime.before_core_shutdown:
        runtime.before_core_shutdown.append(_report_before_shutdown)


_install_hook()

__all__ = ["Counter", "Gauge", "Histogram"]
