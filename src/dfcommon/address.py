"""Where a peer serves dandelion.peer.v1.PeerService."""

from __future__ import annotations

from dataclasses import dataclass

from dfcommon.sizes import hostport


@dataclass(frozen=True)
class PeerAddress:
    """A peer's id and the address of its PeerService."""

    peer_id: str
    ip: str
    port: int

    @property
    def target(self) -> str:
        """gRPC target of its PeerService."""
        return hostport(self.ip, self.port)
