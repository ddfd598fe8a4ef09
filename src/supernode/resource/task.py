"""A task: one content, its pieces, its swarm and how rare each piece is."""

from __future__ import annotations

import bisect
import enum
from collections import OrderedDict
from dataclasses import dataclass, field

from dfcommon.pieces import piece_span, ranges_mask
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import PieceMeta, PieceReport
from supernode.resource.piece_counts import PieceCounts


class TaskState(enum.IntEnum):
    """State of a task (values as dandelion.common.v1.TaskState): PENDING until the origin answered its reader, then
    RUNNING; FAILED when its content did not match its digest. SUCCEEDED is no longer set (peers that complete say so
    in their own state)."""

    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4


@dataclass(frozen=True)
class Handoff:
    """Pieces first..last taken from a reader's part for another peer (supernode.read_split): handed to it once the
    reader said it keeps to its narrowed part (SyncPiecesRequest.read_ranges_applied), less the pieces it stored
    meanwhile, or after read_split.HANDOFF_WAIT_S without a word."""

    owner_id: str
    newcomer_id: str
    first: int
    last: int
    since: float

    @property
    def mask(self) -> int:
        """Its pieces as a bitmask."""
        return ranges_mask(((self.first, self.last),))


@dataclass(eq=False)
class Task:
    """A task and its swarm.

    Availability is kept per piece (holder ids and count) and as one bitmask per count
    (`buckets`), with the non-empty counts sorted, so rarest-first selection costs a few
    big-integer operations instead of a scan over every piece.
    """

    task_id: str
    url: str
    digest: str
    state: TaskState = TaskState.PENDING
    content_length: int = -1
    piece_size: int = 0
    piece_count: int = 0
    error: str = ""
    # Piece number -> the piece and its digest, as its author (the peer that read it from the origin) gave it:
    # only these pieces are offered.
    pieces: dict[int, PieceMeta] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    holders: list[set[str]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    buckets: dict[int, int] = field(default_factory=dict)
    sorted_counts: list[int] = field(default_factory=list)
    bad_parents: set[str] = field(default_factory=set)
    # Pieces held by its peers other than seed peers, summed over those peers (Peer.held_count; trusted or not).
    plain_held: int = 0
    # Seed peers are parents of last resort, kept apart from free_holders: the pieces free seed peers hold, and per
    # piece the children fetching it from a seed peer right now (see scheduler.SEED_FANOUT); pieces at the fan-out
    # are not servable from there until one of those uploads ends.
    seed_servable: int = 0
    seed_peer_ids: set[str] = field(default_factory=set)  # the task's peers on seed peer hosts
    seed_inflight: dict[int, int] = field(default_factory=dict)
    seed_saturated: int = 0
    # Under a policy that keeps pieces in a zone (evaluator.ParentPolicy.keep_in_zone): per (zone, piece), the
    # children in that zone fetching the piece from a parent in another zone right now.
    crossing: dict[tuple[str, int], int] = field(default_factory=dict)
    starved: dict[str, None] = field(default_factory=dict)
    # Peers that hold something, are trusted and whose host has a free upload slot.
    free_parents: set[str] = field(default_factory=set)
    # Per piece, the parents other than seed peers that hold it and were free when last looked at, in the order to
    # look at them: new holders first, then the one chosen least lately (see offered). A parent whose host has no
    # free slot stays until a choice meets it (evict_busy), so a host's slots filling and freeing around every
    # piece it sends costs no walk over the pieces it holds. How many free parents other than seed peers hold
    # each piece: free_counts (its nonzero: the pieces they can serve).
    free_holders: list[OrderedDict[str, None]] = field(default_factory=list)
    free_counts: PieceCounts = field(default_factory=PieceCounts)
    # The peer reading all of the content from its origin for the swarm (a seed peer, or a plain peer for content
    # with a digest); "" when none (yet), or only range readers read.
    source_peer_id: str = ""
    # Peers whose piece digests are in `pieces` (readers of the origin for the swarm), and the hosts (Host.address)
    # of authors whose content did not match the task's digest: their peers are never chosen again, nor readers.
    authors: set[str] = field(default_factory=set)
    # Peers that read parts of the content from the origin for the swarm, and the piece ranges each reads (they
    # fetch the other pieces from the swarm); next to, or instead of, the reader of all of it (source_peer_id).
    range_readers: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    handoffs: list[Handoff] = field(default_factory=list)  # parts taken from a range reader, not handed on yet
    bad_hosts: set[str] = field(default_factory=set)
    # Preheats awaiting a seed peer's copy: the task is not forgotten while there are any.
    waiting: int = 0
    # Pieces with digests that peers carried in while the length was not known here (supernode.carried): offered as
    # theirs once it is, then empty for good.
    carried: dict[str, list[PieceReport]] = field(default_factory=dict)

    @property
    def length_known(self) -> bool:
        """True once the content length (and so the piece count) is known."""
        return self.content_length >= 0

    @property
    def seed_pieces(self) -> int:
        """Pieces the best-stocked seed peer of the task holds (one that served bad bytes holds none)."""
        seeds = (self.peers[p] for p in self.seed_peer_ids if p not in self.bad_parents)  # a few, never every peer
        return max((peer.held_count for peer in seeds), default=0)

    @property
    def peer_authored(self) -> bool:
        """True when some piece digests come from a peer that read the origin (every consumer of content with a
        digest checks the whole of it itself)."""
        return bool(self.authors)

    def piece_meta(self, number: int, digest: str) -> PieceMeta:
        """Piece `number` of this task (its length known) with the digest its author gave."""
        offset, size = piece_span(number, self.content_length, self.piece_size)
        return PieceMeta(number, offset, size, digest)

    def reads_all(self, peer: Peer) -> bool:
        """True when the peer reads all of the origin for the swarm right now."""
        return self.source_peer_id == peer.peer_id and peer.state is PeerState.BACK_TO_SOURCE

    def plain_peers_lack_pieces(self) -> bool:
        """True when a peer of the task other than its seed peers lacks a piece (the length known)."""
        plain = len(self.peers) - len(self.seed_peer_ids)
        return self.length_known and self.plain_held < plain * self.piece_count

    def is_complete(self, peer: Peer) -> bool:
        """True when the peer holds every piece of a task whose length is known."""
        return self.length_known and peer.held_count >= self.piece_count

    def _move(self, number: int, old: int, new: int) -> None:
        bit = 1 << number
        if old > 0:
            mask = self.buckets[old] & ~bit
            if mask:
                self.buckets[old] = mask
            else:
                del self.buckets[old]
                self.sorted_counts.pop(bisect.bisect_left(self.sorted_counts, old))
        if new > 0:
            if new in self.buckets:
                self.buckets[new] |= bit
            else:
                self.buckets[new] = bit
                bisect.insort(self.sorted_counts, new)

    def add_holder(self, number: int, peer_id: str) -> bool:
        """Record that a peer holds a piece; False when it was already known."""
        while len(self.holders) <= number:
            self.holders.append(set())
            self.counts.append(0)
            self.free_holders.append(OrderedDict())
        holders = self.holders[number]
        if peer_id in holders:
            return False
        holders.add(peer_id)
        old = self.counts[number]
        self.counts[number] = old + 1
        self._move(number, old, old + 1)
        return True

    def offered(self, number: int, peer_id: str) -> None:
        """The free holder was chosen to send the piece: it goes to the back of the piece's free holders, so that
        the next choice for this piece looks at others first (they are less likely to be sending it)."""
        holders = self.free_holders[number]
        if peer_id in holders:
            holders.move_to_end(peer_id)

    def evict_busy(self, number: int, peer_ids: list[str]) -> None:
        """A choice for the piece met these holders busy (not free parents): out of its free holders until a slot
        of theirs frees (Registry.update_free puts them back)."""
        holders = self.free_holders[number]
        for peer_id in peer_ids:
            holders.pop(peer_id, None)
            peer = self.peers.get(peer_id)
            if peer is not None:
                peer.evicted.append(number)

    def remove_holders(self, held: int, peer_id: str) -> None:
        """Forget that a peer holds the pieces of the bitmask held."""
        while held:
            low = held & -held
            self.remove_holder(low.bit_length() - 1, peer_id)
            held ^= low

    def remove_holder(self, number: int, peer_id: str) -> None:
        """Forget that a peer holds a piece."""
        if number >= len(self.holders) or peer_id not in self.holders[number]:
            return
        self.holders[number].discard(peer_id)
        old = self.counts[number]
        self.counts[number] = old - 1
        self._move(number, old, old - 1)
