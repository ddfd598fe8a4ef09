"""Back-to-source: content (or ranges of it) from the origin, read in a worker thread (dfcommon.http_client).

The body is read with readinto() into 1 MiB buffers by one thread per fetch, a few buffers ahead of the event
loop that cuts it into pieces: ~0.25 CPU-s per GB, against ~1.7 for httpx reading on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument, OriginError
from dfcommon.fetchpolicy import FetchPolicy
from dfcommon.http_client import Cancel, HttpClient, HttpFailure, Response
from dfcommon.identity import display_url
from peer.byterange import parse_byte_range

CHUNK = 1 << 20
READ_AHEAD = 4  # chunks the reader thread may hold before the event loop has taken them
CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 60.0  # without a byte from the origin


@dataclass
class OriginResponse:
    """An origin's answer: the length of what it sends (-1 unknown) and the body."""

    length: int
    body: AsyncIterator[memoryview]


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


class _Body:
    """The reader thread of one response and the event loop's side of it."""

    def __init__(self, request: ContentRequest, response: Response, cancel: Cancel) -> None:
        self.request = request
        self.response = response
        self.cancel = cancel
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[memoryview | BaseException | None] = asyncio.Queue()
        self.room = threading.Semaphore(READ_AHEAD)
        self.stopping = False
        self.reader: asyncio.Future[None] | None = None

    async def chunks(self) -> AsyncIterator[memoryview]:
        """The body, in chunks of up to 1 MiB; OriginError when the transfer fails."""
        if self.reader is None:
            self.reader = asyncio.ensure_future(asyncio.to_thread(self._read))
        while (item := await self.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            self.room.release()
            yield item

    def _hand(self, item: memoryview | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _read(self) -> None:
        """In the worker thread: fill fresh buffers (the previous ones belong to pieces now) and hand them over."""
        try:
            while True:
                self.room.acquire()
                if self.stopping:
                    return
                view = memoryview(bytearray(CHUNK))
                fill = 0
                while fill < CHUNK and (n := self.response.readinto(view[fill:])):
                    fill += n
                if fill:
                    self._hand(view[:fill])
                if fill < CHUNK:
                    self._hand(None)
                    return
        except HttpFailure as exc:
            self._hand(OriginError(f"cannot fetch {display_url(self.request.url)}: {exc}"))
        except BaseException as exc:  # never leave the consumer waiting
            self._hand(exc)

    async def stop(self) -> None:
        """Stop the reader (shutting the connection down if the body was not read to its end) and wait for it."""
        self.stopping = True
        reader = self.reader
        if reader is not None and not reader.done():
            self.cancel.cancel()
            self.room.release()
            with contextlib.suppress(BaseException):
                await asyncio.shield(reader)


@asynccontextmanager
async def open_origin(
    client: OriginClient, request: ContentRequest, start: int = 0, end: int | None = None
) -> AsyncIterator[OriginResponse]:
    """Open content bytes [start, end] (inclusive, relative to the request's own range) at the origin."""
    headers = _headers(request, start, end)
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
        raise OriginError(f"cannot fetch {display_url(request.url)}: {exc}") from None
    body = _Body(request, response, cancel)
    try:
        if response.status >= 400:
            raise origin_error(request, response.status, response.reason)
        if "Range" in headers and response.status != 206:
            raise OriginError(f"origin ignored the Range request for {display_url(request.url)}", response.status)
        length_text = response.header("content-length")
        length = int(length_text) if length_text.isdigit() else -1
        if response.header("content-encoding").lower() not in ("", "identity"):
            length = -1  # Content-Length counts the encoded bytes, which are what is stored
        yield OriginResponse(length, body.chunks())
    finally:
        await body.stop()
        response.close()


def tls_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The TLS context for origin HTTPS: the system CAs plus ca_file, or no verification at all when insecure."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load CA bundle {ca_file}: {exc}") from None
    return context


def tls_verification(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext | bool:
    """httpx's verify for the same settings (the mirror's registry client): a context, or False when insecure."""
    return False if insecure else tls_context(ca_file)


def new_client(ca_file: str | None = None, insecure: bool = False, policy: FetchPolicy | None = None) -> OriginClient:
    """The client for origin fetches (follows redirects; a read timeout per read, none on the whole body; every
    address connected to allowed by policy, by default link-local refused)."""
    http = HttpClient(
        tls_context(ca_file, insecure),
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        user_agent="dandelion-peer",
        policy=policy,
    )
    return OriginClient(http)
