"""The seed's copy from a source peer (PeerCopier) against a StreamTask server on loopback that behaves or lies."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from dandelion.peer.v1 import peer_pb2
from fixtures.piece_sink import RecordingSink

from dfcommon.address import PeerAddress
from dfcommon.grpcserver import add_peer_method, new_server
from dfcommon.piecedigest import digest_of
from supernode.seed.peer_copy import PeerCopier, SourceFailed

PIECE = 64 << 10
CONTENT = os.urandom(10 * PIECE + 1234)
DIGEST = "sha256:" + hashlib.sha256(CONTENT).hexdigest()
Messages = Callable[[], Iterator[peer_pb2.StreamTaskResponse]]


def honest(chunk: int = 50_000) -> Iterator[peer_pb2.StreamTaskResponse]:
    for offset in range(0, len(CONTENT), chunk):
        data = CONTENT[offset : offset + chunk]
        yield peer_pb2.StreamTaskResponse(content_length=len(CONTENT), offset=offset, data=data, piece_size=PIECE)


async def copy(tmp_path: Path, messages: Messages) -> tuple[Any, RecordingSink, bytes]:
    async def stream_task(request: peer_pb2.StreamTaskRequest, context: Any) -> AsyncIterator[bytes]:
        assert request.task_id == "t1"
        for message in messages():
            yield message.SerializeToString()

    server = new_server()
    add_peer_method(server, "StreamTask", stream_task, peer_pb2.StreamTaskRequest.FromString)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sink = RecordingSink()
    path = tmp_path / "seed.data"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    writers = ThreadPoolExecutor(2)
    try:
        copier = PeerCopier(writers, read_timeout=5)
        result = await copier.copy(PeerAddress("p1", "127.0.0.1", port), "t1", DIGEST, fd, PIECE, sink)
        return result, sink, path.read_bytes()
    finally:
        os.close(fd)
        writers.shutdown()
        await server.stop(None)


async def test_an_honest_copy_is_cut_into_pieces_and_checked(tmp_path: Path) -> None:
    for _ in range(5):  # fast writers used to race the next piece's number
        result, sink, on_disk = await copy(tmp_path, honest)
        assert on_disk == CONTENT
        assert result.sha256 == DIGEST.split(":")[1] and result.source_piece_size == PIECE
        assert sink.answers == [(len(CONTENT), PIECE)]
        assert [p.number for p in sink.pieces] == list(range(11)) and result.pieces == sink.pieces
        for piece in sink.pieces:
            assert piece.offset == piece.number * PIECE
            assert piece.digest == digest_of("blake3", (CONTENT[piece.offset : piece.offset + piece.size],))


def length_learnt_late() -> Iterator[peer_pb2.StreamTaskResponse]:
    for message in honest():
        if message.offset < 200_000:
            message.content_length = -1  # the source's origin sent no length: it knows it only at the end
        yield message


async def test_a_length_the_source_learns_late_is_fine(tmp_path: Path) -> None:
    result, sink, on_disk = await copy(tmp_path, length_learnt_late)
    assert on_disk == CONTENT and result.content_length == len(CONTENT)
    assert sink.answers == [(-1, PIECE)]


def lying() -> Iterator[peer_pb2.StreamTaskResponse]:
    for message in honest():
        if message.offset == 100_000:
            message.data = bytes(len(message.data))
        yield message


def gap() -> Iterator[peer_pb2.StreamTaskResponse]:
    for message in honest():
        if message.offset != 100_000:
            yield message


def too_long() -> Iterator[peer_pb2.StreamTaskResponse]:
    yield from honest()
    yield peer_pb2.StreamTaskResponse(content_length=len(CONTENT), offset=len(CONTENT), data=b"x")


def short() -> Iterator[peer_pb2.StreamTaskResponse]:
    for message in honest():
        if message.offset < 300_000:
            yield message


def new_length() -> Iterator[peer_pb2.StreamTaskResponse]:
    for message in honest():
        if message.offset >= 100_000:
            message.content_length += 1
        yield message


def nothing() -> Iterator[peer_pb2.StreamTaskResponse]:
    return iter(())


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (lying, "has sha256:"),
        (gap, "offset 150000, want 100000"),
        (too_long, "more than"),
        (short, "sent 300000 of"),
        (new_length, "changed the content length"),
        (nothing, "no content"),
    ],
)
async def test_a_source_that_lies_or_breaks_off_fails_the_copy(tmp_path: Path, messages: Messages, error: str) -> None:
    with pytest.raises(SourceFailed, match=error):
        await copy(tmp_path, messages)


async def test_an_unreachable_source_fails_the_copy(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "seed.data", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with ThreadPoolExecutor(1) as writers:
            copier = PeerCopier(writers, read_timeout=5)
            with pytest.raises(SourceFailed, match="UNAVAILABLE"):
                await copier.copy(PeerAddress("p1", "127.0.0.1", 1), "t1", DIGEST, fd, PIECE, RecordingSink())
    finally:
        os.close(fd)
