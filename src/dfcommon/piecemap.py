"""A peer's held pieces for people: the wire bitmap as a bitmask, a text strip and runs of piece numbers.

The strip has one character per cell; a cell covers one piece, or several when there are more pieces than cells:
`#` every piece of the cell held, `+` at least half, `-` some, `.` none.
"""

from __future__ import annotations

from dfcommon.pieces import mask_ranges

DEFAULT_WIDTH = 64
FULL, MOST, SOME, NONE = "#", "+", "-", "."


def bitmap_mask(bitmap: bytes) -> int:
    """The wire bitmap (bit i is byte i/8, mask 1<<(i%8)) as a bitmask (bit i is piece i)."""
    return int.from_bytes(bitmap, "little")


def strip(mask: int, count: int, width: int = DEFAULT_WIDTH) -> str:
    """The pieces 0..count-1 of mask as at most width characters ("" when count is 0)."""
    if count <= 0:
        return ""
    cells = max(1, min(width, count))
    out = []
    for cell in range(cells):
        first = cell * count // cells
        last = (cell + 1) * count // cells  # exclusive
        span = last - first
        held = (mask >> first & ((1 << span) - 1)).bit_count()
        if held == span:
            out.append(FULL)
        elif held == 0:
            out.append(NONE)
        else:
            out.append(MOST if 2 * held >= span else SOME)
    return "".join(out)


def runs_text(mask: int) -> str:
    """Held piece numbers as runs, "0-41,44,50-52" ("" when none)."""
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in mask_ranges(mask))
