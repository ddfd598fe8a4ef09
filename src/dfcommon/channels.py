"""gRPC client channels with the project's message limits (light: no health or reflection imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from dfcommon.pieces import CHUNK_SIZE

if TYPE_CHECKING:
    from dfcommon.tls import TlsConfig

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


def channel(target: str, own_connection: bool = False, tls: TlsConfig | None = None) -> grpc.aio.Channel:
    """A grpc.aio channel with the project's limits ("HOST:PORT" or "unix:PATH"), mutual TLS when tls is given
    (dfcommon.tls), else plaintext. Channels to one target share one connection unless own_connection: the
    supernode's control calls (heartbeats) then never wait behind the piece data its seed sends on the other one."""
    options: list[tuple[str, int | str]] = [*CHANNEL_OPTIONS]
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=[*options, *tls.channel_options()])
