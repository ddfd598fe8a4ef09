"""Pieces, and what peers report about them."""

from __future__ import annotations

import enum
from typing import NamedTuple


class PieceMeta(NamedTuple):
    """One piece with the digest peers check it against, as the peer that read it from the origin for the swarm
    (the task's author: a seed peer, or a plain peer for content with a digest) gave it (a named tuple: hashed for
    every assignment sent, rpc/convert.py)."""

    number: int
    offset: int
    size: int
    digest: str  # "<algorithm>:<hex>" of its bytes (dfcommon.piecedigest)


class Failure(enum.IntEnum):
    """Why a piece could not be fetched (values as dandelion.scheduler.v1.PieceFailure)."""

    NONE = 0
    TIMEOUT = 1
    BAD_DIGEST = 2
    PARENT_UNAVAILABLE = 3
    PARENT_MISSING_PIECE = 4
    PARENT_BUSY = 5
    LOCAL = 6


class PieceReport(NamedTuple):
    """A peer's result for one piece: held (parent empty) or fetched, or a failure. A named tuple, not a frozen
    dataclass: one is built per piece report, and a frozen dataclass takes 2.3 µs to build against 0.8 µs."""

    number: int
    parent_id: str
    success: bool
    failure: Failure = Failure.NONE
    digest: str = ""  # the piece's digest, from a peer that read it from the origin for the swarm
    sending_s: float = 0.0  # the child's time from asking its parent for the piece to storing it (0: not reported)
