"""Scheduling strategies for `scheduling_strategy=` (Ray's names).

Every strategy, whether named by a string ("DEFAULT", "SPREAD") or given as an object, has one
form below this module: the proto message shoal.rpc.SchedulingStrategy (proto/shoal/common.proto),
written as JSON, which the core converts once and the scheduler reads. Adding a strategy takes a
class here whose `_proto()` answers its fields, its kind in the proto, and its rule in the
scheduler (src/scheduler); nothing in between changes.
"""
import json
import re

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


# Ray's label syntax (Kubernetes'): a name or value is 1-63 characters of letters, digits, '-', '_'
# and '.', beginning and ending with a letter or digit; a key may have a DNS-subdomain prefix/.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*/)?{_LABEL}")
_CONDITION = re.compile(rf"!?{_LABEL}|!?in\({_LABEL}(?:, ?{_LABEL})*\)")


def validate_label_selector(selector):
    """Raises TypeError unless `selector` is a dict of str to str, and ValueError, naming the
    key, for a malformed key or condition. Conditions (Ray's): "v" (the node's label equals v),
    "!v" (absent or different), "in(v1,v2)" (one of them), "!in(v1,v2)" (absent or none of
    them); "" matches an empty label value. Every key must match."""
    if not isinstance(selector, dict):
        raise TypeError(f"label_selector must be a dict of str to str, got {type(selector).__name__}")
    for key, condition in selector.items():
        if not isinstance(key, str) or not isinstance(condition, str):
            raise TypeError(f"label_selector must map str keys to str values, got {key!r}: {condition!r}")
        if len(key) > 253 + 1 + 63 or not _KEY.fullmatch(key) or ("/" in key and len(key.rsplit("/", 1)[0]) > 253):
            raise ValueError(f"label_selector key `{key}` is invalid: a key is [prefix/]name, where the name is "
                             "1-63 characters of letters, digits, '-', '_' and '.', beginning and ending with a "
                             "letter or digit, and the prefix is such names joined by dots")
        if condition != "" and not _CONDITION.fullmatch(condition):
            raise ValueError(f"label_selector value `{condition}` of key `{key}` is invalid: a value is an "
                             "optional '!', then a label value or in(v1,v2,...); each label value is 1-63 "
                             "characters of letters, digits, '-', '_' and '.', beginning and ending with a "
                             "letter or digit")
    return selector


def to_proto_json(strategy, label_selector=None):
    """The proto form of `strategy` (with `label_selector`, a dict of str to str, on any kind) as
    JSON, or None for the default without a selector (which needs none)."""
    validate(strategy)
    if label_selector:
        validate_label_selector(label_selector)
    if (strategy is None or strategy == "DEFAULT") and not label_selector:
        return None
    if strategy is None:
        fields = {"kind": "DEFAULT"}
    else:
        fields = dict(NAMED[strategy] if isinstance(strategy, str) else strategy._proto())
    if label_selector:
        fields["label_selector"] = dict(label_selector)
    return json.dumps(fields)
