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


def channel(target: str) -> grpc.aio.Channel:
    """An insecure grpc.aio channel with the project's limits ("HOST:PORT" or "unix:PATH")."""
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
