"""Small typed helpers over grpc.aio that its type stubs lack."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import grpc
from dandelion.peer.v1 import peer_pb2_grpc

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
