"""Seed peers over mutual TLS: only a certificate with a seed common name (supernode --seed-cn, default
dandelion-seed) registers a seed peer, whose piece digests the swarm trusts for content without a digest; a member
certificate registers plain peers only. Real processes on loopback, certificates from scripts/make_certs.sh."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.certs import Identity, identity, make_certs
from fixtures.clients import missing_binaries
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup
from tls_cluster import Node, dfget, start_dfdaemon, start_supernode

SIZE = 5 * (1 << 20) + 17
SEED_IP, PEER_IP = "127.0.0.44", "127.0.0.45"

pytestmark = pytest.mark.e2e


@dataclass
class Cluster:
    origin: OriginServer
    supernode: Node
    seed: Node
    peer: Node
    member: Identity
    base: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, module_process_group: ProcessGroup) -> Iterator[Cluster]:
    missing = missing_binaries("openssl")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    base = tmp_path_factory.mktemp("seed-tls")
    make_certs(base / "certs", f"node=127.0.0.1,{PEER_IP}", f"dandelion-seed={SEED_IP}")
    member, seed_cert = identity(base / "certs", "node"), identity(base / "certs", "dandelion-seed")
    write_random_file(base / "www" / "file.bin", SIZE, seed=44)
    origin = start_origin(module_process_group, base / "www")
    supernode = start_supernode(module_process_group, base, member, "--no-seed-peer")  # the seed is the dfdaemon below
    seed = start_dfdaemon(module_process_group, base, SEED_IP, supernode, seed_cert, ["--seed"])
    seed.process.wait_until(lambda: "seed peer taking orders" in seed.process.log(), "seed peer's order stream")
    peer = start_dfdaemon(module_process_group, base, PEER_IP, supernode, member)
    yield Cluster(origin, supernode, seed, peer, member, base)


def test_a_member_certificate_cannot_register_a_seed_peer(cluster: Cluster) -> None:
    host = scheduler_pb2.HostInfo(hostname="x", ip=PEER_IP, port=9, upload_slots=1, seed=True)
    with cluster.member.channel(cluster.supernode.target) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host), timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "dandelion-seed" in (refused.value.details() or "")
        plain = scheduler_pb2.HostInfo(hostname="x", ip=PEER_IP, port=9, upload_slots=1)
        assert stub.RegisterHost(scheduler_pb2.RegisterHostRequest(host=plain), timeout=10).host_id


def test_the_seed_certificate_seeds_content_without_a_digest(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "file.bin"
    cluster.origin.reset()
    done = dfget(cluster.origin.url("file.bin"), out, "--daemon", f"unix:{cluster.peer.socket}")
    assert done.returncode == 0, done.stderr + cluster.supernode.process.tail() + cluster.seed.process.tail()
    assert out.read_bytes() == (cluster.origin.root / "file.bin").read_bytes()
    assert cluster.origin.bytes_served("file.bin") == SIZE
    found = re.findall(r"done: (\d+) bytes, (\d+) from peers, (\d+) from origin", cluster.seed.process.log())
    assert found and found[-1] == (str(SIZE), "0", str(SIZE)), cluster.seed.process.tail()
    peer_done = re.findall(r"done: (\d+) bytes, (\d+) from peers, (\d+) from origin", cluster.peer.process.log())
    assert peer_done[-1] == (str(SIZE), str(SIZE), "0")
