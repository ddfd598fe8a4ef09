"""The real supernode in-process with a real origin: registration, SyncPieces, downloads from its in-process seed
peer (a dfdaemon --seed on the supernode's port), origin errors, hosts.

RegisterTask answers at once (length unknown, PENDING): the seed peer ordered for the task reads the origin and the
length follows on the peer's stream (TaskInfo). A task is never SUCCEEDED: it is PENDING, RUNNING or FAILED, and its
seed_pieces are those of the best-stocked seed peer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from conftest import Running, make_config, started
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2
from dandelion.scheduler.v1 import scheduler_pb2
from origin_server import Origin

from dfcommon import piecedigest
from dfcommon.channels import channel
from dfcommon.pieces import CHUNK_SIZE, piece_size_for
from supernode.app import Supernode
from supernode.resource.host import INITIAL_PIECES

PIECE = 64 << 10


async def seed_hosts(node: Running) -> list[scheduler_pb2.HostInfo]:
    """The hosts that are seed peers (the supernode's own in-process one)."""
    hosts = (await node.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())).hosts
    return [h for h in hosts if h.seed]


async def plain_hosts(node: Running) -> list[scheduler_pb2.HostInfo]:
    """The registered hosts but the seed peers."""
    hosts = (await node.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())).hosts
    return [h for h in hosts if not h.seed]


async def wait_for_task(
    node: Running, task_id: str, done: Callable[[scheduler_pb2.GetTaskResponse], bool], within: float = 20
) -> scheduler_pb2.GetTaskResponse:
    """GetTask until done says so."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        got = await node.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=task_id))
        if done(got):
            return got
        assert asyncio.get_running_loop().time() < deadline, f"task never got there: {got}"
        await asyncio.sleep(0.05)


async def back_to_source_reason(stream: PeerStream) -> tuple[list[str], str]:
    """The stream's events up to the first back_to_source (not fetching what is assigned), and its reason."""
    events: list[str] = []
    async for message in stream.call:
        events.append(str(message.WhichOneof("event")))
        if events[-1] == "back_to_source":
            stream.close()
            stream.call.cancel()
            return events, message.back_to_source.reason
    raise AssertionError(f"the stream ended without back_to_source: {events}")


async def register_host(node: Running, ip: str = "127.0.0.1", port: int = 1, location: str = "") -> str:
    host = scheduler_pb2.HostInfo(hostname="h", ip=ip, port=port, upload_slots=4, location=location)
    reply = await node.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))
    return str(reply.host_id)


async def register_task(node: Running, host_id: str, url: str, **meta: object) -> scheduler_pb2.RegisterTaskResponse:
    url_meta = common_pb2.UrlMeta(url=url, **meta)  # type: ignore[arg-type]
    request = scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=url_meta)
    reply: scheduler_pb2.RegisterTaskResponse = await node.scheduler.RegisterTask(request)
    return reply


Access = tuple[str, common_pb2.AccessGrant]  # a host id and the access grant RegisterTask gave it for a task


def access_of(host_id: str, reply: scheduler_pb2.RegisterTaskResponse) -> Access:
    """The host's grant from its RegisterTask reply."""
    assert reply.grant.claims and reply.grant.signature, "RegisterTask gave no access grant"
    return host_id, reply.grant


async def granted(node: Running, url: str, **meta: object) -> Access:
    """An access grant got the honest way: a host registers, then registers the task."""
    host_id = await register_host(node)
    return access_of(host_id, await register_task(node, host_id, url, **meta))


