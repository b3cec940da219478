"""Scheduling strategies for `scheduling_strategy=` (Ray's names).

Every strategy, whether named by a string ("DEFAULT", "SPREAD") or given as an object, has one
form below this module: the proto message shoal.rpc.SchedulingStrategy (proto/shoal/common.proto),
written as JSON, which the core converts once and the scheduler reads. Adding a strategy takes a
class here whose `_proto()` answers its fields, its kind in the proto, and its rule in the
scheduler (src/scheduler); nothing in between changes.
"""
import json

# Strategies named by a string, as their proto fields.
NAMED = {"DEFAULT": {"kind": "DEFAULT"}, "SPREAD": {"kind": "SPREAD"}}


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` (hex); with `soft=True`, elsewhere when that node cannot.

    A hard affinity to a node that is dead, has scheduling disabled or can never hold the
    request fails it (TaskUnschedulableError, ActorUnschedulableError); to a node that is not
    known yet, it waits."""

    def __init__(self, node_id, soft=False):
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a node id string (hex), got {node_id!r}")
        self.node_id = node_id
        self.soft = bool(soft)

    def _proto(self):
        return {"kind": "NODE_AFFINITY", "node_id": self.node_id, "soft": self.soft}

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class PlacementGroupSchedulingStrategy:
    """Run in a placement group's bundle (Ray's name and arguments).

    `placement_group_bundle_index` -1 means any bundle of the group; with
    `placement_group_capture_child_tasks`, the tasks and actors this one submits without a
    strategy of their own run in the group too. `placement_group=None` runs outside any group
    (and so outside a parent's captured group)."""

    def __init__(self, placement_group, placement_group_bundle_index=-1, placement_group_capture_child_tasks=None):
        from shoal.util.placement_group import PlacementGroup
        if placement_group is not None and not isinstance(placement_group, PlacementGroup):
            raise TypeError(f"placement_group must be a PlacementGroup or None, got {type(placement_group).__name__}")
        index = placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, int) or index < -1:
            raise ValueError(f"placement_group_bundle_index must be an integer >= -1, got {index!r}")
        if placement_group is not None and index >= placement_group.bundle_count:
            raise ValueError(f"placement_group_bundle_index {index} is out of range: the placement group has "
                             f"{placement_group.bundle_count} bundles")
        if placement_group is None and index != -1:
            raise ValueError("placement_group_bundle_index cannot be set without a placement_group")
        self.placement_group = placement_group
        self.placement_group_bundle_index = index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def _proto(self):
        if self.placement_group is None:
            return {"kind": "DEFAULT"}
        return {"kind": "PLACEMENT_GROUP", "placement_group_id": self.placement_group.id.hex(),
                "placement_group_bundle_index": self.placement_group_bundle_index,
                "placement_group_capture_child_tasks": bool(self.placement_group_capture_child_tasks)}

    def __repr__(self):
        return (f"PlacementGroupSchedulingStrategy(placement_group={self.placement_group!r}, "
                f"placement_group_bundle_index={self.placement_group_bundle_index}, "
                f"placement_group_capture_child_tasks={self.placement_group_capture_child_tasks})")


def validate(strategy):
    """Raises ValueError unless `strategy` is None, a name in NAMED or a strategy object."""
    if strategy is None or (isinstance(strategy, str) and strategy in NAMED) or hasattr(strategy, "_proto"):
        return strategy
    raise ValueError(f"scheduling_strategy must be one of {', '.join(repr(n) for n in NAMED)}, a "
                     f"NodeAffinitySchedulingStrategy or a PlacementGroupSchedulingStrategy, got {strategy!r}")


def to_proto_json(strategy):
    """The proto form of `strategy` as JSON, or None for the default (which needs none)."""
    validate(strategy)
    if strategy is None or strategy == "DEFAULT":
        return None
    fields = NAMED[strategy] if isinstance(strategy, str) else strategy._proto()
    return json.dumps(fields)
