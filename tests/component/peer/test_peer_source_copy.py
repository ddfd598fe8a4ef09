"""Content with a digest: the first peer fetches the origin, the seed copies from it and checks the digest.

A real supernode (origin fetch "peer", the default) and real dfdaemons; the origin counts the bytes it sends. The
lying source is this test itself: it registers as a host, is told to fetch the origin, and then serves the seed
content that does not match the digest over PeerService.StreamTask.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

from dfcommon.grpcserver import add_peer_method, new_server
from dfcommon.identity import task_id

SIZE = 6 * (4 << 20) + 777


@dataclass
class Cluster:
    origin: OriginServer
    slow_origin: OriginServer  # the same files at 2.5 MB/s per response
    supernode: ManagedProcess
    supernode_addr: str
    daemons: list[Daemon]
    digests: dict[str, str]

    def logs(self) -> str:
        parts = [f"--- supernode\n{self.supernode.tail(40)}"]
        parts += [f"--- {d.proc.name}\n{d.proc.tail(30)}" for d in self.daemons]
        return "\n".join(parts)


@pytest.fixture(scope="module")
def cluster(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("source-copy")
    digests = {}
    for index, name in enumerate(("a.bin", "b.bin", "c.bin", "d.bin", "e.bin")):
        digests[name] = "sha256:" + write_random_file(work / "origin" / name, SIZE + index, seed=40 + index)
    origin = start_origin(module_process_group, work / "origin")
    slow_origin = start_origin(module_process_group, work / "origin", rate=2_500_000, name="slow-origin")
    port = free_port("127.0.0.1")
    supernode = module_process_group.start(
        "supernode",
        [
            console_script("supernode"),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "sn"), "--advertise-ip", "127.0.0.1"),
            *("--seed-copy-delay", "3600"),  # the copy starts only when another peer asks
        ],
    )
    supernode.wait_for_tcp("127.0.0.1", port, timeout=30)
    addr = f"127.0.0.1:{port}"
    daemons = [start_daemon(module_process_group, work, f"peer{i}", f"127.0.0.{40 + i}", addr) for i in (1, 2, 3)]
    yield Cluster(origin, slow_origin, supernode, addr, daemons, digests)


def done_line(daemon: Daemon) -> tuple[int, int]:
    """(bytes from peers, bytes from origin) of the daemon's last finished download."""
    found = re.findall(r"done: (\d+) bytes, (\d+) from peers, (\d+) from origin", daemon.proc.log())
    assert found, daemon.proc.tail()
    _, peers, origin = found[-1]
    return int(peers), int(origin)


def get(cluster: Cluster, daemon: Daemon, name: str, out: Path) -> None:
    result = dfget(
        cluster.origin.url(name), "-o", str(out), "--daemon", daemon.endpoint, "--digest", cluster.digests[name]
    )
    assert result.returncode == 0, result.stderr + cluster.logs()


def test_the_first_peer_fetches_the_origin_and_the_next_gets_the_seeds_copy(cluster: Cluster, tmp_path: Path) -> None:
    cluster.origin.reset()
    first, second, _ = cluster.daemons
    get(cluster, first, "a.bin", tmp_path / "one.bin")
    assert done_line(first) == (0, SIZE), "the first peer fetched the origin itself"
    assert "seed copy" not in cluster.supernode.log(), "the seed waits until another peer asks"

    get(cluster, second, "a.bin", tmp_path / "two.bin")
    data = (cluster.origin.root / "a.bin").read_bytes()
    assert (tmp_path / "one.bin").read_bytes() == data
    assert (tmp_path / "two.bin").read_bytes() == data
    assert cluster.origin.bytes_served("a.bin") == SIZE, cluster.logs()  # once, to the first peer
    assert done_line(second) == (SIZE, 0)
    assert re.search(r"seed copy task=\S+ url=\S+a\.bin from peer=", cluster.supernode.log())
    assert re.search(rf"seed complete task=\S+ length={SIZE}", cluster.supernode.log())
    # Its copy matched the digest: the first peer, which holds the same bytes in the same pieces, is a parent now.
    assert re.search(r"source peer holds task=\S+ peer=\S+ pieces=7", cluster.supernode.log())


