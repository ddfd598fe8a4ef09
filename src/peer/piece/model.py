"""Plain data about pieces and parents, free of wire types."""

from __future__ import annotations

from dataclasses import dataclass

from dfcommon.address import PeerAddress

Parent = PeerAddress  # a peer that serves pieces


@dataclass(frozen=True)
class PieceSpec:
    """One piece and the digest its bytes must have ("<algorithm>:<hex>", dfcommon.piecedigest; "" unknown)."""

    number: int
    offset: int
    size: int
    digest: str


@dataclass(frozen=True)
class PieceOutcome:
    """Result of fetching one piece; failure is a scheduler_pb2.PieceFailure value (0 on success)."""

    number: int
    parent_peer_id: str
    success: bool
    failure: int = 0
    duration_ms: int = 0
    size: int = 0
    local_errno: int = 0  # a LOCAL failure's errno (0: not an OSError)
