"""Hostile traffic against a real supernode and dfdaemon: every RPC of every service with random bytes, mutated
and hostile messages, and random bytes on every port. Servers answer plain status codes (never UNKNOWN or
INTERNAL, no Python class names), log no traceback and few lines, keep their slots, and still serve."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fault_swarm import FaultSwarm, start_fault_swarm
from fixtures.origin import sha256_file, write_random_file
from fixtures.processes import ProcessGroup, free_port
from grpc_fuzz import Reply, fuzz, methods
from p2p_cluster import grpc_healthy

pytestmark = pytest.mark.e2e

PER_METHOD = 8  # x 19 methods x 3 endpoints: about 450 calls
BAD_INPUT_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


@pytest.fixture(scope="module")
def faults(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultSwarm]:
    """The swarm with the peer's mirror on (its upstream on a loopback port where nothing listens)."""
    mirror = f"127.0.0.3:{free_port('127.0.0.3')}"
    yield start_fault_swarm(
        module_process_group,
        tmp_path_factory.mktemp("fuzz"),
        ("--mirror", mirror, "--registry", "http://127.0.0.1:1"),
    )


def mirror_address(faults: FaultSwarm) -> tuple[str, int]:
    """(host, port) of the peer's registry mirror."""
    value = faults.peer.args[faults.peer.args.index("--registry") - 1]
    host, port = value.rsplit(":", 1)
    return host, int(port)


def log_lines(faults: FaultSwarm) -> dict[str, int]:
    """Lines in each server's log so far."""
    assert faults.swarm.supernode is not None
    return {
        "supernode": len(faults.swarm.supernode.process.log().splitlines()),
        "peer": len(faults.peer.process.log().splitlines()),
    }


def test_every_rpc_answers_bad_input_plainly(faults: FaultSwarm, tmp_path: Path) -> None:
    """About 450 hostile calls: expected codes only, plain messages, no traceback, bounded logs, servers alive."""
    before = log_lines(faults)
    targets = {
        "supernode": faults.supernode_target,
        "peer": faults.peer.target,
        "daemon": faults.peer.daemon_endpoint,
    }

    async def everything() -> dict[str, list[Reply]]:
        results = await asyncio.gather(*(fuzz(t, seed, PER_METHOD) for seed, t in enumerate(targets.values())))
        return dict(zip(targets, results, strict=True))

    replies = asyncio.run(everything())
    total = sum(len(r) for r in replies.values())
    assert total == 3 * PER_METHOD * len(list(methods()))
    for name, answers in replies.items():
        bad = [r for r in answers if r.code in BAD_INPUT_CODES or "<class" in r.details or "Traceback" in r.details]
        kinds = sorted({(r.method, r.code.name, r.details[:120]) for r in bad})
        assert not bad, f"{name}: {len(bad)} bad replies:\n" + "\n".join(map(str, kinds))
        codes = Counter(r.code.name for r in answers)
        assert codes["INVALID_ARGUMENT"] >= PER_METHOD, f"{name}: {codes}"  # malformed messages were refused
    for component in ("supernode", "peer"):
        refused = faults.gauges(component, "dandelion_malformed_requests_total")
        assert refused.get("protobuf", 0) >= PER_METHOD, refused
    after = log_lines(faults)
    for name in ("supernode", "peer"):
        grown = after[name] - before[name]
        # At most one line per kind (method x malformed/invalid) per 10 s, plus the few info lines valid calls log.
        bound = 2 * len(list(methods())) + 20
        assert grown <= bound, f"{name} logged {grown} lines for {total} hostile calls"
    assert_servers_fine(faults, tmp_path)


def test_random_bytes_on_every_port(faults: FaultSwarm, tmp_path: Path) -> None:
    """Random bytes, a TLS hello, an HTTP/1 request and a huge header on every TCP port and the daemon socket."""
    rng = random.Random(7)
    tcp = [
        ("127.0.0.1", faults.swarm.supernode.port if faults.swarm.supernode else 0),
        (faults.peer.ip, faults.peer.port),
        mirror_address(faults),
        *(tuple_address(m) for m in faults.metrics.values()),
    ]
    junk = [
        rng.randbytes(4096),
        bytes.fromhex("16030100c8010000c40303") + rng.randbytes(190),  # a TLS ClientHello's start
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + rng.randbytes(512),  # the HTTP/2 preface, then garbage frames
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    ]
    for address in tcp:
        for data in junk:
            poke(socket.AF_INET, address, data)
    for data in junk:
        poke(socket.AF_UNIX, str(faults.peer.socket), data)
    host, port = mirror_address(faults)
    big_header = httpx.get(f"http://{host}:{port}/v2/", headers={"X-Big": "a" * 100_000}, timeout=10)
    assert big_header.status_code in (400, 413, 431) or "errors" in big_header.json(), big_header.text
    assert_servers_fine(faults, tmp_path)


