"""Small typed helpers over grpc.aio that its type stubs lack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import grpc
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc

from dfcommon.wire import decode_with_payload

if TYPE_CHECKING:
    from dandelion.peer.v1.peer_pb2_grpc import DaemonServiceAsyncStub, PeerServiceAsyncStub

EOF = cast(object, grpc.aio.EOF)  # type: ignore[attr-defined]  # end of a stream's messages


def peer_stub(channel: grpc.aio.Channel) -> PeerServiceAsyncStub:
    """An asyncio PeerService stub."""
    stub: PeerServiceAsyncStub = peer_pb2_grpc.PeerServiceStub(channel)
    return stub


def daemon_stub(channel: grpc.aio.Channel) -> DaemonServiceAsyncStub:
    """An asyncio DaemonService stub."""
    stub: DaemonServiceAsyncStub = peer_pb2_grpc.DaemonServiceStub(channel)
    return stub


PieceChunk = tuple[peer_pb2.DownloadPiecesResponse, memoryview]  # the chunk without data, and its data
ContentChunk = tuple[peer_pb2.DownloadResponse, memoryview]  # the message without data, and its data


def _piece_chunk(raw: bytes) -> PieceChunk:
    return decode_with_payload(raw, peer_pb2.DownloadPiecesResponse, 3)


def _content_chunk(raw: bytes) -> ContentChunk:
    return decode_with_payload(raw, peer_pb2.DownloadResponse, 5)


def piece_chunks(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
    """PeerService.DownloadPieces whose messages arrive as PieceChunk (data not copied out of gRPC's buffer)."""
    return channel.unary_stream(
        "/dandelion.peer.v1.PeerService/DownloadPieces",
        request_serializer=peer_pb2.DownloadPiecesRequest.SerializeToString,
        response_deserializer=_piece_chunk,
    )


def content_chunks(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
    """DaemonService.Download whose messages arrive as ContentChunk (data not copied out of gRPC's buffer)."""
    return channel.unary_stream(
        "/dandelion.peer.v1.DaemonService/Download",
        request_serializer=peer_pb2.DownloadRequest.SerializeToString,
        response_deserializer=_content_chunk,
    )
