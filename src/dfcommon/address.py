"""Where a peer serves dandelion.peer.v1.PeerService."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeerAddress:
    """A peer's id and the address of its PeerService."""

    peer_id: str
    ip: str
    port: int

    @property
    def target(self) -> str:
        """gRPC target of its PeerService."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"
