"""How content is cut into pieces."""

from __future__ import annotations

MIB = 1 << 20
DEFAULT_PIECE_SIZE = 4 * MIB
MAX_PIECE_SIZE = 64 * MIB
# Beyond this many pieces, pieces grow: bounds per-task scheduling state and report traffic.
TARGET_MAX_PIECES = 2048
# Below this many pieces of the base size, pieces shrink (by halves, not below SMALL_PIECE_FLOOR): a swarm passes a
# piece on only once it holds all of it, so a 32 MiB layer in 8 pieces of 4 MiB keeps most uplinks idle while the
# first copies travel. 1 MiB pieces made 8 hosts on 50 Mbit/s uplinks finish ~25% sooner than 4 MiB ones, and
# 512 KiB pieces (64 of them) another ~6% sooner than 1 MiB, the uplinks filling in ~1 s instead of ~2 s
# (bench/scale_bench.py); 256 KiB pieces were no faster.
TARGET_MIN_PIECES = 64
SMALL_PIECE_FLOOR = MIB // 2
CHUNK_SIZE = MIB  # gRPC message size for piece data (docs/performance.md: ~1 MiB messages stream fastest)


def piece_size_for(content_length: int, base: int = DEFAULT_PIECE_SIZE) -> int:
    """Piece size for content of this length: base; halved (not below SMALL_PIECE_FLOOR, nor above base) until
    small content has TARGET_MIN_PIECES pieces; grown in whole MiB for very large content."""
    if content_length < base * TARGET_MIN_PIECES:
        size, floor = base, min(base, SMALL_PIECE_FLOOR)
        while size // 2 >= floor and content_length <= size // 2 * TARGET_MIN_PIECES:
            size //= 2
        return size
    if content_length <= base * TARGET_MAX_PIECES:
        return base
    wanted = -(-content_length // TARGET_MAX_PIECES)
    return min(MAX_PIECE_SIZE, -(-wanted // MIB) * MIB)


def piece_count(content_length: int, piece_size: int) -> int:
    """Number of pieces; empty content has none."""
    return -(-content_length // piece_size) if content_length > 0 else 0


def piece_span(number: int, content_length: int, piece_size: int) -> tuple[int, int]:
    """(offset, size) of a piece."""
    offset = number * piece_size
    return offset, max(0, min(piece_size, content_length - offset))


def ranges_mask(ranges: tuple[tuple[int, int], ...]) -> int:
    """Pieces first..last of each range as a bitmask (bit i is piece i)."""
    mask = 0
    for first, last in ranges:
        mask |= ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)
    return mask


def mask_ranges(mask: int) -> tuple[tuple[int, int], ...]:
    """A bitmask of pieces as runs (first, last)."""
    runs: list[tuple[int, int]] = []
    number = 0
    while mask:
        if mask & 1:
            if runs and runs[-1][1] == number - 1:
                runs[-1] = (runs[-1][0], number)
            else:
                runs.append((number, number))
        mask >>= 1
        number += 1
    return tuple(runs)
