"""Back-to-source: content (or ranges of it) from the origin, read in a worker thread (dfcommon.http_client).

The body is read with readinto() into 1 MiB buffers by one thread per fetch, a few buffers ahead of the event
loop that cuts it into pieces: ~0.25 CPU-s per GB, against ~1.7 for httpx reading on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dfcommon.byterange import parse_byte_range
from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument, OriginError
from dfcommon.fetchpolicy import FetchPolicy
from dfcommon.http_client import Cancel, HttpClient, HttpFailure, tls_context
from dfcommon.identity import display_url
from peer.origin_body import BodyReader, OriginCut
from peer.origin_resume import Opened, ResumingBody

CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 60.0  # without a byte from the origin


def _no_pieces(piece_size: int) -> None:
    pass


@dataclass
class OriginResponse:
    """An origin's answer: the length of what it sends (-1 unknown) and the body; cut_at(piece_size) before the
    body is read makes each chunk end at piece boundaries, so a piece is whole as soon as its last byte arrived."""

    length: int
    body: AsyncIterator[memoryview]
    cut_at: Callable[[int], None] = _no_pieces


class OriginClient:
    """The peer's origin client: blocking GETs run in worker threads (redirects, TLS, kept-alive connections)."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def aclose(self) -> None:
        """Close the idle connections."""
        self.http.close()


def _headers(request: ContentRequest, start: int, end: int | None) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("range", "accept-encoding")}
    headers["Accept-Encoding"] = "identity"
    base, base_end = parse_byte_range(request.byte_range) if request.byte_range else (0, None)
    first = base + start
    last = base + end if end is not None else base_end
    if first or last is not None:
        headers["Range"] = f"bytes={first}-{'' if last is None else last}"
    return headers


def origin_error(request: ContentRequest, status: int, reason: str) -> OriginError:
    """The one-line error for an origin's failing status."""
    return OriginError(f"origin returned HTTP {status} {reason} for {display_url(request.url)}", status)


def _first_byte(content_range: str) -> int | None:
    """The first byte position of a Content-Range value ("bytes 5-9/10"), None when malformed."""
    unit, _, rest = content_range.strip().partition(" ")
    first = rest.partition("-")[0]
    return int(first) if unit.lower() == "bytes" and first.isdigit() and len(first) < 20 else None


async def _open(client: OriginClient, request: ContentRequest, headers: dict[str, str], at: int) -> Opened:
    """GET with headers; the response checked (error statuses, a Range answered as asked) and its body reader
    (at: the content offset of the body's first byte)."""
    cancel = Cancel()
    getting = asyncio.ensure_future(asyncio.to_thread(client.http.get, request.url, headers, cancel))
    try:
        response = await asyncio.shield(getting)
    except asyncio.CancelledError:
        cancel.cancel()  # the thread gives up at once; its response, if any, is closed
        with contextlib.suppress(BaseException):
            (await getting).close()
        raise
    except HttpFailure as exc:
        raise OriginCut(f"cannot fetch {display_url(request.url)}: {exc}") from None
    try:
        if response.status >= 400:
            raise origin_error(request, response.status, response.reason)
        if "Range" in headers:
            if response.status == 200 and "If-Range" in headers:
                raise OriginError(f"the content of {display_url(request.url)} changed while it was fetched (If-Range)")
            if response.status != 206:
                raise OriginError(f"origin ignored the Range request for {display_url(request.url)}", response.status)
            asked = int(headers["Range"].removeprefix("bytes=").partition("-")[0])
            content_range = response.header("content-range")  # required with a 206, but not every origin sends it
            if content_range and _first_byte(content_range) != asked:
                raise OriginError(f"origin answered another range than asked for {display_url(request.url)}")
    except BaseException:
        response.close()
        raise
    return Opened(response, BodyReader(request, response, cancel, at))


@asynccontextmanager
async def open_origin(
    client: OriginClient, request: ContentRequest, start: int = 0, end: int | None = None
) -> AsyncIterator[OriginResponse]:
    """Open content bytes [start, end] (inclusive, relative to the request's own range) at the origin; a body cut
    on the way is resumed with Range requests (peer.origin_resume)."""

    def opener(offset: int, extra: Mapping[str, str]) -> Awaitable[Opened]:
        return _open(client, request, _headers(request, start + offset, end) | dict(extra), start + offset)

    first = await _open(client, request, _headers(request, start, end), start)
    response = first.response
    length_text = response.header("content-length")
    length = int(length_text) if length_text.isdigit() else -1
    if response.header("content-encoding").lower() not in ("", "identity"):
        length = -1  # Content-Length counts the encoded bytes, which are what is stored
    body = ResumingBody(request, first, opener, length)
    chunks = body.chunks()
    try:
        yield OriginResponse(length, chunks, body.cut_at)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
        await body.close()


@dataclass(frozen=True)
class OriginTls:
    """One HTTPS origin's own TLS settings: an extra CA bundle, or no verification."""

    host: str
    port: int
    ca_file: str | None = None
    insecure: bool = False


def tls_verification(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext | bool:
    """httpx's verify for the same settings (the mirror's registry client): a context, or False when insecure."""
    return False if insecure else tls_context(ca_file)


def new_client(
    ca_file: str | None = None,
    insecure: bool = False,
    policy: FetchPolicy | None = None,
    per_origin: Sequence[OriginTls] = (),
) -> OriginClient:
    """The client for origin fetches (follows redirects; a read timeout per read, none on the whole body; every
    address connected to allowed by policy, by default link-local refused). per_origin: HTTPS origins with their own
    CA bundle (on top of ca_file) or no verification (the mirror's per-upstream settings)."""
    contexts: dict[tuple[str, int], ssl.SSLContext] = {}
    for tls in per_origin:
        context = tls_context(ca_file, insecure or tls.insecure)
        if tls.ca_file and not (insecure or tls.insecure):
            try:
                context.load_verify_locations(cafile=tls.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidArgument(f"cannot load CA bundle {tls.ca_file}: {exc}") from None
        contexts[(tls.host.lower(), tls.port)] = context
    http = HttpClient(
        tls_context(ca_file, insecure),
        origin_contexts=contexts,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        user_agent="dandelion-peer",
        policy=policy,
    )
    return OriginClient(http)