def test_concurrent_first_downloads_fetch_the_origin_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.origin.reset()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(
                dfget,
                cluster.origin.url("b.bin"),
                *("-o", str(tmp_path / f"b{i}.bin"), "--daemon", d.endpoint, "--digest", cluster.digests["b.bin"]),
            )
            for i, d in enumerate(cluster.daemons)
        ]
        results = [job.result() for job in jobs]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [cluster.logs()]
    data = (cluster.origin.root / "b.bin").read_bytes()
    assert all((tmp_path / f"b{i}.bin").read_bytes() == data for i in range(3))
    assert cluster.origin.bytes_served("b.bin") == SIZE + 1, cluster.logs()


def test_a_one_shot_dfget_hands_what_it_fetched_to_the_seed_before_it_exits(cluster: Cluster, tmp_path: Path) -> None:
    cluster.origin.reset()
    result = dfget(
        cluster.origin.url("d.bin"),
        *("-o", str(tmp_path / "d1.bin"), "--daemon", f"unix:{tmp_path}/none.sock"),
        *("--supernode", cluster.supernode_addr, "--digest", cluster.digests["d.bin"]),
    )
    assert result.returncode == 0, result.stderr + cluster.logs()
    assert re.search(rf"seed complete task=\S+ length={SIZE + 3}", cluster.supernode.log()), cluster.logs()
    get(cluster, cluster.daemons[2], "d.bin", tmp_path / "d2.bin")
    data = (cluster.origin.root / "d.bin").read_bytes()
    assert (tmp_path / "d1.bin").read_bytes() == data and (tmp_path / "d2.bin").read_bytes() == data
    assert cluster.origin.bytes_served("d.bin") == SIZE + 3, cluster.logs()  # the one-shot peer's fetch only


