"""A piece bitmap: bit i (byte i/8, mask 1<<(i%8)) is piece i, as on the wire."""

from __future__ import annotations


class Bitmap:
    """Set of held piece numbers, growable, with a running count."""

    def __init__(self, size: int = 0, data: bytes = b"") -> None:
        self._bits = bytearray(data)
        self._grow(size)
        self.count = sum(bin(b).count("1") for b in self._bits)

    def _grow(self, size: int) -> None:
        need = (size + 7) // 8
        if len(self._bits) < need:
            self._bits.extend(bytes(need - len(self._bits)))

    def __contains__(self, number: int) -> bool:
        byte = number >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (number & 7)))

    def add(self, number: int) -> tuple[int, int]:
        """Mark a piece held; returns (byte index, new byte value) for persisting."""
        self._grow(number + 1)
        byte = number >> 3
        if not self._bits[byte] & (1 << (number & 7)):
            self._bits[byte] |= 1 << (number & 7)
            self.count += 1
        return byte, self._bits[byte]

    def to_bytes(self) -> bytes:
        """The raw bitmap."""
        return bytes(self._bits)

    def missing(self, total: int) -> list[int]:
        """Piece numbers below total not held."""
        return [n for n in range(total) if n not in self]
