"""Scheduling strategies for `scheduling_strategy=` (Ray's names)."""


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` (hex); with `soft=True`, elsewhere when that node cannot."""

    def __init__(self, node_id, soft=False):
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a node id string (hex), got {node_id!r}")
        self.node_id = node_id
        self.soft = bool(soft)

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"
