"""Placement groups with Ray's names: reserve bundles of resources together (gang scheduling)
and run tasks and actors inside them.

    pg = shoal.util.placement_group([{"CPU": 1, "GPU": 0.5}] * 2, strategy="STRICT_PACK")
    shoal.get(pg.ready())
    task.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    shoal.util.remove_placement_group(pg)

The GCS reserves every bundle or none (two-phase, src/gcs/placement_group_manager.h); tasks in
a bundle use only its resources (src/common/bundle_resources.h).
"""
import numbers

from shoal._private import runtime
from shoal._private.runtime import core_call

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    """A placement group's id (Ray's PlacementGroupID): 18 bytes, shown as hex."""

    def __init__(self, hex_id):
        self._hex = hex_id

    def hex(self):
        return self._hex

    def binary(self):
        return bytes.fromhex(self._hex)

    def is_nil(self):
        return not self._hex or set(self._hex) == {"f"}

    def __eq__(self, other):
        return isinstance(other, PlacementGroupID) and other._hex == self._hex

    def __hash__(self):
        return hash(self._hex)

    def __repr__(self):
        return f"PlacementGroupID({self._hex})"


class PlacementGroup:
    """A handle to a placement group. It pickles (pass it to tasks and actors)."""

    def __init__(self, id, bundle_cache=None):
        self.id = id if isinstance(id, PlacementGroupID) else PlacementGroupID(id)
        self.bundle_cache = bundle_cache

    @staticmethod
    def empty():
        return PlacementGroup(PlacementGroupID(""), [])

    @property
    def is_empty(self):
        return self.id.is_nil()

    def _fill_bundle_cache(self):
        if self.bundle_cache is None:
            info = _table_entry(self.id.hex())
            if info is None:
                raise ValueError(f"placement group {self.id.hex()} does not exist")
            self.bundle_cache = [info["bundles"][i] for i in sorted(info["bundles"])]
        return self.bundle_cache

    @property
    def bundle_specs(self):
        """The bundles as dicts of resource name to amount, in index order."""
        return [dict(b) for b in self._fill_bundle_cache()]

    @property
    def bundle_count(self):
        return len(self._fill_bundle_cache())

    def ready(self):
        """An ObjectRef that is ready (holding this group) once the group is created: a task
        that runs in it, as in Ray."""
        from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        self._fill_bundle_cache()
        return _bundle_reservation_check().options(
            num_cpus=0, max_retries=-1,
            scheduling_strategy=PlacementGroupSchedulingStrategy(self)).remote(self)

    def wait(self, timeout_seconds=30):
        """True once the group is created; False when `timeout_seconds` pass first (None: no
        limit). Raises ValueError if the group was removed before it was created."""
        if timeout_seconds is not None:
            if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, numbers.Real) or timeout_seconds < 0:
                raise ValueError(f"timeout_seconds must be a number >= 0 or None, got {timeout_seconds!r}")
        core = runtime.connect()
        try:
            with core_call:
                return core.wait_placement_group(self.id.hex(), -1.0 if timeout_seconds is None
                                                 else float(timeout_seconds))
        except Exception as e:  # a removed group answers FAILED_PRECONDITION
            if "removed" in str(e):
                raise ValueError(f"placement group {self.id.hex()} was removed before it was created") from None
            raise

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"PlacementGroup(id={self.id.hex()})"

    def __reduce__(self):
        return (PlacementGroup, (self.id.hex(), self.bundle_cache))


_check_function = None


def _bundle_reservation_check():
    global _check_function
    if _check_function is None:
        import shoal
        _check_function = shoal.remote(num_cpus=0)(_reservation_check)
    return _check_function


def _reservation_check(placement_group):
    return placement_group


def _table_entry(hex_id):
    core = runtime.connect()
    with core_call:
        return core.get_placement_group(hex_id)


