"""Content with a digest: the first peer reads the origin for the swarm and offers each piece as it stores it.

A real supernode without a seed peer (--no-seed-peer) and real dfdaemons; the origin counts the bytes it sends. The
lying reader is this test itself: it registers as a host, is told to read the origin, and then reports pieces
with digests of content that does not match the task's digest, and serves those pieces.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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

from dfcommon import piecedigest
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
    work = tmp_path_factory.mktemp("origin-reader")
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
            "--no-seed-peer",  # no seed peer: a plain peer reads content with a digest for the swarm
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


def test_the_first_peer_reads_the_origin_and_the_next_gets_its_pieces(cluster: Cluster, tmp_path: Path) -> None:
    cluster.origin.reset()
    first, second, _ = cluster.daemons
    get(cluster, first, "a.bin", tmp_path / "one.bin")
    assert done_line(first) == (0, SIZE), "the first peer read the origin itself"
    assert "reading the origin for the swarm" in first.proc.log()

    get(cluster, second, "a.bin", tmp_path / "two.bin")
    data = (cluster.origin.root / "a.bin").read_bytes()
    assert (tmp_path / "one.bin").read_bytes() == data
    assert (tmp_path / "two.bin").read_bytes() == data
    assert cluster.origin.bytes_served("a.bin") == SIZE, cluster.logs()  # once, to the first peer
    assert done_line(second) == (SIZE, 0)
    assert "digest checked here" in second.proc.log(), "a peer's piece digests never vouch for the whole content"
    assert "seed fetch task=" not in cluster.supernode.log(), "the seed never touched it"


def test_concurrent_first_downloads_read_the_origin_once(cluster: Cluster, tmp_path: Path) -> None:
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


def test_a_later_peer_gets_each_piece_while_the_first_one_still_reads_the_origin(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A slow origin (2.5 MB/s per response: ~10 s for the file): the second peer, started 1 s after the first,
    does not wait for the whole file: it reads half of what is left itself and gets the rest from the first peer as
    it is read; the origin sends the content once."""
    cluster.slow_origin.reset()
    name, first, second = "e.bin", cluster.daemons[0], cluster.daemons[1]
    url, digest = cluster.slow_origin.url(name), cluster.digests[name]

    def timed(daemon: Daemon, out: Path) -> tuple[float, float, int]:
        started = time.monotonic()
        result = dfget(url, "-o", str(out), "--daemon", daemon.endpoint, "--digest", digest)
        assert result.returncode == 0, result.stderr + cluster.logs()
        return started, time.monotonic(), result.returncode

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        one = pool.submit(timed, first, tmp_path / "e1.bin")
        time.sleep(1.0)
        two = pool.submit(timed, second, tmp_path / "e2.bin")
        (start1, end1, _), (start2, end2, _) = one.result(), two.result()
    data = (cluster.slow_origin.root / name).read_bytes()
    assert (tmp_path / "e1.bin").read_bytes() == data and (tmp_path / "e2.bin").read_bytes() == data
    # The second peer read the second half of what was left (a reader's uplink carries every piece it reads at
    # least once): each piece came from the origin once, to one of them, and the rest from the other.
    (peers1, origin1), (peers2, origin2) = done_line(first), done_line(second)
    assert peers1 + origin1 == len(data) and peers2 + origin2 == len(data)
    assert origin1 + origin2 == len(data) and origin1 > 0 and origin2 > 0, (done_line(first), done_line(second))
    assert cluster.slow_origin.bytes_served(name) <= len(data) + (1 << 20), cluster.logs()  # + what was in flight
    assert end1 - start1 > 4, "the origin is slow"  # ~10 s for one reader, ~5 s for two
    # Store-and-forward would have the second peer start its 25 MB only when the first one is done.
    assert end2 - end1 < 3.0, (end1 - start1, end2 - start2, cluster.logs())


