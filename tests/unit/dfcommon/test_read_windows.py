"""Windows of a read for the swarm, and where a read is split (dfcommon.read_windows)."""

from __future__ import annotations

from itertools import islice

from dfcommon.pieces import MIB
from dfcommon.read_windows import FIRST_WINDOW, MAX_WINDOW, WINDOWS_PER_SIZE, split_point, window_last, windows


def test_windows_are_whole_pieces_and_grow_to_the_largest() -> None:
    sizes = [count * (MIB // 2) for _, count in islice(windows(MIB // 2), 8 * WINDOWS_PER_SIZE)]
    assert sizes[:WINDOWS_PER_SIZE] == [FIRST_WINDOW] * WINDOWS_PER_SIZE
    assert sizes[WINDOWS_PER_SIZE] == 2 * FIRST_WINDOW
    assert max(sizes) == MAX_WINDOW and sizes == sorted(sizes)
    assert [count for _, count in islice(windows(16 * MIB), 3)] == [1, 1, 1], "one piece when pieces are larger"


def test_every_piece_is_in_the_window_that_ends_at_window_last() -> None:
    starts = [first for first, _ in islice(windows(MIB // 2), 40)]
    for number in range(starts[-1]):
        last = window_last(number, MIB // 2)
        assert last + 1 in starts and max(s for s in starts if s <= number) <= number <= last


def test_a_split_begins_at_a_boundary_near_the_middle_and_far_enough_ahead() -> None:
    per = FIRST_WINDOW // (MIB // 2)
    assert split_point(3, 63, MIB // 2) == 32
    assert split_point(3, 39, MIB // 2) in (20, 24), "either boundary is as near the middle"
    assert split_point(per, 4 * per, MIB // 2) == 4 * per, "reading window 1: not before window 4"
    assert split_point(per, 4 * per - 1, MIB // 2) == 4 * per, "none left to split: past the last piece"
