"""Content digests of the form "sha256:<hex>" or "md5:<hex>"."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dfcommon.errors import InvalidArgument

_HEX_LENGTH = {"sha256": 64, "md5": 32}
_PATTERN = re.compile(r"^(sha256|md5):([0-9a-f]+)$")


@dataclass(frozen=True)
class Digest:
    """A parsed, validated digest."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)


def parse_digest(text: str) -> Digest:
    """Parse "sha256:<64 hex>" or "md5:<32 hex>" (case-insensitive hex); InvalidArgument otherwise."""
    match = _PATTERN.match(text.strip().lower())
    if not match or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise InvalidArgument(f"invalid digest {text[:80]!r}: want sha256:<64 hex> or md5:<32 hex>")
    return Digest(match.group(1), match.group(2))