async def download(
    node: Running, task_id: str, numbers: list[int], access: Access | None, target: grpc.aio.Channel | None = None
) -> dict[int, bytes]:
    """The pieces from the in-process seed peer (or target), asked with access (None: no grant)."""
    from dandelion.peer.v1 import peer_pb2_grpc

    stub = node.peer if target is None else peer_pb2_grpc.PeerServiceStub(target)
    got: dict[int, bytearray] = {}
    host_id, grant = access if access is not None else ("", None)
    request = peer_pb2.DownloadPiecesRequest(
        task_id=task_id, piece_numbers=numbers, requester_peer_id="t", requester_host_id=host_id, grant=grant
    )
    async for chunk in stub.DownloadPieces(request):
        assert len(chunk.data) <= 1 << 20
        buf = got.setdefault(chunk.piece_number, bytearray())
        assert chunk.offset == len(buf)
        buf += chunk.data
    return {n: bytes(b) for n, b in got.items()}


class PeerStream:
    """One peer's SyncPieces stream, driven by a test."""

    def __init__(self, node: Running, peer_id: str, window: int = 8, held: list[int] | None = None) -> None:
        self.node = node
        self.peer_id = peer_id
        self.outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
        first = scheduler_pb2.SyncPiecesRequest(
            peer_id=peer_id,
            window=window,
            results=[scheduler_pb2.PieceResult(piece_number=n, success=True) for n in held or []],
        )
        self.outgoing.put_nowait(first)
        self.call = node.scheduler.SyncPieces(self._requests())

    async def _requests(self) -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
        while (message := await self.outgoing.get()) is not None:
            yield message

    def report(self, results: list[scheduler_pb2.PieceResult]) -> None:
        self.outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, results=results))

    def close(self) -> None:
        self.outgoing.put_nowait(None)


async def fetch_all(
    node: Running, stream: PeerStream, task_id: str, body: bytes, access: Access
) -> list[scheduler_pb2.SyncPiecesResponse]:
    """Follow assignments, download from the named parent, verify, report; until the stream ends."""
    seen: list[scheduler_pb2.SyncPiecesResponse] = []
    async for message in stream.call:
        seen.append(message)
        if message.WhichOneof("event") != "assignments":
            continue
        results = []
        for a in message.assignments.assignments:
            target = channel(f"{a.parent.ip}:{a.parent.port}")
            try:
                pieces = await download(node, task_id, [a.piece.number], access, target)
            finally:
                await target.close(None)
            data = pieces[a.piece.number]
            algorithm = a.piece.digest.partition(":")[0]
            assert algorithm in piecedigest.ALGORITHMS
            assert a.piece.digest == piecedigest.digest_of(algorithm, [data])
            assert a.piece.sha256 == piecedigest.legacy_sha256(a.piece.digest)  # set only for sha256 digests
            assert data == body[a.piece.offset : a.piece.offset + a.piece.size]
            results.append(
                scheduler_pb2.PieceResult(piece_number=a.piece.number, parent_peer_id=a.parent.peer_id, success=True)
            )
        stream.report(results)
    stream.close()
    return seen


