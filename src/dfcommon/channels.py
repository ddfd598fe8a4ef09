"""gRPC client channels with the project's message limits (light: no health or reflection imports)."""

from __future__ import annotations

import grpc

from dfcommon.pieces import CHUNK_SIZE

# Piece chunks are <= 1 MiB; leave room for framing, refuse anything far larger.
MAX_MESSAGE = CHUNK_SIZE + (64 << 10)

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.enable_retries", 0),
]


def channel(target: str, own_connection: bool = False) -> grpc.aio.Channel:
    """An insecure grpc.aio channel with the project's limits ("HOST:PORT" or "unix:PATH"). Channels to one
    target share one connection unless own_connection: the supernode's control calls (heartbeats) then never wait
    behind the piece data its seed sends on the other one."""
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)] if own_connection else CHANNEL_OPTIONS
    return grpc.aio.insecure_channel(target, options=options)
