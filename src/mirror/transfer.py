"""The one seam between the registry mirror and the swarm (implemented by the peer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from dfcommon.content import ContentRequest


class BlobStream(Protocol):
    """Content coming out of the swarm, in order, verified piece by piece."""

    @property
    def content_length(self) -> int:
        """Total length of the content in bytes (known before the first chunk)."""
        ...

    @property
    def verifies_digest(self) -> bool:
        """True when chunks() releases the last byte only after the whole content matched request.digest (the
        mirror then does not hash the blob a second time)."""
        ...

    def downloaded(self) -> bool:
        """True once the whole content is in this host's cache: what is left to send is only read from disk."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes from the requested offset to the end, in order, as pieces arrive.

        Raises a dfcommon.errors.DandelionError (e.g. DigestMismatch) if the content
        cannot be delivered; nothing unverified is ever yielded.
        """
        ...

    async def aclose(self) -> None:
        """Stop reading; the download itself goes on for the cache."""
        ...


class BlobTransferer(Protocol):
    """Starts or joins a swarm download."""

    async def open(self, request: ContentRequest, offset: int = 0) -> BlobStream:
        """Register the content with the swarm and return its stream from offset.

        From the mirror, request.url is the upstream's blob URL (it may answer 307 to object storage:
        follow it, dropping Authorization across origins as httpx does), request.headers hold the
        Authorization the upstream accepted for this client (Basic or a Bearer token), and
        request.digest is the blob digest, the task identity. The mirror asked the upstream whether
        this client may read the blob before calling open().

        Raises dfcommon.errors.DandelionError subclasses: OriginError (with the
        origin's HTTP status), Unavailable, DigestMismatch, InvalidArgument, LocalDiskFull (this host's
        cache disk has no room for the blob) and LocalDiskError (that disk fails otherwise).
        """
        ...

    def holds(self, request: ContentRequest) -> bool:
        """True when this host's cache holds the whole content: open() then downloads nothing."""
        ...

    async def prefetch(self, request: ContentRequest) -> bool:
        """Download the content into this host's cache without reading it here, as the client's own request for it
        would, and wait until that is done (a download of it that runs here already is waited for instead).

        False when there was nothing to do (the content is here already, too many prefetches wait). request is as
        for open(). Failures are the swarm's to log: the client's own request reports them.
        """
        ...