class LyingReader:
    """A host told to read the origin that serves pieces of content with every 1000th byte flipped, having
    reported each piece with the digest of its flipped bytes."""

    def __init__(self, content: bytes, piece_size: int) -> None:
        flipped = bytearray(content)
        flipped[::1000] = bytes(b ^ 0xFF for b in flipped[::1000])
        self.pieces = [bytes(flipped[o : o + piece_size]) for o in range(0, len(flipped), piece_size)]
        self.served = 0

    def digest(self, number: int) -> str:
        return piecedigest.digest_of("blake3", [self.pieces[number]])

    async def DownloadPieces(self, request: peer_pb2.DownloadPiecesRequest, context: Any) -> AsyncIterator[bytes]:
        for number in request.piece_numbers:
            self.served += 1
            data = self.pieces[number]
            for offset in range(0, len(data), 1 << 20):
                chunk = data[offset : offset + (1 << 20)]
                yield peer_pb2.DownloadPiecesResponse(
                    piece_number=number, offset=offset, data=chunk
                ).SerializeToString()


async def test_a_reader_that_lies_is_caught_never_handed_out_and_no_longer_chosen(
    cluster: Cluster, tmp_path: Path
) -> None:
    name = "c.bin"
    data = (cluster.origin.root / name).read_bytes()
    piece_size = 4 << 20
    liar = LyingReader(data, piece_size)
    server = new_server()
    add_peer_method(server, "DownloadPieces", liar.DownloadPieces, peer_pb2.DownloadPiecesRequest.FromString)
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
            outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
            outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=registered.peer_id, window=4))

            async def requests() -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
                while (message := await outgoing.get()) is not None:
                    yield message

            stream = stub.SyncPieces(requests())
            events = [await stream.read(), await stream.read()]
            assert isinstance(events[1], scheduler_pb2.SyncPiecesResponse), events
            assert events[1].WhichOneof("event") == "back_to_source", events
            assert events[1].back_to_source.offer_pieces and events[1].back_to_source.piece_digest == "blake3"
            results = [
                scheduler_pb2.PieceResult(piece_number=n, success=True, digest=liar.digest(n))
                for n in range(len(liar.pieces))
            ]
            origin = scheduler_pb2.OriginAnswer(content_length=len(data), piece_size=piece_size)
            outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=registered.peer_id, origin=origin))
            outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=registered.peer_id, results=results))

            cluster.origin.reset()
            daemon = cluster.daemons[2]
            out = tmp_path / "c.bin"
            command = (cluster.origin.url(name), "-o", str(out), "--daemon", daemon.endpoint)
            failed = await asyncio.to_thread(dfget, *command, "--digest", cluster.digests[name])
            assert failed.returncode != 0 and "digest" in failed.stderr, failed.stderr + cluster.logs()
            assert not out.exists(), "never handed out"
            assert liar.served == len(liar.pieces)
            assert "content digest mismatch task=" in cluster.supernode.log(), cluster.logs()

            # Asked again: the content comes from the origin, checked, and the liar is not asked for a piece.
            again = await asyncio.to_thread(dfget, *command, "--digest", cluster.digests[name])
            assert again.returncode == 0, again.stderr + cluster.logs()
            assert out.read_bytes() == data
            assert liar.served == len(liar.pieces)
            assert cluster.origin.bytes_served(name) == len(data)
            outgoing.put_nowait(None)
            stream.cancel()
    finally:
        await server.stop(None)


async def test_stream_task_is_no_longer_served(cluster: Cluster, tmp_path: Path) -> None:
    """It streamed any task's whole content to whoever asked (for the seed's copy, which is gone)."""
    daemon = cluster.daemons[0]
    get(cluster, daemon, "a.bin", tmp_path / "a.bin")
    tid = task_id(cluster.origin.url("a.bin"), cluster.digests["a.bin"], (), "")
    async with grpc.aio.insecure_channel(f"{daemon.ip}:{daemon.port}") as channel:
        method = channel.unary_stream(
            "/dandelion.peer.v1.PeerService/StreamTask",
            request_serializer=peer_pb2.StreamTaskRequest.SerializeToString,
            response_deserializer=peer_pb2.StreamTaskResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in method(peer_pb2.StreamTaskRequest(task_id=tid), timeout=10):
                pass
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
