"""Fetch content from its origin into a file, piece by piece, hashing as it goes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import ssl
from dataclasses import dataclass
from typing import Protocol

import httpx

from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DigestMismatch, InvalidArgument, OriginError
from dfcommon.identity import display_url
from dfcommon.metrics import ORIGIN_BYTES
from dfcommon.pieces import piece_size_for
from supernode.resource.piece import PieceMeta

_RANGE = re.compile(r"^(\d{1,19})-(\d{1,19})$")
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)


def parse_range(text: str) -> tuple[int, int]:
    """(start, end) of an inclusive "START-END" byte range; InvalidArgument when malformed."""
    match = _RANGE.match(text.strip())
    if not match or int(match.group(1)) > int(match.group(2)):
        raise InvalidArgument(f"invalid range {text[:80]!r}: want START-END with START <= END")
    return int(match.group(1)), int(match.group(2))


class PieceSink(Protocol):
    """Told what the fetch learns, as soon as it learns it."""

    def answered(self, content_length: int, piece_size: int) -> None:
        """The origin answered: content length (-1 when unknown) and the piece size to use."""

    def piece_written(self, piece: PieceMeta) -> None:
        """A piece is written and its sha256 known."""


@dataclass(frozen=True)
class FetchResult:
    """The whole fetched content."""

    content_length: int
    piece_size: int
    pieces: list[PieceMeta]
    sha256: str


def new_client(ca_file: str | None = None, insecure: bool = False) -> httpx.AsyncClient:
    """The HTTP client origin fetches share: redirects followed, TLS verified (also against ca_file)."""
    verify: ssl.SSLContext | bool = False
    if not insecure:
        verify = ssl.create_default_context()
        if ca_file:
            verify.load_verify_locations(cafile=ca_file)
    return httpx.AsyncClient(
        follow_redirects=True, timeout=TIMEOUT, limits=httpx.Limits(max_connections=64), verify=verify, trust_env=False
    )


# Headers that would change which bytes the origin sends: the task identity does not cover them.
_CONTENT_SHAPING = frozenset({"range", "accept-encoding", "if-range", "if-none-match", "if-modified-since"})


def _origin_headers(request: ContentRequest) -> dict[str, str]:
    """The caller's headers (credentials etc.), minus those that change the bytes, plus ours."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _CONTENT_SHAPING}
    headers["Accept-Encoding"] = "identity"  # pieces are cut from the bytes as the origin stores them
    if request.byte_range:
        start, end = parse_range(request.byte_range)
        headers["Range"] = f"bytes={start}-{end}"
    return headers