def tuple_address(hostport: str) -> tuple[str, int]:
    """("HOST", PORT) of "HOST:PORT"."""
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


def poke(family: socket.AddressFamily, address: object, data: bytes) -> None:
    """Send data on a fresh connection, read whatever comes back for a moment, close."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(address)
        try:
            sock.sendall(data)
            sock.recv(65536)
        except OSError:
            pass  # the server hung up or did not answer: both fine


def assert_servers_fine(faults: FaultSwarm, tmp_path: Path) -> None:
    """Alive, healthy, no traceback in any log, slots idle, and a new download through the swarm works."""
    assert faults.swarm.supernode is not None
    assert faults.swarm.supernode.process.alive() and faults.peer.process.alive()
    for target in (faults.supernode_target, faults.peer.target, faults.peer.daemon_endpoint):
        assert grpc_healthy(target), target
    for process in (faults.swarm.supernode.process, faults.peer.process):
        assert "Traceback" not in process.log(), process.tail(60)
    host, port = mirror_address(faults)
    answer = httpx.get(f"http://{host}:{port}/v2/", timeout=10)
    assert answer.status_code == 200 or "errors" in answer.json(), answer.text  # registry error JSON
    faults.assert_all_idle()
    name = f"after-{random.randrange(10**9)}.bin"
    sha = write_random_file(faults.origin.root / name, 5 * (1 << 20) + 3, seed=len(name))
    out = tmp_path / name
    done = faults.swarm.dfget(faults.origin.url(name), out, faults.peer)
    assert done.returncode == 0, done.stderr
    assert sha256_file(out) == sha
    faults.assert_all_idle()


HOSTILE_URLS = [
    "http://h:99999/x",
    "http://[::1",
    "http://127.0.0.1:-1/x",
    "http://127.0.0.1:1/x\x00y",
    "ftp://127.0.0.1/x",
    "",
    "http://" + "a" * 9000,
]
HOSTILE_RANGES = ["9" * 5000, "9" * 5000 + "-1", "5-1", "-1", "1-2-3", "x"]


def assert_invalid(call: object) -> None:
    """call() fails with INVALID_ARGUMENT and one plain line."""
    with pytest.raises(grpc.RpcError) as caught:
        result = call()  # type: ignore[operator]
        if hasattr(result, "__iter__"):
            list(result)
    error: grpc.Call = caught.value  # type: ignore[assignment]
    details = error.details() or ""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), details)
    assert "<class" not in details and "\n" not in details and len(details) < 1100, details


@pytest.mark.parametrize(
    ("url", "byte_range"),
    [(u, "") for u in HOSTILE_URLS] + [(None, r) for r in HOSTILE_RANGES],
    ids=[f"url{i}" for i in range(len(HOSTILE_URLS))] + [f"range{i}" for i in range(len(HOSTILE_RANGES))],
)
def test_hostile_urls_and_ranges(faults: FaultSwarm, url: str | None, byte_range: str) -> None:
    """Each hostile URL or range gets INVALID_ARGUMENT (not INTERNAL) from RegisterTask, PreheatTask and Download."""
    meta = common_pb2.UrlMeta(url=faults.url if url is None else url, range=byte_range)
    with grpc.insecure_channel(faults.supernode_target) as channel:
        scheduler = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        host = scheduler.RegisterHost(
            scheduler_pb2.RegisterHostRequest(host=scheduler_pb2.HostInfo(hostname="fuzz", ip="127.0.0.9", port=1)),
            timeout=10,
        )
        assert_invalid(
            lambda: scheduler.RegisterTask(
                scheduler_pb2.RegisterTaskRequest(host_id=host.host_id, url_meta=meta), timeout=10
            )
        )
        assert_invalid(lambda: scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta), timeout=10))
        scheduler.LeaveHost(scheduler_pb2.LeaveHostRequest(host_id=host.host_id), timeout=10)
    with grpc.insecure_channel(faults.peer.daemon_endpoint) as channel:
        daemon = peer_pb2_grpc.DaemonServiceStub(channel)
        assert_invalid(lambda: daemon.Download(peer_pb2.DownloadRequest(url_meta=meta), timeout=10))


def test_oversized_metadata(faults: FaultSwarm) -> None:
    """Request headers (gRPC metadata) far over the limit: the call fails, the servers keep answering."""
    for target in (faults.supernode_target, faults.peer.target, faults.peer.daemon_endpoint):
        with grpc.insecure_channel(target) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListHosts(scheduler_pb2.ListHostsRequest(), metadata=[("x-big", "a" * 200_000)], timeout=10)
            assert "<class" not in (caught.value.details() or "")  # type: ignore[attr-defined]
        assert grpc_healthy(target), target
