"""An origin body that survives a cut: when the connection drops or the body ends early (the origin restarted, a
proxy reset the connection), the rest is asked for with a Range request, a bounded number of times with backoff.

A resume is made only when the origin can tell it is the same content: the first response's strong ETag (or else
its Last-Modified) goes out as If-Range, so an origin whose content changed answers 200 and the fetch fails
instead of splicing two contents; without a validator, only content with a digest is resumed (the digest check
of the whole content at the end catches a change).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from dfcommon.backoff import BackoffPolicy
from dfcommon.content import ContentRequest
from dfcommon.errors import OriginError
from dfcommon.http_client import Response
from dfcommon.identity import display_url
from peer.origin_body import BodyReader, OriginCut

log = logging.getLogger(__name__)

MAX_STALLED_RESUMES = 5  # resumes in a row that bring no byte before the fetch fails
MAX_RESUMES = 20  # resumes of one body in all
RESUME_BACKOFF = BackoffPolicy(base=0.5, cap=8.0, jitter=0.5)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # an origin that is restarting or overloaded


@dataclass
class Opened:
    """A response whose status was checked, and the reader of its body."""

    response: Response
    reader: BodyReader

    async def close(self) -> None:
        """Stop reading and release the connection."""
        await self.reader.close()


# Opens the content from a byte offset (relative to the first response's first byte) with extra headers.
Opener = Callable[[int, Mapping[str, str]], Awaitable[Opened]]


@dataclass(frozen=True)
class Validator:
    """What tells the origin's content apart from a changed one, from the first response's headers."""

    etag: str = ""  # strong ETags only: If-Range must not use a weak one
    last_modified: str = ""
    has_digest: bool = False  # the content is checked against a digest at the end

    @classmethod
    def of(cls, response: Response, request: ContentRequest) -> Validator:
        """The validator of a first response."""
        etag = response.header("etag").strip()
        return cls(
            "" if etag.startswith("W/") else etag, response.header("last-modified").strip(), bool(request.digest)
        )

    @property
    def resumable(self) -> bool:
        """True when a Range request for the rest cannot splice two contents unnoticed."""
        return bool(self.etag or self.last_modified or self.has_digest)

    def headers(self) -> dict[str, str]:
        """The If-Range header of a resume ({} without a validator)."""
        value = self.etag or self.last_modified
        return {"If-Range": value} if value else {}

    def same(self, response: Response) -> bool:
        """False when a resumed response says it carries other content (another ETag)."""
        etag = response.header("etag").strip()
        return not (self.etag and etag and etag != self.etag)


def retryable(exc: OriginError) -> bool:
    """True for a failure a later attempt may not meet (the connection, or a restarting origin's status)."""
    return isinstance(exc, OriginCut) or exc.http_status in RETRY_STATUSES


class ResumingBody:
    """The chunks of an origin body from the first response and, after cuts, from Range requests for the rest."""

    def __init__(
        self,
        request: ContentRequest,
        first: Opened,
        opener: Opener,
        length: int,
        policy: BackoffPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.request = request
        self.current = first
        self.opener = opener
        self.length = length  # of the whole body, -1 when not known
        self.validator = Validator.of(first.response, request)
        self.policy = policy or RESUME_BACKOFF
        self.sleep = sleep
        self.resumes = 0
        self.piece_size = 0

    def cut_at(self, piece_size: int) -> None:
        """Hand the body over in buffers that end at piece boundaries (multiples of piece_size in the content)."""
        self.piece_size = piece_size
        self.current.reader.piece_size = piece_size

    async def chunks(self) -> AsyncIterator[memoryview]:
        """The whole body; OriginError when it cannot be had (the last cause named)."""
        got = 0
        stalled = 0
        while True:
            before = got
            try:
                async for chunk in self.current.reader.chunks():
                    got += len(chunk)
                    yield chunk
                if self.length < 0 or got >= self.length:
                    return
                why = f"origin ended early for {display_url(self.request.url)} ({got} of {self.length} bytes)"
            except OriginCut as exc:
                why = str(exc)
            stalled = 0 if got > before else stalled + 1
            stalled = await self._resume(got, why, stalled)

    async def _resume(self, offset: int, why: str, stalled: int) -> int:
        """Open the rest from offset, waiting with backoff between attempts; returns the attempts in a row that
        brought nothing, or raises OriginError once the bounds are reached or the origin's content changed."""
        url = display_url(self.request.url)
        while True:
            if not self.validator.resumable:
                raise OriginError(f"{why}; not resumed: the origin gave no ETag or Last-Modified")
            if stalled >= MAX_STALLED_RESUMES or self.resumes >= MAX_RESUMES:
                raise OriginError(f"{why} (gave up after {self.resumes} resumes)")
            self.resumes += 1
            delay = self.policy.delay(stalled + 1)
            log.info("%s; resuming at byte %d in %.1fs (resume %d)", why, offset, delay, self.resumes)
            await self.current.close()
            await self.sleep(delay)
            try:
                opened = await self.opener(offset, self.validator.headers())
            except OriginError as exc:
                if not retryable(exc):
                    raise OriginError(f"{why}; resuming failed: {exc}", exc.http_status) from None
                why, stalled = str(exc), stalled + 1
                continue
            if not self.validator.same(opened.response):
                await opened.close()
                raise OriginError(f"the content of {url} changed while it was fetched (another ETag)")
            opened.reader.piece_size = self.piece_size
            self.current = opened
            return stalled

    async def close(self) -> None:
        """Stop reading and release the connection in use."""
        await self.current.close()
