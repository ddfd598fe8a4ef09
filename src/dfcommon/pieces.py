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
# The base a supernode gives when no --piece-size was set, by the plain hosts (not seed peers) it knows: FLEET_BASE
# for 2 to FLEET_STEP hosts, doubled for each doubling of the hosts, up to DEFAULT_PIECE_SIZE (beyond 4 * FLEET_STEP
# hosts, as before); DEFAULT_PIECE_SIZE for one host, which passes pieces on to nobody. A piece is passed on only
# once it is whole, so on slow links small pieces keep more uplinks busy: 8 hosts on 50 Mbit/s uplinks fetching
# 256 MiB took 42.6-43.1 s in pieces of 512 KiB against 51.8-53.4 s in pieces of 4 MiB (bench/scale_bench.py; the
# hosts' uplinks at ~5.6 against ~5.0 MB/s, from 4 s on against from 10 s on). Each piece costs CPU, though: a report
# per piece per host at the supernode, and some 2 ms of this machine's CPU per piece on one box (one host's cold
# 1 GiB: 8.1-8.9 s in 512 KiB pieces, 4.5-5.0 s in 4 MiB). So the base grows with the fleet, a GiB costing at most
# 32,768 reports up to 64 hosts (what it costs 128 hosts in pieces of 4 MiB), and one host keeps big pieces.
FLEET_BASE = MIB // 2
FLEET_STEP = 16
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


def base_for_fleet(hosts: int) -> int:
    """The base piece size for a fleet of this many plain hosts: FLEET_BASE, doubled per doubling of hosts beyond
    FLEET_STEP, at most DEFAULT_PIECE_SIZE; DEFAULT_PIECE_SIZE for one host (or none)."""
    if hosts <= 1:
        return DEFAULT_PIECE_SIZE
    size, reach = FLEET_BASE, FLEET_STEP
    while size < DEFAULT_PIECE_SIZE and hosts > reach:
        size, reach = size * 2, reach * 2
    return size


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