def test_a_second_peer_early_in_the_first_ones_origin_fetch_has_the_seed_take_it_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The first peer is still at the start of a slow origin: rather than wait for all of it, the seed fetches the
    origin itself and serves both peers as it goes; the first peer drops what it read and joins them."""
    cluster.slow_origin.reset()
    name, first, second = "e.bin", cluster.daemons[0], cluster.daemons[1]
    url, digest = cluster.slow_origin.url(name), cluster.digests[name]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        one = pool.submit(dfget, url, "-o", str(tmp_path / "e1.bin"), "--daemon", first.endpoint, "--digest", digest)
        time.sleep(0.1)  # the first peer has read ~0.75 MB of 25 MB when asked (< 1/20), and ~10 s to go
        two = pool.submit(dfget, url, "-o", str(tmp_path / "e2.bin"), "--daemon", second.endpoint, "--digest", digest)
        results = [one.result(), two.result()]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [cluster.logs()]
    data = (cluster.slow_origin.root / name).read_bytes()
    assert (tmp_path / "e1.bin").read_bytes() == data and (tmp_path / "e2.bin").read_bytes() == data
    log = cluster.supernode.log()
    assert re.search(r"source peer handed the origin fetch over task=", log), cluster.logs()
    assert "the seed takes the origin fetch over" in first.proc.log()
    assert done_line(first) == (len(data), 0)
    assert done_line(second) == (len(data), 0)
    # The origin's cost: what the first peer had read (or was in flight to it) when it stopped, sent again.
    assert cluster.slow_origin.bytes_served(name) <= len(data) * 1.05 + (1 << 20), cluster.logs()


class LyingSource:
    """A host that registers, is told to fetch the origin, and serves StreamTask with every 1000th byte flipped."""

    def __init__(self, content: bytes) -> None:
        self.content = bytearray(content)
        self.content[::1000] = bytes(b ^ 0xFF for b in self.content[::1000])
        self.calls = 0

    async def StreamTask(self, request: peer_pb2.StreamTaskRequest, context: Any) -> AsyncIterator[bytes]:
        self.calls += 1
        for offset in range(0, len(self.content), 1 << 20):
            message = peer_pb2.StreamTaskResponse(
                content_length=len(self.content), offset=offset, data=bytes(self.content[offset : offset + (1 << 20)])
            )
            yield message.SerializeToString()


async def test_a_source_peer_that_lies_is_caught_by_the_seed(cluster: Cluster, tmp_path: Path) -> None:
    name = "c.bin"
    data = (cluster.origin.root / name).read_bytes()
    liar = LyingSource(data)
    server = new_server()
    add_peer_method(server, "StreamTask", liar.StreamTask, peer_pb2.StreamTaskRequest.FromString)
    port = server.add_insecure_port("127.0.0.49:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(cluster.supernode_addr) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            host = scheduler_pb2.HostInfo(hostname="liar", ip="127.0.0.49", port=port, upload_slots=4)
            host_id = (await stub.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))).host_id
            meta = common_pb2.UrlMeta(url=cluster.origin.url(name), digest=cluster.digests[name])
            registered = await stub.RegisterTask(scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta))
            assert registered.task.task_id == task_id(meta.url, meta.digest, (), "")

            async def hello() -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
                yield scheduler_pb2.SyncPiecesRequest(peer_id=registered.peer_id, window=4)
                await asyncio.sleep(30)

            stream = stub.SyncPieces(hello())
            events = [await stream.read(), await stream.read()]
            assert isinstance(events[1], scheduler_pb2.SyncPiecesResponse), events
            assert events[1].WhichOneof("event") == "back_to_source", events
            stream.cancel()

            cluster.origin.reset()
            out = tmp_path / "c.bin"
            result = await asyncio.to_thread(
                dfget,
                cluster.origin.url(name),
                *("-o", str(out), "--daemon", cluster.daemons[0].endpoint, "--digest", cluster.digests[name]),
            )
            assert result.returncode == 0, result.stderr + cluster.logs()
            assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
            assert liar.calls == 1
            log = cluster.supernode.log()
            assert re.search(r"source peer dropped task=\S+ peer=\S+: content copied from peer \S+ has sha256:", log)
            assert "seed fetch task=" in log and "(instead of the copy)" in log
            # The peer never saw the liar's bytes: every piece it took came from the seed's checked origin copy.
            assert done_line(cluster.daemons[0]) == (len(data), 0)
            assert cluster.origin.bytes_served(name) == len(data)
    finally:
        await server.stop(None)


async def test_stream_task_bad_requests_get_a_status_and_the_daemon_keeps_serving(
    cluster: Cluster, tmp_path: Path
) -> None:
    daemon = cluster.daemons[0]
    async with grpc.aio.insecure_channel(f"{daemon.ip}:{daemon.port}") as channel:
        method = channel.unary_stream(
            "/dandelion.peer.v1.PeerService/StreamTask",
            request_serializer=peer_pb2.StreamTaskRequest.SerializeToString,
            response_deserializer=peer_pb2.StreamTaskResponse.FromString,
        )
        for request, code in [
            (peer_pb2.StreamTaskRequest(task_id=""), grpc.StatusCode.INVALID_ARGUMENT),
            (peer_pb2.StreamTaskRequest(task_id="x" * 300), grpc.StatusCode.INVALID_ARGUMENT),
            (peer_pb2.StreamTaskRequest(task_id="0" * 64), grpc.StatusCode.NOT_FOUND),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in method(request, timeout=10):
                    pass
            assert caught.value.code() == code, caught.value
        # What the daemon holds streams whole, in order, with its piece size.
        get(cluster, daemon, "a.bin", tmp_path / "a.bin")
        tid = task_id(cluster.origin.url("a.bin"), cluster.digests["a.bin"], (), "")
        received = bytearray()
        async for message in method(peer_pb2.StreamTaskRequest(task_id=tid, requester_peer_id="test"), timeout=30):
            assert message.offset == len(received) and message.content_length == SIZE
            assert message.piece_size == 4 << 20
            received += message.data
        assert bytes(received) == (cluster.origin.root / "a.bin").read_bytes()