def _validate_bundles(bundles):
    if not isinstance(bundles, (list, tuple)):
        raise ValueError(f"The type of bundles must be list, got {type(bundles).__name__}")
    if len(bundles) == 0:
        raise ValueError("The placement group `bundles` argument cannot contain an empty list")
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict):
            raise ValueError(f"Bundle {i} must be a dict of resource name to amount, got {type(bundle).__name__}")
        clean = {}
        for name, amount in bundle.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Bundle {i}: resource names must be non-empty strings, got {name!r}")
            if name == "bundle":
                raise ValueError(f"Bundle {i}: 'bundle' is a resource name Shoal reserves for placement groups")
            if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
                raise ValueError(f"Bundle {i}: the amount of {name!r} must be a number, got {amount!r}")
            if amount < 0:
                raise ValueError(f"Bundle {i}: the amount of {name!r} must be >= 0, got {amount}")
            if amount > 0:
                clean[name] = float(amount)
        if not clean:
            raise ValueError(f"Bundles cannot be an empty dictionary or resources with only 0 values. "
                             f"Bundles: {list(bundles)}")
        if clean.get("GPU", 0) > 1 and clean["GPU"] != int(clean["GPU"]):
            raise ValueError(f"Bundle {i}: above 1 a GPU amount must be whole, got {clean['GPU']}")
        out.append(clean)
    return out


def placement_group(bundles, strategy="PACK", name="", lifetime=None, _max_cpu_fraction_per_node=None,
                    _soft_target_node_id=None, bundle_label_selector=None):
    """Reserves `bundles` (a list of {resource: amount}) together with `strategy`; answers at
    once with a handle (wait with `ready()` or `wait()`)."""
    clean = _validate_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}. Supported strategies are: "
                         f"{', '.join(STRATEGIES)}.")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` argument must be either `None` or 'detached', got {lifetime!r}")
    if _max_cpu_fraction_per_node not in (None, 1, 1.0):
        raise ValueError("_max_cpu_fraction_per_node is not supported by Shoal")
    if _soft_target_node_id is not None:
        raise ValueError("_soft_target_node_id is not supported by Shoal")
    selectors = []
    if bundle_label_selector is not None:
        if not isinstance(bundle_label_selector, (list, tuple)) or len(bundle_label_selector) != len(clean):
            raise ValueError(f"bundle_label_selector must be a list with one dict per bundle ({len(clean)}), got "
                             f"{bundle_label_selector!r}")
        for i, selector in enumerate(bundle_label_selector):
            if not isinstance(selector, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in selector.items()):
                raise ValueError(f"bundle_label_selector[{i}] must be a dict of str to str, got {selector!r}")
            selectors.append(dict(selector))
    core = runtime.connect()
    with core_call:
        hex_id = core.create_placement_group(clean, strategy, name, runtime.state.namespace or "default",
                                             lifetime == "detached", selectors)
    return PlacementGroup(hex_id, clean)


def remove_placement_group(placement_group):
    """Removes the group: every bundle is returned and its actors and tasks are killed."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group takes a PlacementGroup, got {type(placement_group).__name__}")
    core = runtime.connect()
    with core_call:
        core.remove_placement_group(placement_group.id.hex())


def get_placement_group(placement_group_name):
    """The live group named `placement_group_name` in this job's namespace."""
    if not isinstance(placement_group_name, str) or not placement_group_name:
        raise ValueError("get_placement_group needs a placement group name")
    core = runtime.connect()
    with core_call:
        info = core.get_named_placement_group(placement_group_name, runtime.state.namespace or "default")
    if info is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return PlacementGroup(info["placement_group_id"], [info["bundles"][i] for i in sorted(info["bundles"])])


def placement_group_table(placement_group=None):
    """Ray's table: one group's entry, or {id hex: entry} for every group."""
    core = runtime.connect()
    if placement_group is not None:
        entry = _table_entry(placement_group.id.hex())
        return entry if entry is not None else {}
    with core_call:
        return {g["placement_group_id"]: g for g in core.list_placement_groups()}


def get_current_placement_group():
    """The group the calling task or actor runs in, or None (always None in a driver)."""
    if not runtime.is_initialized() or runtime.state.mode != "worker":
        return None
    hex_id = runtime.current_task().get("placement_group_id")
    return PlacementGroup(hex_id) if hex_id else None


__all__ = ["PlacementGroup", "PlacementGroupID", "placement_group", "remove_placement_group",
           "get_placement_group", "placement_group_table", "get_current_placement_group"]