async def test_register_sync_and_download_from_seed(supernode: Running, origin: Origin) -> None:
    body = os.urandom(5 * PIECE - 123)
    origin.blobs["/blob"] = body
    host_id = await register_host(supernode)
    reply = await register_task(supernode, host_id, f"{origin.base}/blob")
    # Answered at once: the seed peer ordered for the task has not read the origin yet.
    assert reply.task.content_length == -1
    assert reply.task.state == common_pb2.TASK_STATE_PENDING
    stream = PeerStream(supernode, reply.peer_id, window=2)
    seen = await asyncio.wait_for(fetch_all(supernode, stream, reply.task.task_id, body, access_of(host_id, reply)), 20)
    assert seen[0].WhichOneof("event") == "task"
    told = [m.task for m in seen if m.WhichOneof("event") == "task"]
    assert (told[-1].content_length, told[-1].piece_size, told[-1].piece_count) == (len(body), PIECE, 5)
    assert told[-1].state == common_pb2.TASK_STATE_RUNNING
    assigned = [a for m in seen if m.WhichOneof("event") == "assignments" for a in m.assignments.assignments]
    assert sorted(a.piece.number for a in assigned) == [0, 1, 2, 3, 4]
    assert all(a.parent.ip == "127.0.0.1" and a.parent.port == supernode.node.port for a in assigned)
    assert all(a.piece.digest.startswith("blake3:") and not a.piece.sha256 for a in assigned)  # the default
    assert max(len(m.assignments.assignments) for m in seen if m.WhichOneof("event") == "assignments") <= 2
    # The seed peer reports its result once it stored everything (maybe after the consumer finished).
    done = (common_pb2.PEER_STATE_SUCCEEDED,)
    got = await wait_for_task(supernode, reply.task.task_id, lambda got: {p.state for p in got.peers} == set(done))
    assert got.task.state == common_pb2.TASK_STATE_RUNNING  # a task is never SUCCEEDED: its peers are
    assert got.task.seed_pieces == 5 and got.task.peer_count == 2  # the seed peer's peer counts
    by_id = {p.peer_id: p for p in got.peers}
    assert by_id[reply.peer_id].piece_count == 5
    assert by_id[reply.peer_id].pieces == bytes([0b11111])
    assert by_id[reply.peer_id].state == common_pb2.PEER_STATE_SUCCEEDED
    (seed,) = [p for p in got.peers if p.is_seed]
    # The in-process seed peer: a registered seed host serving on the supernode's port.
    assert [(h.ip, h.port) for h in await seed_hosts(supernode)] == [("127.0.0.1", supernode.node.port)]
    assert (seed.address.ip, seed.address.port) == ("127.0.0.1", supernode.node.port)
    assert seed.piece_count == 5
    assert seed.uploads_ok == 5
    assert seed.state == common_pb2.PEER_STATE_SUCCEEDED
    assert origin.hits["/blob"] == 1


async def test_sha256_piece_digests_fill_the_deprecated_field_too(tmp_path: Path, origin: Origin) -> None:
    """supernode --piece-digest sha256: for clients without BLAKE3, and for those that read PieceInfo.sha256."""
    body = os.urandom(3 * PIECE)
    origin.blobs["/blob"] = body
    async with started(make_config(tmp_path / "data", piece_digest="sha256")) as running:
        host_id = await register_host(running)
        reply = await register_task(running, host_id, f"{origin.base}/blob")
        stream = PeerStream(running, reply.peer_id)
        seen = await asyncio.wait_for(
            fetch_all(running, stream, reply.task.task_id, body, access_of(host_id, reply)), 20
        )
    assigned = [a for m in seen if m.WhichOneof("event") == "assignments" for a in m.assignments.assignments]
    assert sorted(a.piece.number for a in assigned) == [0, 1, 2]
    for a in assigned:
        data = body[a.piece.offset : a.piece.offset + a.piece.size]
        assert a.piece.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        assert a.piece.sha256 == hashlib.sha256(data).hexdigest()


async def test_second_peer_fetches_from_first_peer_not_seed(supernode: Running, origin: Origin) -> None:
    body = os.urandom(4 * PIECE)
    origin.blobs["/shared"] = body
    first_host = await register_host(supernode, ip="127.0.0.2", port=4000)
    first = await register_task(supernode, first_host, f"{origin.base}/shared")
    # Once the seed peer told the length, the first peer reports it holds everything (e.g. from its cache): it
    # becomes a parent.
    await wait_for_task(supernode, first.task.task_id, lambda got: got.task.piece_count == 4)
    stream = PeerStream(supernode, first.peer_id, held=[0, 1, 2, 3])
    messages = [m async for m in stream.call]
    stream.close()
    assert [m.WhichOneof("event") for m in messages] == ["task"]
    second_host = await register_host(supernode, ip="127.0.0.3", port=4000)
    second = await register_task(supernode, second_host, f"{origin.base}/shared")
    # A window within the first peer's upload budget before its rate is measured (INITIAL_PIECES).
    stream2 = PeerStream(supernode, second.peer_id, window=INITIAL_PIECES)
    assigned: list[scheduler_pb2.PieceAssignment] = []

    async def collect() -> None:
        async for message in stream2.call:
            if message.WhichOneof("event") == "assignments":
                assigned.extend(message.assignments.assignments)  # one or more messages
                if len(assigned) >= INITIAL_PIECES:
                    return

    await asyncio.wait_for(collect(), 10)
    stream2.close()
    stream2.call.cancel()
    assert len(assigned) == INITIAL_PIECES
    assert {a.parent.peer_id for a in assigned} == {first.peer_id}
    assert {a.parent.ip for a in assigned} == {"127.0.0.2"}


