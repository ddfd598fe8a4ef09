"""What the supernode says on a download's SyncPieces stream, as plain events (LinkEvent): the only reader of
SyncPiecesResponse's events (the link reads its other fields: heartbeat answers, grants)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon import piecedigest
from peer.piece.model import Parent, PieceSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskNews:
    """The task as the supernode sees it (TaskInfo)."""

    content_length: int  # -1 while unknown
    piece_size: int  # 0 while unknown
    failed: bool
    error: str

    @property
    def shaped(self) -> bool:
        """True when the length and piece size are known."""
        return self.content_length >= 0 and self.piece_size > 0


@dataclass(frozen=True)
class Assigned:
    """Pieces to fetch, each from a parent, with the digest the supernode gave for it ("" none usable)."""

    pieces: list[tuple[Parent, PieceSpec]]


@dataclass(frozen=True)
class ToSource:
    """Fetch from the origin: for this peer alone, or (offer) for the swarm, reporting each piece with its digest
    (algorithm): the pieces in ranges while fetching the others from the swarm, or (no ranges) all it lacks."""

    reason: str
    offer: bool
    algorithm: str
    ranges: tuple[tuple[int, int], ...] = ()  # with offer: read these pieces, fetch the others (none: all it lacks)
    piece_size: int = 0  # with offer: the base piece size to cut the content into (0: the default)


@dataclass(frozen=True)
class Ended:
    """The stream ended; forgotten: the supernode no longer knows this peer (register again); gone: the supernode
    went away (UNAVAILABLE: the next registration goes to the next supernode)."""

    reason: str
    forgotten: bool
    gone: bool = False


LinkEvent = TaskNews | Assigned | ToSource | Ended


def task_news(info: scheduler_pb2.TaskInfo) -> TaskNews:
    """TaskInfo as plain news."""
    return TaskNews(
        content_length=info.content_length,
        piece_size=info.piece_size,
        failed=info.state == common_pb2.TASK_STATE_FAILED,
        error=info.error,
    )


def piece_digest(piece: common_pb2.PieceInfo) -> str:
    """The piece's digest as "<algorithm>:<hex>" ("" when it has none we can check: the content is then hashed
    here); a seed that only fills the deprecated sha256 field counts as a sha256 digest."""
    text = piece.digest or (f"sha256:{piece.sha256}" if piece.sha256 else "")
    if not text:
        return ""
    parsed = piecedigest.parse(text)
    if parsed is None:
        log.warning("piece %d has a digest this peer cannot check: %.80r", piece.number, text)
        return ""
    return f"{parsed[0]}:{parsed[1]}"


def event_of(message: scheduler_pb2.SyncPiecesResponse) -> LinkEvent | None:
    """The event a message carries (None: none, or one this peer does not know)."""
    which = message.WhichOneof("event")
    if which == "task":
        return task_news(message.task)
    if which == "back_to_source":
        order = message.back_to_source
        ranges = tuple((r.first, r.last) for r in order.read_ranges if r.first <= r.last)
        return ToSource(order.reason, order.offer_pieces, order.piece_digest, ranges, order.piece_size)
    if which == "assignments":
        pieces = [
            (
                Parent(a.parent.peer_id, a.parent.ip, a.parent.port),
                PieceSpec(a.piece.number, a.piece.offset, a.piece.size, piece_digest(a.piece)),
            )
            for a in message.assignments.assignments
        ]
        return Assigned(pieces)
    return None  # a newer supernode's event this peer does not know
