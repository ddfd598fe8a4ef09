"""A peer: one host's download of one task, with its held pieces and outstanding assignments."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from supernode.resource.host import Host

DEFAULT_WINDOW = 16
MAX_WINDOW = 256
# Pieces a reader must have offered after its first offer before its read rate is known: the first pieces include
# the origin's answer and arrive in one batch, which would make a fast origin look slow.
READ_RATE_PIECES = 2


class PeerState(enum.IntEnum):
    """Lifecycle of a peer (values as dandelion.common.v1.PeerState)."""

    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    BACK_TO_SOURCE = 4
    LEFT = 5


class Outstanding(NamedTuple):
    """An assigned, not yet reported piece: who serves it and when it times out (a named tuple: one is built per
    assignment, see PieceReport)."""

    parent_id: str
    deadline: float
    size: int = 0  # the piece's bytes (the parent host's upload budget counts them)


@dataclass(eq=False)
class Peer:
    """A peer of a task. `held` and `pending` are bitmasks (bit i is piece i)."""

    peer_id: str
    task_id: str
    host: Host
    state: PeerState = PeerState.RUNNING
    window: int = DEFAULT_WINDOW
    connected: bool = False
    held: int = 0
    held_count: int = 0
    pending: int = 0
    outstanding: dict[int, Outstanding] = field(default_factory=dict)
    uploading: set[tuple[str, int]] = field(default_factory=set)
    serving: dict[int, int] = field(default_factory=dict)  # piece number -> children fetching it from this peer now
    read_mask: int = 0  # pieces it reads from the origin for the swarm (never assigned to it from parents)
    reads: bool = True  # may read the origin for the swarm (False: RegisterTaskRequest.no_back_source)
    # Its rate reading the origin for the swarm: when it was told to read (anew), when its first offer arrived
    # (0.0: none yet) and the pieces it offered after that one (the wait for the origin's answer and the first batch
    # are not a rate); read_rate is that rate in bytes/s once READ_RATE_PIECES were counted (0.0 before).
    read_told: float | None = None
    read_since: float = 0.0
    read_pieces: int = 0
    read_rate: float = 0.0
    uploads_ok: int = 0
    uploads_failed: int = 0
    # When it last stored a piece (from a parent, or read from the origin for the swarm), or connected: how long a
    # seed peer's own copy has waited (parents.copy_waits).
    last_piece_at: float = 0.0
    # Whether its held pieces are in the task's free_holders (Registry.update_free): from when it is first a free
    # parent until it cannot serve at all (left, distrusted, unreachable, holding nothing). While its host has no
    # free slot its entries stay there, and a choice that meets one moves it out and the piece here
    # (Task.evict_busy); those and the pieces it got meanwhile go back in when a slot frees.
    indexed: bool = False
    evicted: list[int] = field(default_factory=list)

    def count_read(self, pieces: int, piece_size: int, now: float) -> None:
        """It offered pieces it read from the origin for the swarm: the first offer starts the clock, later ones
        count towards read_rate."""
        if not pieces:
            return
        if not self.read_since:
            self.read_since = now
            return
        self.read_pieces += pieces
        if self.read_pieces >= READ_RATE_PIECES and now > self.read_since:
            self.read_rate = self.read_pieces * piece_size / (now - self.read_since)

    def restart_read(self, now: float) -> None:
        """It is told to read anew (a new reader, or a new part) now: its rate is timed from its next offer on."""
        self.read_told, self.read_since, self.read_pieces, self.read_rate = now, 0.0, 0, 0.0

    def holds(self, number: int) -> bool:
        """True when the peer holds the piece."""
        return bool(self.held >> number & 1)

    def bitmap(self, piece_count: int) -> bytes:
        """Held pieces as the wire bitmap: bit i is byte i/8, mask 1<<(i%8)."""
        size = max((piece_count + 7) // 8, (self.held.bit_length() + 7) // 8)
        return self.held.to_bytes(size, "little")
