"""What every download on this host shares: storage, supernodes, channels, HTTP client, limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from dfcommon.channels import PIECE_RECEIVE_WINDOW, channel
from dfcommon.tls import TlsConfig
from peer.origin import OriginClient
from peer.scheduler_cluster import SchedulerClient
from peer.storage import Storage
from peer.tokenbucket import TokenBucket

# RegisterTask's deadline. The supernode answers at once when it keeps up; a fleet starting at once can leave it
# seconds or minutes behind, and a download that took it for gone would fail over, with one supernode to the origin.
# One that froze, or whose link broke, fails the call sooner: its connection closes within grpc's keepalive (20 s).
REGISTER_TIMEOUT_S = 180.0


class ChannelPool:
    """One gRPC channel per parent address, reused across pieces and tasks (mutual TLS when tls is given)."""

    def __init__(self, tls: TlsConfig | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.tls = tls

    def get(self, target: str) -> grpc.aio.Channel:
        """The channel to target, created on first use."""
        ch = self._channels.get(target)
        if ch is None:
            ch = self._channels[target] = channel(target, tls=self.tls, receive_window=PIECE_RECEIVE_WINDOW)
        return ch

    async def close(self) -> None:
        """Close every channel."""
        channels, self._channels = self._channels, {}
        for ch in channels.values():
            await ch.close(None)


@dataclass
class PeerContext:
    """Shared state and tunables of the peer's downloads."""

    storage: Storage
    scheduler: SchedulerClient | None
    http: OriginClient  # back-to-source
    download_bucket: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    channels: ChannelPool = field(default_factory=ChannelPool)
    no_back_source: bool = False
    seed: bool = False  # a seed peer (dfdaemon --seed)
    component: str = "dfdaemon"  # the metrics' component label: "supernode" for its in-process seed peer
    window: int = 16  # pieces assigned and not yet reported (memory is bounded by streams, not the window)
    max_streams: int = 3  # concurrent DownloadPieces calls per task
    group_size: int = 4  # at most this many pieces per DownloadPieces call
    stall_timeout: float = 30.0  # seconds without any progress before giving up on the swarm
    register_timeout: float = REGISTER_TIMEOUT_S
    # task id -> (the supernode it is registered with, our peer id there), for LeaveTask on eviction
    peer_ids: dict[str, tuple[str, str]] = field(default_factory=dict)