async def test_content_without_length(supernode: Running, origin: Origin) -> None:
    body = os.urandom(3 * PIECE + 7)
    origin.blobs["/nolen"] = body
    origin.no_length.add("/nolen")
    host_id = await register_host(supernode)
    reply = await register_task(supernode, host_id, f"{origin.base}/nolen")
    assert reply.task.content_length in (-1, len(body))
    stream = PeerStream(supernode, reply.peer_id)
    seen = await asyncio.wait_for(fetch_all(supernode, stream, reply.task.task_id, body, access_of(host_id, reply)), 20)
    tasks = [m.task for m in seen if m.WhichOneof("event") == "task"]
    assert tasks[-1].content_length == len(body)
    assert tasks[-1].piece_count == 4


async def test_byte_range(supernode: Running, origin: Origin) -> None:
    body = os.urandom(4 * PIECE)
    origin.blobs["/ranged"] = body
    host_id = await register_host(supernode)
    reply = await register_task(supernode, host_id, f"{origin.base}/ranged", range="100-70099")
    assert reply.task.content_length == -1
    stream = PeerStream(supernode, reply.peer_id)
    seen = await asyncio.wait_for(
        fetch_all(supernode, stream, reply.task.task_id, body[100:70100], access_of(host_id, reply)), 20
    )
    told = [m.task for m in seen if m.WhichOneof("event") == "task"]
    assert (told[-1].content_length, told[-1].piece_count) == (70000, 2)


@pytest.mark.parametrize(("path", "status"), [("/missing", "404"), ("/secret", "401")])
async def test_origin_errors_send_peers_to_source_and_fail_preheat(
    tmp_path: Path, origin: Origin, path: str, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An origin error does not fail RegisterTask when the access check is off (with it, the registration is
    refused first: test_register_access): the seed peer's download fails, the peers of content without a digest are
    sent to the origin themselves, and a preheat fails UNAVAILABLE with the seed peer's error (at once: the seed
    peer takes the preheat's order though its failed download may still be winding down)."""
    caplog.set_level(logging.INFO)
    origin.auth["/secret"] = "Bearer right"
    origin.blobs["/secret"] = b"x"
    async with started(make_config(tmp_path / "data", access_check=False)) as supernode:
        host_id = await register_host(supernode)
        url = f"http://user:pw@127.0.0.1:{origin.server.server_address[1]}{path}"
        reply = await register_task(supernode, host_id, url)
        assert reply.task.state == common_pb2.TASK_STATE_PENDING
        events, reason = await asyncio.wait_for(back_to_source_reason(PeerStream(supernode, reply.peer_id)), 20)
        assert events[0] == "task"
        assert "no seed peer is left" in reason
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            # Well within the supernode's order timeout (10 s), which a lost order would wait out.
            await supernode.scheduler.PreheatTask(
                scheduler_pb2.PreheatTaskRequest(url_meta=common_pb2.UrlMeta(url=url)), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = caught.value.details() or ""
    assert status in details
    assert f"127.0.0.1:{origin.server.server_address[1]}{path}" in details
    assert "pw" not in details
    assert "seed order task=" in caplog.text and "pw@" not in caplog.text


async def test_unreachable_origin_sends_peers_to_source_and_fails_preheat(tmp_path: Path) -> None:
    """With the access check off (with it, the registration is refused: test_register_access)."""
    async with started(make_config(tmp_path / "data", access_check=False)) as supernode:
        host_id = await register_host(supernode)
        reply = await register_task(supernode, host_id, "http://127.0.0.1:9/x")
        _, reason = await asyncio.wait_for(back_to_source_reason(PeerStream(supernode, reply.peer_id)), 20)
        assert "no seed peer is left" in reason
        meta = common_pb2.UrlMeta(url="http://127.0.0.1:9/x")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await supernode.scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta), timeout=20)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == "origin unreachable or not allowed: http://127.0.0.1:9/x"
        # The server keeps running.
        assert [h.host_id for h in await plain_hosts(supernode)] == [host_id]


