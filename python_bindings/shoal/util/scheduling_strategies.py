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


def validate(strategy):
    """Raises ValueError unless `strategy` is None, a name in NAMED or a strategy object."""
    if strategy is None or (isinstance(strategy, str) and strategy in NAMED) or hasattr(strategy, "_proto"):
        return strategy
    raise ValueError(f"scheduling_strategy must be one of {', '.join(repr(n) for n in NAMED)} or a "
                     f"NodeAffinitySchedulingStrategy, got {strategy!r}")


def to_proto_json(strategy):
    """The proto form of `strategy` as JSON, or None for the default (which needs none)."""
    validate(strategy)
    if strategy is None or strategy == "DEFAULT":
        return None
    fields = NAMED[strategy] if isinstance(strategy, str) else strategy._proto()
    return json.dumps(fields)