class _Writer:
    """Writes and hashes pieces in a worker thread, one at a time, in order."""

    def __init__(self, fd: int, piece_size: int, sink: PieceSink) -> None:
        self.fd = fd
        self.piece_size = piece_size
        self.sink = sink
        self.whole = hashlib.sha256()
        self.pieces: list[PieceMeta] = []
        self.offset = 0
        self._pending: asyncio.Future[None] | None = None
        self._offering = True

    def _write(self, number: int, offset: int, data: bytearray) -> PieceMeta:
        view = memoryview(data)
        written = 0
        while written < len(data):
            written += os.pwrite(self.fd, view[written:], offset + written)
        self.whole.update(data)
        return PieceMeta(number, offset, len(data), hashlib.sha256(data).hexdigest())

    async def _write_and_offer(self, number: int, offset: int, data: bytearray) -> None:
        piece = await asyncio.to_thread(self._write, number, offset, data)
        if self._offering:
            self.pieces.append(piece)
            self.sink.piece_written(piece)

    async def put(self, data: bytearray) -> None:
        """Queue one piece once the previous one is written: one write in flight, pieces offered in order, each
        as soon as it is on disk (not when the next piece has arrived from the origin)."""
        await self.flush()
        number, offset = len(self.pieces), self.offset
        self.offset += len(data)
        self._pending = asyncio.ensure_future(self._write_and_offer(number, offset, data))

    async def flush(self) -> None:
        """Wait until the piece being written is on disk and offered."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def cancel(self) -> None:
        """Wait for a write in flight (its thread uses fd) without offering it."""
        self._offering = False
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await asyncio.gather(asyncio.shield(pending), return_exceptions=True)


async def fetch_origin(
    client: httpx.AsyncClient, request: ContentRequest, fd: int, piece_base: int, sink: PieceSink
) -> FetchResult:
    """Fetch request's content into fd; raises OriginError or DigestMismatch."""
    shown = display_url(request.url, request.filtered_query_params)
    skip, limit = 0, -1
    if request.byte_range:
        start, end = parse_range(request.byte_range)
        limit = end - start + 1
    try:
        async with client.stream("GET", request.url, headers=_origin_headers(request)) as reply:
            if reply.status_code not in (200, 206):
                raise OriginError(
                    f"origin returned HTTP {reply.status_code} {reply.reason_phrase} for {shown}", reply.status_code
                )
            declared = _content_length(reply)
            if request.byte_range and reply.status_code == 200:
                skip = start  # the origin ignored Range: cut the range out of the whole content
                declared = min(limit, declared - start) if declared >= 0 else -1
            elif limit >= 0 and declared >= 0:
                declared = min(limit, declared)
            piece_size = piece_size_for(declared, piece_base) if declared >= 0 else piece_base
            sink.answered(declared, piece_size)
            writer = _Writer(fd, piece_size, sink)
            try:
                await _copy(reply, writer, skip, limit if limit >= 0 else declared)
                await writer.flush()
            except BaseException:
                await writer.cancel()
                raise
    except httpx.HTTPError as err:
        raise OriginError(f"origin fetch failed for {shown}: {type(err).__name__}", None) from None
    if declared >= 0 and writer.offset != declared:
        raise OriginError(f"origin sent {writer.offset} of {declared} bytes for {shown}", None)
    sha256 = writer.whole.hexdigest()
    if request.digest:
        await asyncio.to_thread(_check_digest, request, fd, writer.offset, sha256, shown)
    return FetchResult(writer.offset, piece_size, writer.pieces, sha256)


def _content_length(reply: httpx.Response) -> int:
    text = reply.headers.get("content-length", "")
    if reply.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
        return -1
    return int(text) if text.isdigit() else -1


async def _copy(reply: httpx.Response, writer: _Writer, skip: int, limit: int) -> None:
    """Copy the body into piece-sized buffers (one copy per byte), handing each full one to the writer."""
    size = writer.piece_size
    buffer = bytearray(size)
    spare: bytearray | None = None
    view = memoryview(buffer)
    fill = taken = 0
    counter = ORIGIN_BYTES.labels("supernode")
    async for chunk in reply.aiter_raw():
        counter.inc(len(chunk))
        data = memoryview(chunk)
        if skip:
            cut = min(skip, len(data))
            data, skip = data[cut:], skip - cut
        if limit >= 0:
            data = data[: max(0, limit - taken)]
        taken += len(data)
        while data:
            n = min(size - fill, len(data))
            view[fill : fill + n] = data[:n]
            data = data[n:]
            fill += n
            if fill == size:
                # put() returns once the previous piece is written, so its buffer is free again: two buffers
                # alternate instead of a new (page-faulted, zeroed) 4 MiB one per piece.
                await writer.put(buffer)
                buffer, spare = spare if spare is not None else bytearray(size), buffer
                view = memoryview(buffer)
                fill = 0
        if 0 <= limit <= taken:
            break
    if fill:
        await writer.put(buffer[:fill])


def _check_digest(request: ContentRequest, fd: int, length: int, sha256: str, shown: str) -> None:
    expected = parse_digest(request.digest)
    if expected.algorithm == "sha256":
        actual = sha256
    else:
        hasher = expected.hasher()
        offset = 0
        while offset < length:
            chunk = os.pread(fd, min(1 << 20, length - offset), offset)
            if not chunk:
                break
            hasher.update(chunk)
            offset += len(chunk)
        actual = hasher.hexdigest()
    if actual != expected.hex:
        raise DigestMismatch(f"content of {shown} has {expected.algorithm}:{actual}, want {expected}")