async def test_digest_mismatch_fails_and_serves_nothing(supernode: Running, origin: Origin) -> None:
    origin.blobs["/bad"] = os.urandom(2 * PIECE)
    meta = common_pb2.UrlMeta(url=f"{origin.base}/bad", digest="sha256:" + "0" * 64)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await supernode.scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the seed peer's error
    assert (caught.value.details() or "").startswith("digest mismatch: got sha256:")
    listed = await supernode.scheduler.ListTasks(scheduler_pb2.ListTasksRequest())
    (task,) = listed.tasks
    assert task.seed_pieces == 0  # the seed peer's digests were dropped with its content
    got = await supernode.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=task.task_id))
    # The seed peer's peer failed (or already left the task).
    assert {(p.is_seed, p.state) for p in got.peers} <= {(True, common_pb2.PEER_STATE_FAILED)}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(supernode, task.task_id, [0], None)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # no host registered the task: no grant


async def test_preheat_with_matching_digest(supernode: Running, origin: Origin) -> None:
    body = os.urandom(2 * PIECE + 1)
    origin.blobs["/good"] = body
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    meta = common_pb2.UrlMeta(url=f"{origin.base}/good", digest=digest)
    reply = await supernode.scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta))
    assert reply.task.state == common_pb2.TASK_STATE_RUNNING
    assert reply.task.digest == digest
    assert reply.task.piece_count == 3
    assert reply.task.seed_pieces == 3
    pieces = await download(supernode, reply.task.task_id, [2, 0, 1], await granted(supernode, meta.url, digest=digest))
    assert pieces[0] + pieces[1] + pieces[2] == body


@pytest.mark.parametrize(
    ("meta", "fragment"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "scheme"),
        ({"url": "http://127.0.0.1/" + "a" * 9000}, "longer"),
        ({"url": "http://127.0.0.1/x", "digest": "sha256:zz"}, "digest"),
        ({"url": "http://127.0.0.1/x", "range": "9-1"}, "range"),
        ({"url": "http://127.0.0.1/x", "headers": {f"h{i}": "v" for i in range(65)}}, "headers"),
        ({"url": "http://127.0.0.1/x", "headers": {"big": "v" * 9000}}, "header"),
        ({"url": "http://127.0.0.1/x", "headers": {"bad name": "v"}}, "header name"),
    ],
)
async def test_malformed_url_meta_is_invalid_argument(
    supernode: Running, meta: dict[str, object], fragment: str
) -> None:
    host_id = await register_host(supernode)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register_task(supernode, host_id, **meta)  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (caught.value.details() or "")
    # The server keeps running, and no task was made.
    assert [h.host_id for h in await plain_hosts(supernode)] == [host_id]
    assert list((await supernode.scheduler.ListTasks(scheduler_pb2.ListTasksRequest())).tasks) == []


async def test_unknown_ids_are_not_found(supernode: Running) -> None:
    calls: list[Awaitable[object]] = [
        supernode.scheduler.HeartbeatHost(scheduler_pb2.HeartbeatHostRequest(host_id="nope")),
        supernode.scheduler.LeaveHost(scheduler_pb2.LeaveHostRequest(host_id="nope")),
        supernode.scheduler.ReportPeerResult(scheduler_pb2.ReportPeerResultRequest(peer_id="nope")),
        supernode.scheduler.LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id="nope")),
        supernode.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id="nope")),
        register_task(supernode, "nope", "http://127.0.0.1/x"),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    stream = PeerStream(supernode, "nope")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream.call:
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(supernode, "nope", [0], None)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # refused before the task is looked up


