"""The windows in which a peer reading the origin for the swarm asks for it, and where the supernode may split a read.

A read for the swarm asks for the origin one window of whole pieces at a time, and (from an origin whose answers
take long) for the next window while it reads one (peer.download.origin_read). The supernode gives part of a read
to another peer only from a window boundary past the reader's requests (split_point), so the origin never sends a
byte that is read twice: an open body left early wastes what both ends' TCP buffers hold, up to tens of MiB with
Linux's autotuning when the reader is slower than the origin.

Windows are FIRST_WINDOW bytes (one piece when pieces are larger), doubling after every WINDOWS_PER_SIZE of them up to
MAX_WINDOW: small early on, where reads are split, and later large enough that a request's round trips (a redirect,
a CDN's first byte) are few against the bytes, even from a fast origin far away.
"""

from __future__ import annotations

from collections.abc import Iterator

from dfcommon.pieces import MIB

FIRST_WINDOW = 2 * MIB
WINDOWS_PER_SIZE = 16
MAX_WINDOW = 64 * MIB
# Windows from the one a reader reads now to the first a split may begin at: the one it reads, the next one (maybe
# asked for already), and one more it may have moved on to before its report of the last piece reached the supernode.
SPLIT_MARGIN = 3


def windows(piece_size: int) -> Iterator[tuple[int, int]]:
    """(first piece, pieces) of each window, from piece 0 on, without end."""
    first = index = 0
    while True:
        size = min(MAX_WINDOW, FIRST_WINDOW << min(index // WINDOWS_PER_SIZE, 16))
        count = max(1, size // piece_size)
        yield first, count
        first, index = first + count, index + 1


def window_last(number: int, piece_size: int) -> int:
    """The last piece of the window that holds piece number."""
    for first, count in windows(piece_size):
        if number < first + count:
            return first + count - 1
    raise AssertionError("windows never end")


def split_point(reading_now: int, last: int, piece_size: int) -> int:
    """Where a read for the swarm of pieces up to last, at piece reading_now now, is split: the window boundary
    nearest the middle of what is left, SPLIT_MARGIN windows or more past the one read now; last + 1 when there is
    none."""
    starts: list[int] = []
    now = 0
    for index, (first, _) in enumerate(windows(piece_size)):
        if first > last:
            break
        if first <= reading_now:
            now = index
        starts.append(first)
    allowed = starts[now + SPLIT_MARGIN :]
    if not allowed:
        return last + 1
    middle = (reading_now + last + 2) / 2
    return min(allowed, key=lambda start: abs(start - middle))
