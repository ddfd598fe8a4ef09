"""How many free parents hold each piece of a task, kept as bit slices: one big integer per binary digit of the
counts. A parent going busy or free adds or takes away its whole bitmask of held pieces in a few big-integer
operations (one per digit, about log2 of the parents), where a walk over its pieces cost one dict operation and a
few big-integer ones per piece held: 1 ms at 2,048 pieces, with every host's upload slots filling and freeing
around each piece it sends."""

from __future__ import annotations


class PieceCounts:
    """count(n) is the sum over j of bit n of slices[j] times 2**j; nonzero is the bitmask of pieces counted at
    least once."""

    __slots__ = ("nonzero", "slices")

    def __init__(self) -> None:
        self.slices: list[int] = []
        self.nonzero = 0

    def add(self, mask: int) -> None:
        """Count each piece of the bitmask once more."""
        carry = mask
        slices = self.slices
        digit = 0
        while carry:
            if digit == len(slices):
                slices.append(carry)
                break
            current = slices[digit]
            slices[digit] = current ^ carry
            carry &= current
            digit += 1
        self.nonzero |= mask

    def sub(self, mask: int) -> None:
        """Count each piece of the bitmask once less; ValueError (nothing changed) when one of them is not counted."""
        if mask & ~self.nonzero:
            raise ValueError("a piece taken away was not counted")
        borrow = mask
        slices = self.slices
        digit = 0
        while borrow:
            current = slices[digit]
            slices[digit] = current ^ borrow
            borrow &= ~current
            digit += 1
        while slices and not slices[-1]:
            slices.pop()
        nonzero = 0
        for digit_mask in slices:
            nonzero |= digit_mask
        self.nonzero = nonzero

    def count(self, number: int) -> int:
        """How many times the piece is counted."""
        return sum(((digit_mask >> number) & 1) << digit for digit, digit_mask in enumerate(self.slices))
