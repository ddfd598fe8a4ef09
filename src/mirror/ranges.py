"""HTTP Range requests on blobs: one byte range, as docker sends after a cut download."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registryclient.errors import RegistryError

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
MAX_DIGITS = 19  # any blob position fits in 19 digits; longer numbers are past every end (int() of 5,000 fails)
PAST_ANY_END = 10**MAX_DIGITS


@dataclass(frozen=True)
class ByteRange:
    """Inclusive byte positions [start, end] within a blob of length bytes."""

    start: int
    end: int
    length: int

    @property
    def size(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        """The Content-Range header value of a 206 answer."""
        return f"bytes {self.start}-{self.end}/{self.length}"


def _position(digits: str) -> int:
    """A position; PAST_ANY_END for numbers longer than MAX_DIGITS (leading zeros aside)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_DIGITS else PAST_ANY_END


def parse_range(header: str, length: int) -> ByteRange:
    """Parse "bytes=N-", "bytes=N-M" or "bytes=-K" against length; RANGE_INVALID (416) otherwise.

    Several ranges in one header are refused as well: registry clients never send them.
    """
    match = _RANGE.match(header)
    if not match or not (match.group(1) or match.group(2)):
        raise RegistryError.range_invalid(header, length)
    first, last = match.groups()
    if not first:
        suffix = _position(last)
        if suffix == 0 or length == 0:
            raise RegistryError.range_invalid(header, length)
        return ByteRange(max(0, length - suffix), length - 1, length)
    start = _position(first)
    end = length - 1 if not last else min(_position(last), length - 1)
    if start >= length or (last and _position(last) < start):
        raise RegistryError.range_invalid(header, length)
    return ByteRange(start, end, length)
