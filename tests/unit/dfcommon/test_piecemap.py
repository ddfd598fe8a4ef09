"""Piece maps for people: the wire bitmap, the text strip, runs of piece numbers."""

from __future__ import annotations

import pytest

from dfcommon.piecemap import bitmap_mask, runs_text, strip


def mask_of(*numbers: int) -> int:
    return sum(1 << n for n in numbers)


@pytest.mark.parametrize(
    ("held", "count", "width", "expected"),
    [
        pytest.param((), 0, 64, "", id="no-pieces"),
        pytest.param((), 5, 64, ".....", id="none-held"),
        pytest.param((0, 1, 4), 5, 64, "##..#", id="one-cell-per-piece"),
        pytest.param(tuple(range(8)), 8, 4, "####", id="all-held-squeezed"),
        pytest.param((0, 1, 2, 5), 8, 4, "#++.", id="cells-of-two"),
        pytest.param((0, 1, 2, 3, 4, 5, 9), 12, 4, "##.-", id="cells-of-three"),
        pytest.param((0, 10), 10, 64, "#.........", id="bits-beyond-count-ignored"),
    ],
)
def test_strip(held: tuple[int, ...], count: int, width: int, expected: str) -> None:
    assert strip(mask_of(*held), count, width) == expected


def test_a_partly_held_cell_says_most_or_some() -> None:
    assert strip(mask_of(0, 1, 2), 4, 1) == "+"
    assert strip(mask_of(0), 4, 1) == "-"


def test_wire_bitmap_and_runs() -> None:
    # bit i is byte i/8, mask 1<<(i%8): pieces 0, 1, 2, 9 and 15
    assert bitmap_mask(bytes([0b0000_0111, 0b1000_0010])) == mask_of(0, 1, 2, 9, 15)
    assert runs_text(mask_of(0, 1, 2, 9, 15, 16)) == "0-2,9,15-16"
    assert runs_text(0) == ""
