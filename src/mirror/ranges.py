"""HTTP Range requests on blobs: one byte range, as docker sends after a cut download."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirror.errors import RegistryError

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
MAX_DIGITS = 19  # positions of any blob fit in 19 digits; more is malformed (and int() of 5,000 digits fails)
MAX_HEADER = 200


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


def parse_range(header: str, length: int) -> ByteRange:
    """Parse "bytes=N-", "bytes=N-M" or "bytes=-K" against length; RANGE_INVALID (416) otherwise.

    Several ranges in one header are refused as well: registry clients never send them.
    """
    match = _RANGE.match(header) if len(header) <= MAX_HEADER else None
    if not match or not (match.group(1) or match.group(2)) or max(map(len, match.groups())) > MAX_DIGITS:
        raise RegistryError.range_invalid(header, length)
    first, last = match.groups()
    if not first:
        suffix = int(last)
        if suffix == 0 or length == 0:
            raise RegistryError.range_invalid(header, length)
        return ByteRange(max(0, length - suffix), length - 1, length)
    start = int(first)
    end = length - 1 if not last else min(int(last), length - 1)
    if start >= length or (last and int(last) < start):
        raise RegistryError.range_invalid(header, length)
    return ByteRange(start, end, length)
