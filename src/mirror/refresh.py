"""A blob stream that outlives the upstream's token: when the swarm's read of a blob fails because the upstream no
longer accepts the Authorization it was given (a registry token that expired during a long read, or before a
resume after the registry restarted), the mirror asks the upstream again with the client's own credentials and
reopens the stream where it stopped. The verified pieces stay in the cache, so only the rest is read.

A client that sent Basic credentials (the `docker login <mirror>` flow) or none (anonymous tokens) gets a new token;
a client that sent its own Bearer token cannot be given a newer one: its response is cut, and its retry brings a
fresh token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from dfcommon.content import ContentRequest
from dfcommon.errors import OriginError
from mirror.transfer import BlobStream

log = logging.getLogger(__name__)

MAX_REFRESHES = 2  # fresh authorisations per client request
REFUSED = frozenset({401, 403})  # what an upstream answers a token it no longer accepts


class RefreshingStream:
    """A BlobStream over the swarm's stream of one blob from start, reopened with a fresh authorisation (at most
    MAX_REFRESHES times) when the upstream refuses the one the swarm's read used."""

    def __init__(
        self,
        stream: BlobStream,
        content: ContentRequest,
        start: int,
        reauthorize: Callable[[], Awaitable[ContentRequest]],
        reopen: Callable[[ContentRequest, int], Awaitable[BlobStream]],
    ) -> None:
        self._stream = stream
        self._content = content
        self._start = start
        self._reauthorize = reauthorize
        self._reopen = reopen
        self._content_length = stream.content_length
        self._verifies = stream.verifies_digest
        self.refreshes = 0

    @property
    def content_length(self) -> int:
        """The first stream's length (a reopened one must agree)."""
        return self._content_length

    @property
    def verifies_digest(self) -> bool:
        """The first stream's answer (a reopened one must give the same)."""
        return self._verifies

    def downloaded(self) -> bool:
        """The current stream's answer."""
        return self._stream.downloaded()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes from start on, across reopenings."""
        delivered = 0
        while True:
            try:
                async for chunk in self._stream.chunks():
                    delivered += len(chunk)
                    yield chunk
                return
            except OriginError as exc:
                if exc.http_status not in REFUSED or self.refreshes >= MAX_REFRESHES:
                    raise
                await self._refresh(exc, delivered)

    async def _refresh(self, refused: OriginError, delivered: int) -> None:
        """Reopen the stream at start + delivered with a fresh authorisation; the refusal when none helps."""
        self.refreshes += 1
        try:
            fresh = await self._reauthorize()
        except Exception as exc:  # the upstream refuses the client now, or cannot be asked: the refusal stands
            log.info("blob %s: no fresh authorisation after a refused token: %s", self._content.digest, exc)
            raise refused from None
        if fresh.headers == self._content.headers:
            raise refused  # the client's own token: nothing newer to try
        await self._stream.aclose()
        stream = await self._reopen(fresh, self._start + delivered)
        if stream.verifies_digest != self._verifies or stream.content_length != self._content_length:
            await stream.aclose()
            raise refused
        log.info(
            "blob %s: the upstream refused the swarm's token after %d bytes; reading on with a fresh one",
            self._content.digest,
            delivered,
        )
        self._stream, self._content = stream, fresh

    async def aclose(self) -> None:
        """Stop reading (the download goes on for the cache)."""
        await self._stream.aclose()
