"""What a client sent in Authorization, held in memory only and never shown."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

# Per-process salt: cache keys derived from credentials cannot be matched against anything outside.
_SALT = os.urandom(16)


@dataclass(frozen=True)
class Credentials:
    """A client's Authorization header value (or none); repr and str never reveal it."""

    header: str | None = None

    @classmethod
    def from_header(cls, value: str | None) -> Credentials:
        """Credentials from an Authorization header (empty or missing: anonymous)."""
        value = (value or "").strip()
        return cls(value or None)

    @property
    def anonymous(self) -> bool:
        """Whether the client sent no credentials."""
        return self.header is None

    @property
    def scheme(self) -> str:
        """The lower-cased scheme ("basic", "bearer"), or "" when anonymous."""
        return (self.header or "").partition(" ")[0].lower()

    def basic(self) -> tuple[str, str] | None:
        """(user, password) of Basic credentials, None for any other kind or a malformed value."""
        if self.scheme != "basic" or self.header is None:
            return None
        try:
            text = base64.b64decode(self.header.partition(" ")[2].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = text.partition(":")
        return (user, password) if sep else None

    @property
    def key(self) -> str:
        """A salted hash naming these credentials in caches ("-" for anonymous)."""
        if self.header is None:
            return "-"
        return hashlib.sha256(_SALT + self.header.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"Credentials(<{self.scheme or 'anonymous'}>)"

    __str__ = __repr__
