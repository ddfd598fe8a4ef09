"""Access grants end to end: a PeerService (a dfdaemon's, the supernode's in-process seed peer's) sends no byte of a
task without the supernode's grant for that task and the asking host, while swarm downloads (longer than a grant
lives) go on. Real processes: an origin with a private area, two supernodes, two dfdaemons."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc
from fault_swarm import register_for_grant
from fixtures.origin import OriginServer, sha256_file, start_origin, write_random_file
from fixtures.processes import ProcessGroup, free_port
from p2p_cluster import PeerHandle, Swarm, grpc_healthy

pytestmark = pytest.mark.e2e

MiB = 1 << 20
SIZE = 8 * MiB
PIECE = 256 << 10  # 32 pieces: a slow download makes many DownloadPieces calls, spread over its whole time
TTL = 2.0  # seconds a grant lives here (supernode --grant-ttl): renewed every 2/3 s
USER, PASSWORD = "grant-user", "grant-Pa55-not-on-disk"
AUTH = "Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PATH = "private/secret.bin"


@dataclass
class Setup:
    """The processes, and the private task the first dfdaemon holds."""

    swarm: Swarm  # supernode A (grants live TTL), its in-process seed peer, the dfdaemons
    other: Swarm  # supernode B: no dfdaemon ever registered with it
    origin: OriginServer
    holder: PeerHandle  # holds the private content (one upload slot: a leaked slot would refuse the next call)
    holder_metrics: str
    fetcher: PeerHandle
    url: str
    sha: str
    content: bytes
    task_id: str


@pytest.fixture(scope="module")
def setup(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("grants")
    sha = write_random_file(base / "content" / PATH, SIZE, seed=51)
    write_random_file(base / "content" / "public.bin", MiB, seed=52)
    origin = start_origin(module_process_group, base / "content", user=USER, password=PASSWORD)
    swarm = Swarm(module_process_group, base)
    swarm.start_supernode(["--grant-ttl", f"{TTL:g}s", "--piece-size", "256KiB"])
    other = Swarm(module_process_group, base / "other")
    other.start_supernode(["--no-seed-peer"])
    metrics = f"127.0.0.1:{free_port()}"
    holder = swarm.start_peer("127.0.0.2", ["--upload-slots", "1", "--metrics", metrics], name="holder")
    fetcher = swarm.start_peer("127.0.0.3", name="fetcher")
    url = origin.url(PATH)
    done = swarm.dfget(url, base / "first.bin", holder, "--header", AUTH)
    assert done.returncode == 0, done.stderr
    task = swarm.task_for_url(url)
    yield Setup(
        swarm, other, origin, holder, metrics, fetcher, url, sha, (base / "first.bin").read_bytes(), task.task_id
    )


def read_pieces(
    target: str, task_id: str, host_id: str, grant: common_pb2.AccessGrant | None, numbers: tuple[int, ...] = (0,)
) -> tuple[grpc.StatusCode | None, str, bytes]:
    """A raw DownloadPieces call: (status code or None when it ended well, its details, the bytes received)."""
    request = peer_pb2.DownloadPiecesRequest(
        task_id=task_id, piece_numbers=numbers, requester_peer_id="raw", requester_host_id=host_id, grant=grant
    )
    got = bytearray()
    with grpc.insecure_channel(target) as channel:
        try:
            for chunk in peer_pb2_grpc.PeerServiceStub(channel).DownloadPieces(request, timeout=20):
                got += chunk.data
        except grpc.RpcError as err:
            return err.code(), err.details() or "", bytes(got)  # type: ignore[attr-defined]
    return None, "", bytes(got)


def fresh_grant(setup: Setup, swarm: Swarm | None = None, url: str | None = None) -> tuple[str, common_pb2.AccessGrant]:
    """A host registers with the supernode (A unless swarm), then registers the task (the private one, with the
    credentials its origin wants, unless url)."""
    name, _, value = AUTH.partition(": ")
    return register_for_grant(swarm or setup.swarm, url or setup.url, headers={name: value})


def test_no_grant_without_the_origins_yes(setup: Setup) -> None:
    """The supernode asks the origin before it grants: a registration of the private task without its credentials,
    or with wrong ones, is refused with one line naming the origin's answer, and no grant."""
    for headers in (None, {"Authorization": "Basic " + base64.b64encode(b"grant-user:wrong").decode()}):
        with pytest.raises(grpc.RpcError) as caught:
            register_for_grant(setup.swarm, setup.url, headers=headers)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        details = caught.value.details()  # type: ignore[attr-defined]
        assert details == f"access refused: origin answered HTTP 401 Unauthorized for {setup.url}", details
    assert setup.swarm.supernode is not None
    assert PASSWORD not in setup.swarm.supernode.process.log()