async def test_window_too_large_and_bad_host(supernode: Running, origin: Origin) -> None:
    origin.blobs["/w"] = b"w" * 10
    host_id = await register_host(supernode)
    reply = await register_task(supernode, host_id, f"{origin.base}/w")
    stream = PeerStream(supernode, reply.peer_id, window=257)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream.call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = scheduler_pb2.HostInfo(hostname="h", ip="not-an-ip", port=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await supernode.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=bad))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_restart_reuses_cache_and_keeps_headers_off_disk_and_logs(
    tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = os.urandom(3 * PIECE + 5)
    origin.blobs["/cached"] = body
    origin.auth["/cached"] = "Bearer s3cret-token"
    data_dir = tmp_path / "data"
    meta = common_pb2.UrlMeta(url=f"{origin.base}/cached", headers={"Authorization": "Bearer s3cret-token"})
    for _ in range(2):
        node = Supernode(make_config(data_dir))
        port = await node.start()
        chan = channel(f"127.0.0.1:{port}")
        try:
            running = Running(node, chan)
            reply = await running.scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta))
            assert (reply.task.state, reply.task.seed_pieces) == (common_pb2.TASK_STATE_RUNNING, 4)
            access = await granted(running, meta.url, headers=dict(meta.headers))
            pieces = await download(running, reply.task.task_id, [0, 1, 2, 3], access)
            assert b"".join(pieces[n] for n in range(4)) == body
        finally:
            await chan.close(None)
            await node.stop(grace=1)
    assert origin.hits["/cached"] == 1  # the second supernode's seed peer offered its cached copy
    assert origin.headers["/cached"]["Authorization"] == "Bearer s3cret-token"
    files = list(data_dir.rglob("*"))
    assert any(f.suffix == ".json" and f.is_relative_to(data_dir / "seed-peer") for f in files)
    for f in files:
        if f.is_file():
            assert b"s3cret" not in f.read_bytes()
    assert "s3cret" not in caplog.text
    assert "task=" in caplog.text


async def test_host_missing_heartbeats_is_dropped(tmp_path: Path, origin: Origin) -> None:
    origin.blobs["/hb"] = os.urandom(PIECE)
    node = Supernode(make_config(tmp_path / "d", heartbeat_interval_ms=100))
    port = await node.start()
    chan = channel(f"127.0.0.1:{port}")
    try:
        running = Running(node, chan)
        host_id = await register_host(running)
        await register_task(running, host_id, f"{origin.base}/hb")
        await asyncio.sleep(0.8)
        assert await plain_hosts(running) == []
        assert len(await seed_hosts(running)) == 1  # the in-process seed peer heart-beats
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await running.scheduler.HeartbeatHost(scheduler_pb2.HeartbeatHostRequest(host_id=host_id))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await running.scheduler.ListTasks(scheduler_pb2.ListTasksRequest())
        assert listed.tasks[0].peer_count == 1  # the seed peer's
        got = await running.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=listed.tasks[0].task_id))
        assert [p.is_seed for p in got.peers] == [True]
    finally:
        await chan.close(None)
        await node.stop(grace=1)


