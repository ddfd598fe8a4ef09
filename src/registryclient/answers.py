"""What an upstream registry answered: a reply read whole, a manifest, a listing page, and a blob grant (its yes to
one client reading one blob)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from dfcommon.content import ContentRequest


@dataclass(frozen=True)
class Answer:
    """An upstream reply, read whole (only small bodies come this way)."""

    status: int
    headers: httpx.Headers
    body: bytes
    auth: dict[str, str]  # the Authorization that got this answer
    auth_expires: float  # monotonic time the auth stops being usable (inf for Basic or none)


@dataclass(frozen=True)
class Manifest:
    """A manifest as the upstream served it (body empty for HEAD)."""

    body: bytes
    media_type: str
    digest: str
    length: int
    etag: str | None


@dataclass(frozen=True)
class Listing:
    """One page of a tag list or catalog as the upstream served it, with its raw Link header (or None)."""

    body: bytes
    media_type: str
    link: str | None
    url: str  # what was asked upstream (relative Links resolve against it)


@dataclass(frozen=True)
class BlobGrant:
    """The upstream's yes to one client reading one blob, and how the swarm fetches it."""

    url: str
    headers: dict[str, str]
    length: int

    def content(self, digest: str) -> ContentRequest:
        """What the swarm downloads for this grant: the blob's URL with the upstream's auth, checked against digest."""
        return ContentRequest(url=self.url, headers=self.headers, digest=digest)
