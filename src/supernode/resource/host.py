"""A host: one dfdaemon (or the supernode's own seed) and its upload capacity."""

from __future__ import annotations

from dataclasses import dataclass, field

# An upload slot serves one DownloadPieces call, which carries a few pieces of a peer's window.
PIECES_PER_SLOT = 4


@dataclass(eq=False)
class Host:
    """A registered host; `inflight` counts pieces assigned with one of its peers as parent."""

    host_id: str
    hostname: str
    ip: str
    port: int
    upload_slots: int
    location: str
    last_seen: float
    is_seed: bool = False
    inflight: int = 0
    peer_ids: set[str] = field(default_factory=set)
    # A child could not reach it: not chosen as a parent until it heart-beats again (a dead host
    # would otherwise keep drawing assignments until it misses three heartbeats).
    unreachable: bool = False

    @property
    def capacity(self) -> int:
        """Pieces this host may be serving at once."""
        return self.upload_slots * PIECES_PER_SLOT

    @property
    def free_slots(self) -> int:
        """Pieces it can take on now."""
        return max(0, self.capacity - self.inflight)
