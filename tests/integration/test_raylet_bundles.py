"""A raylet's BundleService (placement group bundles, raylet side) over real gRPC.

Prepare, commit and cancel against a real raylet, with and without the cluster token; the node's
resources (GetNodeStats) follow, and a commit reaches the GCS's report at once.
"""
import grpc
import pytest

from conftest import wait_until


def bundle(common_pb2, pg, index, resources):
    return common_pb2.Bundle(placement_group_id=pg, bundle_index=index,
                             resources=common_pb2.ResourceMap(amounts={k: int(v * 10000) for k, v in resources.items()}))


def test_bundles_prepare_commit_cancel_over_grpc(cluster, gcs_stubs):
    gcs_pb2, gcs_pb2_grpc, common_pb2 = gcs_stubs
    import shoalpb.raylet_pb2 as raylet_pb2
    import shoalpb.raylet_pb2_grpc as raylet_pb2_grpc
    cluster.start_head("--num-cpus", 4, "--num-gpus", 2)
    node = wait_until(lambda: cluster.alive_nodes(), 30, what="the head node")[0]
    address = f"{node['address']}:{node['raylet_port']}"
    bundles = raylet_pb2_grpc.BundleServiceStub(cluster.channel(address))
    leases = raylet_pb2_grpc.LeaseServiceStub(cluster.channel(address))
    pg = bytes(range(18))
    hexid = pg.hex()
    b0 = bundle(common_pb2, pg, 0, {"CPU": 1, "GPU": 0.5})

    def available():
        return dict(leases.GetNodeStats(raylet_pb2.GetNodeStatsRequest(), timeout=10).available.amounts)

    before = available()

    # No token: refused, nothing reserved.
    open_bundles = raylet_pb2_grpc.BundleServiceStub(cluster.channel(address, token=None))
    with pytest.raises(grpc.RpcError) as info:
        open_bundles.PrepareBundles(raylet_pb2.PrepareBundlesRequest(bundles=[b0]), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert available() == before

    # Too big: RESOURCE_EXHAUSTED, all or nothing.
    with pytest.raises(grpc.RpcError) as info:
        bundles.PrepareBundles(raylet_pb2.PrepareBundlesRequest(
            bundles=[b0, bundle(common_pb2, pg, 1, {"CPU": 8})]), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "bundle 1 of placement group " + hexid in info.value.details()
    assert available() == before

    bundles.PrepareBundles(raylet_pb2.PrepareBundlesRequest(bundles=[b0]), timeout=10)
    bundles.CommitBundles(raylet_pb2.CommitBundlesRequest(bundles=[b0]), timeout=10)
    now = available()
    assert now["CPU"] == before["CPU"] - 10000
    assert now[f"CPU_group_0_{hexid}"] == 10000 and now[f"CPU_group_{hexid}"] == 10000
    assert now[f"GPU_group_0_{hexid}"] == 5000 and now[f"bundle_group_{hexid}"] == 1000 * 10000

    # The GCS hears of it at once (the report carries the new total and what is free); the
    # report period is 1 s, so well under it shows the commit's own report.
    gcs = gcs_pb2_grpc.NodeInfoServiceStub(cluster.channel())

    def reported():
        nodes = gcs.GetAllNodeInfo(gcs_pb2.GetAllNodeInfoRequest(alive_only=True), timeout=10).nodes
        me = [n for n in nodes if n.node_id == node["node_id"]][0]
        return me.resources_available.amounts.get(f"CPU_group_0_{hexid}") == 10000
    wait_until(reported, 10, interval=0.02, what="the GCS to see the bundle")

    bundles.CancelBundles(raylet_pb2.CancelBundlesRequest(bundles=[b0], group_removed=True), timeout=10)
    assert available() == before
    released = bundles.ReleaseUnusedBundles(raylet_pb2.ReleaseUnusedBundlesRequest(), timeout=10)
    assert released.released == 0