async def test_seed_failing_midway_sends_peers_back_to_source(supernode: Running, origin: Origin) -> None:
    origin.blobs["/cut"] = os.urandom(4 * PIECE)
    origin.cut["/cut"] = 1.0  # the origin sends half, then breaks the connection
    host_id = await register_host(supernode)
    reply = await register_task(supernode, host_id, f"{origin.base}/cut")
    assert reply.task.content_length == -1
    stream = PeerStream(supernode, reply.peer_id, window=1)
    events, reason = await asyncio.wait_for(back_to_source_reason(stream), 30)
    assert events[0] == "task"
    assert "no seed peer is left" in reason
    got = await supernode.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=reply.task.task_id))
    assert got.task.content_length == 4 * PIECE  # the seed peer told the length before the origin broke
    states = {(p.is_seed, p.state) for p in got.peers}
    assert (False, common_pb2.PEER_STATE_BACK_TO_SOURCE) in states
    # The seed peer's peer failed (or already left the task, as a failed download does).
    assert states - {(False, common_pb2.PEER_STATE_BACK_TO_SOURCE)} <= {(True, common_pb2.PEER_STATE_FAILED)}
    # A later registration orders the seed peer again (the origin is asked again), and it reads all of it.
    del origin.cut["/cut"]
    await register_task(supernode, host_id, f"{origin.base}/cut")
    got = await wait_for_task(supernode, reply.task.task_id, lambda got: got.task.seed_pieces == 4)
    assert got.task.state == common_pb2.TASK_STATE_RUNNING
    assert origin.hits["/cut"] == 2


async def test_seed_upload_slots_are_bounded(tmp_path: Path, origin: Origin) -> None:
    body = os.urandom(8 << 20)
    origin.blobs["/big"] = body
    piece = piece_size_for(len(body), 4 << 20)  # small content: pieces halved from the base
    node = Supernode(make_config(tmp_path / "d", seed_upload_slots=1, piece_size=4 << 20))
    port = await node.start()
    chan = channel(f"127.0.0.1:{port}")
    try:
        running = Running(node, chan)
        meta = common_pb2.UrlMeta(url=f"{origin.base}/big")
        reply = await running.scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta))
        access = await granted(running, meta.url)
        request = peer_pb2.DownloadPiecesRequest(
            task_id=reply.task.task_id,
            piece_numbers=list(range(len(body) // piece)),
            requester_host_id=access[0],
            grant=access[1],
        )  # 8 MiB asked for and not read: more than flow control lets the seed peer send, so its slot stays taken
        slow = running.peer.DownloadPieces(request)
        first = await slow.read()
        assert isinstance(first, peer_pb2.DownloadPiecesResponse)
        assert first.piece_number == 0 and len(first.data) == min(piece, CHUNK_SIZE)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await download(running, reply.task.task_id, [0], access)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        slow.cancel()
        await asyncio.sleep(0.2)
        pieces = await download(running, reply.task.task_id, [1], access)
        assert pieces[1] == body[piece : 2 * piece]
    finally:
        await chan.close(None)
        await node.stop(grace=1)


async def test_seed_peer_serving_a_corrupted_piece_is_distrusted(supernode: Running, origin: Origin) -> None:
    """A BAD_DIGEST report against the seed peer distrusts it like any parent: it is no parent and no reader of the
    task any more, and with no other seed peer the peers of content without a digest read the origin themselves
    (instead of waiting for pieces nobody trusted holds)."""
    body = os.urandom(2 * PIECE)
    origin.blobs["/rot"] = body
    meta = common_pb2.UrlMeta(url=f"{origin.base}/rot")
    preheated = await supernode.scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta))
    data_file = supernode.node.config.data_dir / "seed-peer" / "tasks" / preheated.task.task_id / "data"
    with data_file.open("r+b") as f:
        f.seek(PIECE + 10)
        f.write(b"\x00rot\x00")
    host_id = await register_host(supernode)
    reply = await register_task(supernode, host_id, f"{origin.base}/rot")
    assert reply.task.seed_pieces == 2
    stream = PeerStream(supernode, reply.peer_id, window=2)
    events: list[str] = []
    reason = ""
    async for message in stream.call:
        events.append(str(message.WhichOneof("event")))
        if message.WhichOneof("event") == "assignments":
            failures = [
                scheduler_pb2.PieceResult(
                    piece_number=a.piece.number,
                    parent_peer_id=a.parent.peer_id,
                    success=False,
                    failure=scheduler_pb2.PIECE_FAILURE_BAD_DIGEST,
                )
                for a in message.assignments.assignments
                if a.piece.number == 1
            ]
            stream.report(failures)
        if message.WhichOneof("event") == "back_to_source":
            reason = message.back_to_source.reason
            break
    stream.close()
    stream.call.cancel()
    assert events[-1] == "back_to_source"
    assert "no seed peer is left" in reason
    got = await supernode.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=reply.task.task_id))
    assert got.task.seed_pieces == 0  # a distrusted seed peer stocks nothing
    (seed,) = [p for p in got.peers if p.is_seed]
    assert seed.uploads_failed == 1
    states = {p.peer_id: p.state for p in got.peers if not p.is_seed}
    assert states == {reply.peer_id: common_pb2.PEER_STATE_BACK_TO_SOURCE}