def refused(outcome: tuple[grpc.StatusCode | None, str, bytes], why: str) -> None:
    code, details, got = outcome
    assert code == grpc.StatusCode.PERMISSION_DENIED, (code, details)
    assert why in details and "\n" not in details, details
    assert got == b"", "a refused call sent bytes"


def busy_slots(setup: Setup) -> float:
    """The holder's dandelion_slots_busy{pool="peer_uploads"}."""
    import httpx

    for line in httpx.get(f"http://{setup.holder_metrics}/metrics", timeout=10).text.splitlines():
        if line.startswith("dandelion_slots_busy{") and 'pool="peer_uploads"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no peer_uploads gauge on /metrics")


def forged(grant: common_pb2.AccessGrant) -> common_pb2.AccessGrant:
    signature = bytearray(grant.signature)
    signature[7] ^= 0x01
    return common_pb2.AccessGrant(claims=grant.claims, signature=bytes(signature))


@pytest.mark.parametrize("server", ["dfdaemon", "seed-peer"])
def test_no_valid_grant_no_bytes(setup: Setup, server: str) -> None:
    """No grant, another task's, an expired one, a forged signature, another supernode's, another host's: each
    PERMISSION_DENIED with one line and no byte; the honest grant then reads the piece (the one slot was free)."""
    assert setup.swarm.supernode is not None
    target = setup.holder.target if server == "dfdaemon" else setup.swarm.supernode.target
    tid = setup.task_id
    refused(read_pieces(target, tid, "", None), "no access grant")
    host, other_task = fresh_grant(setup, url=setup.origin.url("public.bin"))
    refused(read_pieces(target, tid, host, other_task), "another task")
    host, grant = fresh_grant(setup)
    refused(read_pieces(target, tid, host, forged(grant)), "signature is invalid")
    refused(read_pieces(target, tid, "some-other-host", grant), "another host")
    other_host, _ = fresh_grant(setup)  # a host the supernode knows, too
    refused(read_pieces(target, tid, other_host, grant), "another host")
    elsewhere = fresh_grant(setup, swarm=setup.other)
    refused(read_pieces(target, tid, *elsewhere), "unknown supernode key")
    expiring = fresh_grant(setup)
    time.sleep(TTL + 0.3)
    refused(read_pieces(target, tid, *expiring), "expired")
    if server == "dfdaemon":
        assert busy_slots(setup) == 0
    code, details, got = read_pieces(target, tid, *fresh_grant(setup))
    assert code is None, details
    assert got == setup.content[:PIECE]
    assert grpc_healthy(target)


def test_stream_task_sends_nothing(setup: Setup) -> None:
    """The deprecated StreamTask is not served at all (UNIMPLEMENTED): no grant is needed to refuse it."""
    with grpc.insecure_channel(setup.holder.target) as channel:
        request = peer_pb2.StreamTaskRequest(task_id=setup.task_id)
        with pytest.raises(grpc.RpcError) as caught:
            chunks = list(peer_pb2_grpc.PeerServiceStub(channel).StreamTask(request, timeout=10))
            assert not chunks
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_swarm_download_outlasting_its_grant(setup: Setup, tmp_path: Path) -> None:
    """The second dfdaemon reads the private content from the swarm only (no back-to-source), slowly enough that
    its first grant expires twice over: the renewals on its piece stream keep every later call authorised, and the
    first dfdaemon served it pieces."""
    before = setup.origin.bytes_served(PATH)
    logs = [(process, len(process.log())) for process in (setup.holder.process, setup.fetcher.process)]
    out = tmp_path / "slow.bin"
    began = time.monotonic()
    done = setup.swarm.dfget(
        setup.url, out, setup.fetcher, "--header", AUTH, "--rate-limit", "1M", "--no-back-source", timeout=120
    )
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert sha256_file(out) == setup.sha
    assert took > 2 * TTL, f"the download took {took:.1f}s: not longer than a grant lives"
    assert setup.origin.bytes_served(PATH) == before, "the swarm did not serve it all"
    peers = setup.swarm.get_task(setup.task_id).peers
    by_ip = {p.address.ip: p for p in peers if not p.is_seed}
    assert by_ip["127.0.0.2"].uploads_ok > 0, "the first dfdaemon served no piece"
    for process, mark in logs:
        assert "refused DownloadPieces" not in process.log()[mark:], process.tail()
