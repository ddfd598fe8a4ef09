"""gRPC client channels with the project's message limits (light: no health or reflection imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from dfcommon.pieces import CHUNK_SIZE

if TYPE_CHECKING:
    from dfcommon.tls import TlsConfig

# Piece chunks are <= 1 MiB; leave room for framing, refuse anything far larger.
MAX_MESSAGE = CHUNK_SIZE + (64 << 10)
RECONNECT_MAX_MS = 2_000  # the longest pause gRPC takes between attempts to connect (then +-20% jitter)

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.enable_retries", 0),
    # gRPC paces a channel's reconnects itself, 1 s growing 1.6x to 120 s, and a call on a channel waiting out that
    # pause fails at once: after a supernode was gone for 20, 60 or 150 s, its hosts registered again 17, 23 and 28 s
    # after it was back (their downloads meanwhile read the origin). Capped at RECONNECT_MAX_MS, the project's own
    # back-offs decide (a supernode's: peer.scheduler_client; a parent's: peer.piece.health), and a download that
    # asks for a connection to a supernode in its back-off (peer.scheduler_cluster) has it within about 2 s of the
    # supernode being back. An unreachable server then gets a connection attempt every 2 s or so from each channel
    # to it: a handshake refused, never a call.
    ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
]

# Piece data (DownloadPieces from a parent): each stream may hold at most this much received and not yet read by the
# dfdaemon. gRPC's default probes the bandwidth-delay product and grows the window to match what the sender pushes,
# up to tens of MiB; a receiver slower than the link (hashing and writing on a busy host) then leaves that much
# queued in gRPC, and with dfcommon.malloc's trim threshold the heap keeps its peak: a dfdaemon receiving 1 GiB from
# one parent on loopback peaked at 150 and 152 MiB RSS with it, 110 and 110 MiB with this (bench/p2p_bench.py,
# alternating), at the same speed. A fixed window bounds one stream at window / RTT: 2 GB/s at 1 ms, 200 MB/s at
# 10 ms, and a download runs several streams (peer.context.PeerContext.max_streams).
PIECE_RECEIVE_WINDOW = 2 << 20


def channel(
    target: str,
    own_connection: bool = False,
    tls: TlsConfig | None = None,
    keepalive_ms: tuple[int, int] | None = None,
    receive_window: int = 0,
) -> grpc.aio.Channel:
    """A grpc.aio channel with the project's limits ("HOST:PORT" or "unix:PATH"), mutual TLS when tls is given
    (dfcommon.tls), else plaintext. Channels to one target share one connection unless own_connection: the
    supernode's control calls (heartbeats) then never wait behind the piece data its seed sends on the other one.
    keepalive_ms: (ping every, close when unanswered within) instead of CHANNEL_OPTIONS' 20 s and 10 s.
    receive_window: a fixed receive window per stream, in bytes, instead of gRPC's probed one (see
    PIECE_RECEIVE_WINDOW)."""
    options: list[tuple[str, int | str]] = [*CHANNEL_OPTIONS]
    if keepalive_ms is not None:
        every, timeout = keepalive_ms
        options = [o for o in options if o[0] not in ("grpc.keepalive_time_ms", "grpc.keepalive_timeout_ms")]
        # Any ping unanswered for `timeout` closes the connection: grpc's own default, a minute, holds otherwise
        # whenever a ping of its flow control is in flight, and the keepalive ping then waits behind it. Found by
        # SIGSTOPping a server with calls going to it every second: the channel stayed READY for over 45 s, and
        # with this it closes 20 s after the freeze.
        options += [
            ("grpc.keepalive_time_ms", every),
            ("grpc.keepalive_timeout_ms", timeout),
            ("grpc.http2.ping_timeout_ms", timeout),
        ]
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    if receive_window:
        options += [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", receive_window)]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=[*options, *tls.channel_options()])
