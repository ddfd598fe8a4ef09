"""Upload slots come back on every way a call ends, against real processes: the
dandelion_slots_busy gauge of each pool returns to 0 after cancelled, stalled, expired, killed, malformed,
failing and refused calls, and the servers still serve."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2
from fault_swarm import FaultSwarm, start_fault_swarm
from fixtures.origin import sha256_file
from fixtures.processes import ProcessGroup

pytestmark = pytest.mark.e2e

UPLOAD_SLOTS = 3
SEED_SLOTS = 4
DOWNLOAD_PIECES = "/dandelion.peer.v1.PeerService/DownloadPieces"
DOWNLOAD = "/dandelion.peer.v1.DaemonService/Download"

# A client that starts a stream, reads one message, says so, then waits to be SIGKILLed.
KILLED_CLIENT = """
import sys, time, grpc
channel = grpc.insecure_channel(sys.argv[1])
raw = channel.unary_stream(sys.argv[2], request_serializer=None, response_deserializer=None)
call = raw(bytes.fromhex(sys.argv[3]))
next(call)
print("streaming", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def faults(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultSwarm]:
    """The swarm, shared by the module's tests."""
    faults = start_fault_swarm(
        module_process_group,
        tmp_path_factory.mktemp("leaks"),
        ("--upload-slots", str(UPLOAD_SLOTS), "--upload-limit", "4M"),  # a stalled stream stays open
        ("--seed-upload-slots", str(SEED_SLOTS)),
    )
    BASELINE_FDS.update(open_fds(faults))
    yield faults


BASELINE_FDS: dict[str, int] = {}
FD_SLACK = 4  # descriptors grpc and the HTTP servers may open or keep on their own (connections, wakeup fds)


def open_fds(faults: FaultSwarm) -> dict[str, int]:
    """Descriptors the supernode and the dfdaemon hold now."""
    assert faults.swarm.supernode is not None
    processes = {"supernode": faults.swarm.supernode.process, "peer": faults.peer.process}
    return {name: len(os.listdir(f"/proc/{p.pid}/fd")) for name, p in processes.items()}


def pieces_request(faults: FaultSwarm, *extra: int, rounds: int = 1) -> bytes:
    """A DownloadPiecesRequest for every piece of the task, rounds times over (then extra numbers)."""
    return faults.request([*range(faults.pieces)] * rounds + [*extra])


CASES = [
    ("supernode", "peer_uploads", DOWNLOAD_PIECES),
    ("peer", "peer_uploads", DOWNLOAD_PIECES),
    ("daemon", "daemon_downloads", DOWNLOAD),
]
IDS = ["seed-DownloadPieces", "peer-DownloadPieces", "daemon-Download"]


def target_of(faults: FaultSwarm, component: str) -> str:
    """The gRPC address of component ("daemon": the dfdaemon's DaemonService socket)."""
    if component == "daemon":
        return faults.peer.daemon_endpoint
    return faults.supernode_target if component == "supernode" else faults.peer.target


def metrics_of(component: str) -> str:
    """Whose /metrics show component's pools."""
    return "supernode" if component == "supernode" else "peer"


def request_for(faults: FaultSwarm, method: str) -> bytes:
    """A valid request of method, longer than socket and flow-control buffers hold (Download: its own rate
    limit)."""
    if method == DOWNLOAD:
        meta = common_pb2.UrlMeta(url=faults.url)
        return peer_pb2.DownloadRequest(url_meta=meta, rate_limit=4 << 20).SerializeToString()
    return pieces_request(faults, rounds=10)


def raw_stream(channel: grpc.Channel, method: str) -> Callable[..., Iterator[bytes]]:
    """A server-streaming call of method with bytes in and out."""
    return channel.unary_stream(method, request_serializer=None, response_deserializer=None)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("component", "pool", "method"), CASES, ids=IDS)
def test_stalled_then_cancelled_stream(faults: FaultSwarm, component: str, pool: str, method: str) -> None:
    """A client that stops reading holds its slot (the gauge shows it); cancelling gives it back."""
    with grpc.insecure_channel(target_of(faults, component)) as channel:
        call = raw_stream(channel, method)(request_for(faults, method), timeout=60)
        next(call)
        faults.wait_gauge(metrics_of(component), pool, 1)
        time.sleep(0.5)
        assert faults.gauges(metrics_of(component))[pool] == 1, "a stalled stream must keep its slot"
        call.cancel()  # type: ignore[attr-defined]
        faults.wait_gauge(metrics_of(component), pool, 0)


