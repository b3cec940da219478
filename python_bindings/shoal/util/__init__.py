"""Utilities in the shape of Ray's `ray.util`: ActorPool, get_node_ip_address, scheduling
strategies; the actor-backed queue is `shoal.util.queue` (imported on its own, as in Ray)."""
from shoal.util import scheduling_strategies  # noqa: F401
from shoal.util.actor_pool import ActorPool
from shoal.util.placement_group import (PlacementGroup, get_current_placement_group, get_placement_group,
                                        placement_group, placement_group_table, remove_placement_group)


def list_named_actors(all_namespaces=False):
    """Ray's ray.util.list_named_actors: the names of live named actors in this job's
    namespace, or [{"name", "namespace"}, ...] for every namespace."""
    from shoal.util.state import list_named_actors as _list_named_actors
    return _list_named_actors(all_namespaces)


def get_node_ip_address() -> str:
    """The IP address of the node this process runs on: in a driver or worker, the address its
    node's raylet listens on (as in shoal.nodes()'s NodeManagerAddress); in a process not
    connected to a cluster, 127.0.0.1, the address `shoal start` gives a node unless told
    --node-ip-address. Never starts a cluster."""
    from shoal._private import runtime
    if not runtime.is_initialized():
        return "127.0.0.1"
    return runtime.local_node_ip()


__all__ = ["ActorPool", "get_node_ip_address", "list_named_actors", "scheduling_strategies", "PlacementGroup", "placement_group",
           "remove_placement_group", "get_placement_group", "placement_group_table", "get_current_placement_group"]