async def test_stop_ends_open_streams_with_unavailable(tmp_path: Path, origin: Origin) -> None:
    origin.blobs["/stop"] = os.urandom(PIECE)
    node = Supernode(make_config(tmp_path / "d"))
    port = await node.start()
    chan = channel(f"127.0.0.1:{port}")
    try:
        running = Running(node, chan)
        host_id = await register_host(running)
        reply = await register_task(running, host_id, f"{origin.base}/stop")
        stream = PeerStream(running, reply.peer_id, window=1)
        events = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for message in stream.call:
                events.append(message.WhichOneof("event"))
                if len(events) == 1:
                    started = asyncio.get_running_loop().time()
                    stopping = asyncio.create_task(node.stop(grace=10))
        await stopping
        assert events[0] == "task"
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await chan.close(None)


async def test_leave_task_and_report_result(supernode: Running, origin: Origin) -> None:
    origin.blobs["/leave"] = os.urandom(2 * PIECE)
    host_id = await register_host(supernode)
    stayer = await register_task(supernode, host_id, f"{origin.base}/leave")
    other_host = await register_host(supernode, ip="127.0.0.2", port=7)
    leaver = await register_task(supernode, other_host, f"{origin.base}/leave")
    stream = PeerStream(supernode, leaver.peer_id, window=1)
    events = []
    async for message in stream.call:  # ends normally once the peer left
        events.append(message.WhichOneof("event"))
        if events[-1] == "assignments":
            await supernode.scheduler.LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=leaver.peer_id))
    stream.close()
    assert events[0] == "task" and "assignments" in events and set(events) == {"task", "assignments"}
    assert await stream.call.code() == grpc.StatusCode.OK
    await supernode.scheduler.ReportPeerResult(
        scheduler_pb2.ReportPeerResultRequest(peer_id=stayer.peer_id, success=False, error="disk full")
    )
    got = await supernode.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=stayer.task.task_id))
    states = {p.peer_id: p.state for p in got.peers if not p.is_seed}
    assert states == {stayer.peer_id: common_pb2.PEER_STATE_FAILED}
    assert got.task.peer_count == 2  # the stayer and the seed peer's
    seed = next(p for p in got.peers if p.is_seed)
    assert seed.address.ip == "127.0.0.1" and seed.address.port == supernode.node.port
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await supernode.scheduler.LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=leaver.peer_id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_heartbeats_keep_a_host(tmp_path: Path) -> None:
    node = Supernode(make_config(tmp_path / "d", heartbeat_interval_ms=100))
    port = await node.start()
    chan = channel(f"127.0.0.1:{port}")
    try:
        running = Running(node, chan)
        host_id = await register_host(running, location="r1|z1")
        for _ in range(8):
            await asyncio.sleep(0.1)
            await running.scheduler.HeartbeatHost(scheduler_pb2.HeartbeatHostRequest(host_id=host_id))
        hosts = await plain_hosts(running)
        assert [(h.host_id, h.location) for h in hosts] == [(host_id, "r1|z1")]
        assert hosts[0].idle_seconds < 0.3
        await running.scheduler.LeaveHost(scheduler_pb2.LeaveHostRequest(host_id=host_id))
        assert await plain_hosts(running) == []
    finally:
        await chan.close(None)
        await node.stop(grace=1)