@pytest.mark.parametrize(("component", "pool", "method"), CASES, ids=IDS)
def test_deadline_exceeded_mid_stream(faults: FaultSwarm, component: str, pool: str, method: str) -> None:
    """The client's deadline passes while the server is blocked sending: the slot comes back."""
    with grpc.insecure_channel(target_of(faults, component)) as channel:
        call = raw_stream(channel, method)(request_for(faults, method), timeout=1.0)
        next(call)
        time.sleep(1.5)
        with pytest.raises(grpc.RpcError) as caught:
            list(call)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    faults.wait_gauge(metrics_of(component), pool, 0)


@pytest.mark.parametrize(("component", "pool", "method"), CASES, ids=IDS)
def test_client_sigkilled_mid_stream(faults: FaultSwarm, component: str, pool: str, method: str) -> None:
    """A client process SIGKILLed while streaming: the server notices and gives the slot back."""
    client = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, target_of(faults, component), method, request_for(faults, method).hex()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "streaming"
        faults.wait_gauge(metrics_of(component), pool, 1)
    finally:
        client.kill()
        client.wait()
        if client.stdout is not None:
            client.stdout.close()
    faults.wait_gauge(metrics_of(component), pool, 0)


@pytest.mark.parametrize(("component", "pool"), [("supernode", "peer_uploads"), ("peer", "peer_uploads")])
def test_refused_and_failing_calls(faults: FaultSwarm, component: str, pool: str) -> None:
    """Malformed bytes, hostile fields, calls without a valid access grant and a piece missing mid-stream get their
    codes and hold no slot."""
    forged = common_pb2.AccessGrant(claims=faults.grant.claims, signature=bytes(64))
    with grpc.insecure_channel(target_of(faults, component)) as channel:
        raw = raw_stream(channel, DOWNLOAD_PIECES)
        for request, code in [
            (b"\xff\xff\xff\xff\x0f", grpc.StatusCode.INVALID_ARGUMENT),
            (faults.request([0], task_id="x" * 5000), None),
            (  # no grant
                peer_pb2.DownloadPiecesRequest(task_id=faults.task_id, piece_numbers=[0]).SerializeToString(),
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            (  # a forged signature
                peer_pb2.DownloadPiecesRequest(
                    task_id=faults.task_id, piece_numbers=[0], requester_host_id=faults.requester_host_id, grant=forged
                ).SerializeToString(),
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            (faults.request([0], task_id="0" * 64), grpc.StatusCode.PERMISSION_DENIED),  # the grant of another task
            (faults.request([0, 99_999]), grpc.StatusCode.NOT_FOUND),  # fails mid-stream, after piece 0 went out
            (faults.request([2**32 - 1]), None),
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                list(raw(request, timeout=30))
            error: grpc.Call = caught.value  # type: ignore[assignment]
            assert error.code() in ({code} if code else {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND})
            assert "<class" not in (error.details() or "")
            faults.wait_gauge(metrics_of(component), pool, 0)


@pytest.mark.parametrize(
    ("component", "pool", "slots"), [("supernode", "peer_uploads", SEED_SLOTS), ("peer", "peer_uploads", UPLOAD_SLOTS)]
)
def test_busy_pool_refuses_then_recovers(faults: FaultSwarm, component: str, pool: str, slots: int) -> None:
    """All slots held by stalled clients: the next call gets RESOURCE_EXHAUSTED; once they go, calls work again."""
    assert faults.gauges(component, "dandelion_slots_limit")[pool] == slots
    with grpc.insecure_channel(target_of(faults, component)) as channel:
        raw = raw_stream(channel, DOWNLOAD_PIECES)
        held = [raw(pieces_request(faults, rounds=10), timeout=60) for _ in range(slots)]
        for call in held:
            next(call)
        faults.wait_gauge(component, pool, slots)
        with pytest.raises(grpc.RpcError) as caught:
            list(raw(pieces_request(faults), timeout=30))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        for call in held:
            call.cancel()  # type: ignore[attr-defined]
        faults.wait_gauge(metrics_of(component), pool, 0)
        one_piece = faults.request([1])
        assert sum(1 for _ in raw(one_piece, timeout=60)) == faults.piece_chunks


def test_still_serving_after_the_faults(faults: FaultSwarm, tmp_path: Path) -> None:
    """After every fault above: all pools idle, and a real download works."""
    faults.assert_all_idle()
    out = tmp_path / "again.bin"
    done = faults.swarm.dfget(faults.url, out, faults.peer)
    assert done.returncode == 0, done.stderr
    assert sha256_file(out) == faults.sha
    faults.assert_all_idle()
    now = open_fds(faults)
    for name, count in now.items():
        assert count <= BASELINE_FDS[name] + FD_SLACK, (
            f"{name} holds {count} descriptors, {BASELINE_FDS[name]} at start"
        )
    assert faults.swarm.supernode is not None
    for process in (faults.swarm.supernode.process, faults.peer.process):
        assert "Traceback" not in process.log(), process.tail()
