"""Mutual TLS between real processes on loopback: a supernode and two dfdaemons with certificates from
scripts/make_certs.sh. Members download with dfget and an admin certificate inspects with grpcurl; a host with no
certificate, or with one from another CA, cannot register, download or inspect."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.certs import Identity, identity, make_certs
from fixtures.clients import missing_binaries
from fixtures.origin import OriginServer, sha256_file, start_origin, write_random_file
from fixtures.processes import ProcessGroup
from tls_cluster import Node, dfget, dfget_cli, grpcurl, start_dfdaemon, start_supernode

MiB = 1 << 20
SIZE = 6 * MiB
PEER_IPS = ("127.0.0.41", "127.0.0.42")
OUTSIDER_IP = "127.0.0.43"
NODE_SANS = "node=127.0.0.1," + ",".join((*PEER_IPS, OUTSIDER_IP))
SCHEDULER = "dandelion.scheduler.v1.SchedulerService"

pytestmark = pytest.mark.e2e


@dataclass
class Cluster:
    """The TLS cluster, its origin, and the identities the tests use."""

    base: Path
    group: ProcessGroup
    origin: OriginServer
    supernode: Node
    peers: list[Node]
    member: Identity  # the certificate every node runs with: a member, not an admin
    admin: Identity
    rogue: Identity  # same names and addresses, another CA
    rogue_admin: Identity
    url: str
    digest: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, module_process_group: ProcessGroup) -> Iterator[Cluster]:
    missing = missing_binaries("openssl", "grpcurl")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    base = tmp_path_factory.mktemp("tls")
    make_certs(base / "certs", NODE_SANS, "dandelion-admin")
    make_certs(base / "rogue", NODE_SANS, "dandelion-admin")
    member, admin = identity(base / "certs", "node"), identity(base / "certs", "dandelion-admin")
    www = base / "www"
    digest = "sha256:" + write_random_file(www / "blob.bin", SIZE, seed=14)
    origin = start_origin(module_process_group, www)
    supernode = start_supernode(module_process_group, base, member)
    peers = [start_dfdaemon(module_process_group, base, ip, supernode, member) for ip in PEER_IPS]
    yield Cluster(
        base=base,
        group=module_process_group,
        origin=origin,
        supernode=supernode,
        peers=peers,
        member=member,
        admin=admin,
        rogue=identity(base / "rogue", "node"),
        rogue_admin=identity(base / "rogue", "dandelion-admin"),
        url=origin.url("blob.bin"),
        digest=digest,
    )


def downloaded(cluster: Cluster) -> str:
    """The task id of the blob, downloaded by both members (once per module)."""
    for peer in cluster.peers:
        out = cluster.base / f"out-{peer.ip}"
        if not out.exists():
            done = dfget(cluster.url, out, "--digest", cluster.digest, "--daemon", f"unix:{peer.socket}")
            assert done.returncode == 0, done.stderr + peer.process.tail()
            assert "sha256:" + sha256_file(out) == cluster.digest
    with cluster.admin.channel(cluster.supernode.target) as channel:
        tasks = scheduler_pb2_grpc.SchedulerServiceStub(channel).ListTasks(scheduler_pb2.ListTasksRequest(), timeout=10)
    (task,) = [t for t in tasks.tasks if t.url == cluster.url]
    return str(task.task_id)


def host_ips(cluster: Cluster) -> set[str]:
    """The addresses of the hosts registered with the supernode (asked with the admin certificate)."""
    with cluster.admin.channel(cluster.supernode.target) as channel:
        hosts = scheduler_pb2_grpc.SchedulerServiceStub(channel).ListHosts(scheduler_pb2.ListHostsRequest(), timeout=10)
    return {h.ip for h in hosts.hosts}


def test_members_download_with_dfget_over_tls_and_the_origin_sends_once(cluster: Cluster) -> None:
    task_id = downloaded(cluster)
    # The first member read the origin for the swarm, and the second member got every byte from it over TLS.
    assert cluster.origin.bytes_served("blob.bin") == SIZE
    assert "0 from origin" in cluster.peers[1].process.log()
    with cluster.admin.channel(cluster.supernode.target) as channel:
        task = scheduler_pb2_grpc.SchedulerServiceStub(channel).GetTask(
            scheduler_pb2.GetTaskRequest(task_id=task_id), timeout=10
        )
    assert {p.address.ip for p in task.peers if not p.is_seed} == set(PEER_IPS)
    for node in (cluster.supernode, *cluster.peers):
        log = node.process.log()
        assert "(mutual TLS)" in log and "plaintext" not in log


def test_dfget_one_shot_peer_and_preheat_take_the_certificates(cluster: Cluster) -> None:
    downloaded(cluster)
    no_daemon = f"unix:{cluster.base / 'no-such.sock'}"
    out = cluster.base / "one-shot"
    oneshot = dfget(
        *(cluster.url, out, "--digest", cluster.digest, "--no-back-source"),
        *("--supernode", cluster.supernode.target, "--daemon", no_daemon, *cluster.member.flags()),
    )
    assert oneshot.returncode == 0, oneshot.stderr
    assert "sha256:" + sha256_file(out) == cluster.digest

    (cluster.base / "www" / "preheat.bin").write_bytes(b"p" * MiB)
    url = cluster.origin.url("preheat.bin")
    preheat = ["preheat", url, "--supernode", cluster.supernode.target, "-q"]
    refused = dfget_cli(*preheat, *cluster.rogue.flags())
    assert refused.returncode != 0 and cluster.origin.bytes_served("preheat.bin") == 0
    done = dfget_cli(*preheat, *cluster.member.flags())
    assert done.returncode == 0, done.stderr
    assert cluster.origin.bytes_served("preheat.bin") == MiB


def test_grpcurl_works_with_the_certificates_and_inspection_needs_an_admin(cluster: Cluster) -> None:
    downloaded(cluster)
    sn = cluster.supernode.target
    listed = grpcurl(*cluster.admin.grpcurl_flags(), sn, "list")
    assert listed.returncode == 0, listed.stderr
    assert {SCHEDULER, "dandelion.peer.v1.PeerService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    tasks = grpcurl(*cluster.admin.grpcurl_flags(), sn, f"{SCHEDULER}/ListTasks")
    assert tasks.returncode == 0, tasks.stderr
    assert cluster.url in [t["url"] for t in json.loads(tasks.stdout)["tasks"]]
    hosts = grpcurl(*cluster.admin.grpcurl_flags(), sn, f"{SCHEDULER}/ListHosts")
    listed = json.loads(hosts.stdout)["hosts"]
    assert {h["ip"] for h in listed if not h.get("seed")} == set(PEER_IPS)
    assert [h["port"] for h in listed if h.get("seed")] == [int(sn.rsplit(":", 1)[1])], "the in-process seed peer"
    # A dfdaemon's PeerService answers reflection over TLS too (describe needs it).
    described = grpcurl(
        *cluster.admin.grpcurl_flags(), cluster.peers[0].target, "describe", "dandelion.peer.v1.PeerService"
    )
    assert described.returncode == 0 and "DownloadPieces" in described.stdout, described.stderr

    # A member's certificate may schedule, not inspect.
    for method, body in (("ListTasks", "{}"), ("ListHosts", "{}"), ("GetTask", '{"task_id": "x"}')):
        refused = grpcurl(*cluster.member.grpcurl_flags(), "-d", body, sn, f"{SCHEDULER}/{method}")
        assert refused.returncode != 0
        assert "PermissionDenied" in refused.stderr and "admin certificate" in refused.stderr, refused.stderr
    # No certificate, another CA's admin, or plaintext: no connection at all.
    for flags in (["-cacert", str(cluster.admin.ca)], cluster.rogue_admin.grpcurl_flags(), ["-plaintext"]):
        outsider = grpcurl(*flags, sn, f"{SCHEDULER}/ListTasks")
        assert outsider.returncode != 0 and "tasks" not in outsider.stdout, outsider.stdout


@pytest.mark.parametrize("kind", ["no certificate", "another CA"])
def test_outsiders_cannot_register_download_or_inspect(cluster: Cluster, kind: str) -> None:
    task_id = downloaded(cluster)
    outsider = None if kind == "no certificate" else cluster.rogue

    def channel(target: str) -> grpc.Channel:
        return outsider.channel(target) if outsider else grpc.insecure_channel(target)

    def refused(call: Callable[[], object]) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value

    host = scheduler_pb2.HostInfo(hostname="intruder", ip=OUTSIDER_IP, port=1, upload_slots=1)
    with channel(cluster.supernode.target) as ch:
        scheduler = scheduler_pb2_grpc.SchedulerServiceStub(ch)
        refused(lambda: scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host), timeout=10))
        refused(lambda: scheduler.ListTasks(scheduler_pb2.ListTasksRequest(), timeout=10))
        seed = peer_pb2_grpc.PeerServiceStub(ch)
        first_piece = peer_pb2.DownloadPiecesRequest(task_id=task_id, piece_numbers=[0])
        refused(lambda: list(seed.DownloadPieces(first_piece, timeout=10)))
    for peer in cluster.peers:
        with channel(peer.target) as ch:
            pieces = peer_pb2_grpc.PeerServiceStub(ch)
            refused(lambda p=pieces: list(p.DownloadPieces(first_piece, timeout=10)))
            refused(lambda p=pieces: list(p.StreamTask(peer_pb2.StreamTaskRequest(task_id=task_id), timeout=10)))

    # The same calls with a member's certificate get through the handshake (control): the stream answers with the
    # piece's bytes, or with the service's own refusal, never UNAVAILABLE.
    with cluster.member.channel(cluster.peers[0].target) as ch:
        try:
            chunks = list(peer_pb2_grpc.PeerServiceStub(ch).DownloadPieces(first_piece, timeout=10))
            assert sum(len(c.data) for c in chunks) > 0
        except grpc.RpcError as err:
            assert err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN), err

    # A real dfdaemon run by the outsider: it never registers, and nothing comes through it from the swarm.
    daemon = start_dfdaemon(
        cluster.group, cluster.base / kind.replace(" ", "-"), OUTSIDER_IP, cluster.supernode, outsider
    )
    out = cluster.base / f"outsider-{kind}"
    via_daemon = dfget(
        cluster.url, out, "--digest", cluster.digest, "--no-back-source", "--daemon", f"unix:{daemon.socket}"
    )
    assert via_daemon.returncode != 0 and not out.exists()
    assert OUTSIDER_IP not in host_ips(cluster)
    # dfget's one-shot peer with the outsider's certificate (or none) fails the same way.
    flags = outsider.flags() if outsider else []
    oneshot = dfget(
        cluster.url,
        out,
        "--digest",
        cluster.digest,
        "--no-back-source",
        "--supernode",
        cluster.supernode.target,
        "--daemon",
        f"unix:{cluster.base / 'no-such.sock'}",
        *flags,
    )
    assert oneshot.returncode != 0 and not out.exists()
    assert cluster.origin.bytes_served("blob.bin") == SIZE
    daemon.process.stop()


def test_members_refuse_a_supernode_from_another_ca(cluster: Cluster, tmp_path: Path) -> None:
    impostor = start_supernode(cluster.group, tmp_path, cluster.rogue, name="impostor")
    host = scheduler_pb2.HostInfo(hostname="member", ip=PEER_IPS[0], port=1, upload_slots=1)
    with cluster.member.channel(impostor.target) as ch, pytest.raises(grpc.RpcError) as caught:
        scheduler_pb2_grpc.SchedulerServiceStub(ch).RegisterHost(
            scheduler_pb2.RegisterHostRequest(host=host), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    impostor.process.stop()
