"""Node labels used for scheduling (Ray's `label_selector`): tasks and actors run only on nodes
whose labels match; a selector no node matches waits as infeasible demand until a matching node
joins; malformed selectors are refused, naming the key.

A head ({"zone": "head"}) and two workers ({"zone": "a"}, {"zone": "b"}); this pytest process is
the driver.
"""
import os
import shutil
import sys
import tempfile

import pytest

from conftest import PYTHON_DIR, Cluster, assert_resources_back, wait_until

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal as ray  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ray.remote(num_cpus=1)
def where():
    return ray.get_runtime_context().get_node_id()


@ray.remote(num_cpus=1)
class Where:
    def node(self):
        return ray.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def zones():
    root = tempfile.mkdtemp(prefix="shoal-lb-", dir="/tmp")
    c = Cluster(root)
    try:
        c.start_head("--num-cpus", 2, "--num-gpus", 0, "--labels", '{"zone": "head"}')
        c.start_worker("--num-cpus", 2, "--num-gpus", 0, "--labels", '{"zone": "a"}')
        c.start_worker("--num-cpus", 2, "--num-gpus", 0, "--labels", '{"zone": "b", "disk": "ssd"}')
        wait_until(lambda: len(c.alive_nodes()) == 3, 20, what="3 alive nodes")
        os.environ["SHOAL_AUTH_TOKEN"] = c.auth_token()
        ray.init(address=c.address)
        # The raylets learn the other nodes from the GCS once a second.
        wait_until(lambda: len([n for n in ray.nodes() if n["Alive"]]) == 3, 20, what="3 nodes")
        yield c
        ray.shutdown()
    finally:
        c.teardown()
        shutil.rmtree(root, ignore_errors=True)


def node_of(zone):
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Labels"].get("zone") == zone]
    assert len(nodes) == 1, nodes
    return nodes[0]


def nodes_of(selector, count=6):
    return set(ray.get([where.options(label_selector=selector, max_calls=1).remote() for _ in range(count)],
                       timeout=60))


def test_tasks_run_only_on_matching_nodes(zones):
    a, b, head = node_of("a"), node_of("b"), node_of("head")
    assert nodes_of({"zone": "b"}) == {b}
    assert nodes_of({"zone": "in(a)"}) == {a}
    assert nodes_of({"zone": "in(a, b)"}) <= {a, b}
    assert nodes_of({"zone": "!b"}) <= {a, head}
    assert nodes_of({"zone": "!in(a,head)"}) == {b}
    assert nodes_of({"disk": "ssd"}) == {b}          # the key only b has
    assert nodes_of({"disk": "!ssd"}) <= {a, head}   # nodes without the key pass a negation
    assert nodes_of({"zone": "b", "disk": "ssd"}) == {b}
    # Combined with a strategy.
    assert {ray.get(where.options(label_selector={"zone": "a"}, scheduling_strategy="SPREAD").remote())
            for _ in range(3)} == {a}
    from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    soft_elsewhere = NodeAffinitySchedulingStrategy(head, soft=True)
    assert ray.get(where.options(label_selector={"zone": "b"}, scheduling_strategy=soft_elsewhere).remote(),
                   timeout=60) == b
    hard_elsewhere = NodeAffinitySchedulingStrategy(head, soft=False)
    with pytest.raises(ray.exceptions.TaskUnschedulableError):
        ray.get(where.options(label_selector={"zone": "b"}, scheduling_strategy=hard_elsewhere).remote(),
                timeout=60)
    # A decorator option, too.
    pinned = ray.remote(num_cpus=1, label_selector={"zone": "a"})(lambda: ray.get_runtime_context().get_node_id())
    assert ray.get(pinned.remote(), timeout=60) == a


def test_actors_land_on_matching_nodes(zones):
    actors = {zone: Where.options(label_selector={"zone": zone}).remote() for zone in ("a", "b")}
    for zone, actor in actors.items():
        assert ray.get(actor.node.remote(), timeout=60) == node_of(zone)
    not_a = Where.options(label_selector={"zone": "!in(a,head)"}).remote()
    assert ray.get(not_a.node.remote(), timeout=60) == node_of("b")
    for actor in [*actors.values(), not_a]:
        ray.kill(actor)


def test_malformed_selectors_raise_value_error_naming_the_key(zones):
    for selector, key in [({"zone": "in()"}, "zone"), ({"zone": "!!a"}, "zone"), ({"-bad": "a"}, "-bad"),
                          ({"zone": "a b"}, "zone"), ({"zone": "in(a,"}, "zone")]:
        with pytest.raises(ValueError, match=f"`{key}`"):
            where.options(label_selector=selector).remote()
        with pytest.raises(ValueError, match=f"`{key}`"):
            Where.options(label_selector=selector).remote()
    with pytest.raises(TypeError):
        where.options(label_selector={"zone": 1}).remote()
    with pytest.raises(TypeError):
        where.options(label_selector="zone=a").remote()


def test_unmatched_selector_waits_as_demand_until_a_matching_node_joins(zones):
    ref = where.options(label_selector={"zone": "c"}).remote()
    actor = Where.options(label_selector={"zone": "c"}).remote()
    ready, _ = ray.wait([ref], timeout=3)
    assert not ready

    def infeasible_demand():
        demands = zones.status()["demands"]
        return any(d["infeasible"] and d["shape"].get("CPU") == 1 for d in demands)

    wait_until(infeasible_demand, 30, what="an infeasible {CPU: 1} demand in shoal status")
    assert "infeasible" in zones.shoal("status", "--address", zones.address).stdout

    zones.start_worker("--num-cpus", 2, "--num-gpus", 0, "--labels", '{"zone": "c"}')
    wait_until(lambda: len(zones.alive_nodes()) == 4, 20, what="4 alive nodes")
    c = node_of("c")
    assert ray.get(ref, timeout=60) == c
    assert ray.get(actor.node.remote(), timeout=60) == c
    ray.kill(actor)


def test_label_selector_through_the_cpp_api(zones):
    from conftest import BIN, run_driver
    driver = os.path.join(BIN, "shoal_task_driver")
    out = run_driver(driver, zones, "labels", "--node", "b", timeout=120)
    assert out["nodes"] == [node_of("b")], out
    assert "`zone`" in out["bad_selector"], out


def test_every_process_stays_alive_and_resources_come_back(zones):
    from conftest import process_alive
    for name, pids in zones.recorded_pids().items():
        for pid in pids:
            assert process_alive(pid), f"{name} {pid} died"
    assert_resources_back(zones)
