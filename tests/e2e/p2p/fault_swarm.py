"""A supernode and one dfdaemon with /metrics, content both hold, and helpers to read the slot gauges."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2
from dandelion.scheduler.v1 import scheduler_pb2
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup, free_port
from p2p_cluster import PeerHandle, Swarm

MiB = 1 << 20
SIZE = 24 * MiB  # more than a stalled stream's flow-control window holds
POOLS = {"supernode": ("peer_uploads",), "peer": ("peer_uploads", "daemon_downloads")}


@dataclass
class FaultSwarm:
    """The processes, their metrics addresses and a task both hold."""

    swarm: Swarm
    origin: OriginServer
    peer: PeerHandle
    metrics: dict[str, str]  # "supernode"/"peer" -> HOST:PORT of /metrics
    url: str
    sha: str
    task_id: str
    pieces: int
    requester_host_id: str  # a host registered with the supernode that registered the task ...
    grant: common_pb2.AccessGrant  # ... and the access grant RegisterTask gave it

    def request(self, numbers: list[int], task_id: str | None = None) -> bytes:
        """A serialized DownloadPiecesRequest for numbers of the task (or task_id), with the grant."""
        return peer_pb2.DownloadPiecesRequest(
            task_id=self.task_id if task_id is None else task_id,
            piece_numbers=numbers,
            requester_host_id=self.requester_host_id,
            grant=self.grant,
        ).SerializeToString()

    @property
    def piece_chunks(self) -> int:
        """The 1 MiB messages a (whole) piece is sent in."""
        return -(-(SIZE // self.pieces) // MiB)

    @property
    def supernode_target(self) -> str:
        """HOST:PORT of the supernode's gRPC services."""
        assert self.swarm.supernode is not None
        return self.swarm.supernode.target

    def gauges(self, component: str, metric: str = "dandelion_slots_busy") -> dict[str, float]:
        """dandelion_slots_busy (or another metric with one label) per label value, of component ("supernode" or
        "peer")."""
        text = httpx.get(f"http://{self.metrics[component]}/metrics", timeout=10).text
        busy: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(metric + "{"):
                name, value = line.rsplit(" ", 1)
                labels = dict(pair.split("=", 1) for pair in name[len(metric) + 1 : -1].split(","))
                label = next(v for k, v in labels.items() if k != "component")  # the one other label
                busy[label.strip('"')] = float(value)
        return busy

    def wait_gauge(self, component: str, pool: str, value: float, timeout: float = 10.0) -> None:
        """Wait until the pool's gauge shows value (AssertionError with the last reading after timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.gauges(component).get(pool)
            if seen == value:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{component} {pool} slots busy: {seen}, expected {value}")
            time.sleep(0.05)

    def assert_all_idle(self, timeout: float = 10.0) -> None:
        """Every pool of both processes back to 0."""
        for component, pools in POOLS.items():
            for pool in pools:
                self.wait_gauge(component, pool, 0, timeout)


def start_fault_swarm(
    group: ProcessGroup, base: Path, peer_args: tuple[str, ...] = (), supernode_args: tuple[str, ...] = ()
) -> FaultSwarm:
    """Origin, supernode and one dfdaemon (both with /metrics); one download so the seed and the peer hold it."""
    sha = write_random_file(base / "content" / "f.bin", SIZE, seed=41)
    origin = start_origin(group, base / "content")
    metrics = {"supernode": f"127.0.0.1:{free_port()}", "peer": f"127.0.0.1:{free_port()}"}
    swarm = Swarm(group, base)
    swarm.start_supernode(["--metrics", metrics["supernode"], *supernode_args])
    peer = swarm.start_peer("127.0.0.3", ["--metrics", metrics["peer"], *peer_args])
    url = origin.url("f.bin")
    done = swarm.dfget(url, base / "first.bin", peer)
    assert done.returncode == 0, done.stderr
    task = swarm.task_for_url(url)
    deadline = time.monotonic() + 60
    while not any(p.is_seed and p.piece_count == task.piece_count for p in swarm.get_task(task.task_id).peers):
        assert time.monotonic() < deadline, "the seed never held the whole content"
        time.sleep(0.2)
    host_id, grant = register_for_grant(swarm, url)
    return FaultSwarm(swarm, origin, peer, metrics, url, sha, task.task_id, task.piece_count, host_id, grant)


def register_for_grant(
    swarm: Swarm, url: str, ip: str = "127.0.0.9", headers: dict[str, str] | None = None
) -> tuple[str, common_pb2.AccessGrant]:
    """An access grant the honest way: a host registers with the supernode, then registers the task (with the
    headers the origin wants: the supernode asks it)."""
    assert swarm.supernode is not None
    host = scheduler_pb2.HostInfo(hostname="raw-client", ip=ip, port=1, upload_slots=1)
    with grpc.insecure_channel(swarm.supernode.target) as channel:
        stub = swarm.scheduler(channel)
        host_id = stub.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host), timeout=10).host_id
        meta = common_pb2.UrlMeta(url=url, headers=headers or {})
        reply = stub.RegisterTask(scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta), timeout=30)
    assert reply.grant.signature, "the supernode gave no access grant"
    return str(host_id), reply.grant
