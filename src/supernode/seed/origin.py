"""Fetch content from its origin into a file, piece by piece, hashing as it goes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import ssl
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, DigestMismatch, InvalidArgument, OriginError, Unavailable
from dfcommon.fetchpolicy import FetchPolicy, unreachable
from dfcommon.http_client import Cancel, HttpClient, HttpFailure, Response
from dfcommon.identity import display_url
from dfcommon.metrics import ORIGIN_BYTES
from dfcommon.piecedigest import DEFAULT_ALGORITHM, digest_of
from dfcommon.pieces import piece_size_for
from supernode.resource.piece import PieceMeta

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^(\d{1,19})-(\d{1,19})$")
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0  # an origin silent this long mid-body fails the fetch
READ_SIZE = 1 << 20  # bytes per readinto(): the whole-content hash follows each read while it is in cache
MAX_FETCHES = 64  # origin fetches running at once; more wait for a thread


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
        """A piece is written and its digest known."""


@dataclass(frozen=True)
class FetchResult:
    """The whole fetched content."""

    content_length: int
    piece_size: int
    pieces: list[PieceMeta]
    sha256: str
    source_piece_size: int = 0  # a copy from a peer: the piece size that peer holds the content in


def new_fetcher(ca_file: str | None = None, insecure: bool = False, policy: FetchPolicy | None = None) -> OriginFetcher:
    """The fetcher origin fetches share: redirects followed, TLS verified (also against ca_file), every address
    connected to allowed by policy."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        context.load_verify_locations(cafile=ca_file)
    client = HttpClient(
        context,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        user_agent="dandelion-supernode",
        policy=policy,
    )
    return OriginFetcher(client)


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


class _LoopSink:
    """Hands what a fetch thread learns to the PieceSink on the event loop, in order, until closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: PieceSink) -> None:
        self.loop = loop
        self.sink = sink
        self.open = True

    def _deliver(self, notify: Callable[..., None], *args: object) -> None:
        if self.open:
            notify(*args)

    def answered(self, content_length: int, piece_size: int) -> None:
        self.loop.call_soon_threadsafe(self._deliver, self.sink.answered, content_length, piece_size)

    def piece_written(self, piece: PieceMeta) -> None:
        self.loop.call_soon_threadsafe(self._deliver, self.sink.piece_written, piece)


class _Fetch:
    """One origin fetch, run in a worker thread: the body is read into piece buffers (hashing the whole content as
    it arrives) while a writer thread writes and hashes the previous piece; each piece is offered once on disk."""

    def __init__(
        self,
        fetcher: OriginFetcher,
        request: ContentRequest,
        fd: int,
        piece_base: int,
        sink: _LoopSink,
        piece_digest: str,
    ) -> None:
        self.fetcher = fetcher
        self.request = request
        self.fd = fd
        self.piece_base = piece_base
        self.piece_digest = piece_digest
        self.sink = sink
        self.shown = display_url(request.url, request.filtered_query_params)
        self.whole = hashlib.sha256()
        self.pieces: list[PieceMeta] = []
        self._cancel = Cancel()

    def abort(self) -> None:
        """From any thread: stop waiting for and reading the origin at once (the thread then ends with an error)."""
        self._cancel.cancel()

    def run(self) -> FetchResult:
        request = self.request
        try:
            response = self.fetcher.client.get(request.url, _origin_headers(request), self._cancel)
        except HttpFailure as err:
            raise self._failure(err) from None
        try:
            return self._receive(response)
        except HttpFailure as err:
            raise self._failure(err) from None
        finally:
            response.close()

    def _failure(self, err: HttpFailure) -> DandelionError:
        """The error of a fetch that got no (or no whole) HTTP answer. The detail (refused by the fetch policy,
        connection refused, timed out, not HTTP...) is logged here; remote callers (RegisterTask, PreheatTask, the
        task's error) get one message for all of them, so that they cannot map which ports are open."""
        if self._cancel.cancelled:
            return Unavailable(f"origin fetch of {self.shown} cancelled")
        log.warning("origin fetch failed for %s: %s", self.shown, err)
        return unreachable(self.shown)

    def _receive(self, response: Response) -> FetchResult:
        request = self.request
        if response.status not in (200, 206):
            raise OriginError(
                f"origin returned HTTP {response.status} {response.reason} for {self.shown}", response.status
            )
        skip, limit = 0, -1
        declared = _content_length(response)
        if request.byte_range:
            start, end = parse_range(request.byte_range)
            limit = end - start + 1
            if response.status == 200:
                skip = start  # the origin ignored Range: cut the range out of the whole content
                declared = min(limit, declared - start) if declared >= 0 else -1
            elif declared >= 0:
                declared = min(limit, declared)
        piece_size = piece_size_for(declared, self.piece_base) if declared >= 0 else self.piece_base
        self.sink.answered(declared, piece_size)
        length = self._copy(response, piece_size, skip, limit if limit >= 0 else declared)
        if declared >= 0 and length != declared:
            raise OriginError(f"origin sent {length} of {declared} bytes for {self.shown}", None)
        return FetchResult(length, piece_size, self.pieces, self.whole.hexdigest())

    def _copy(self, response: Response, piece_size: int, skip: int, limit: int) -> int:
        """Read the body (after skip bytes, at most limit when >= 0) piece by piece; the byte count.

        Two buffers alternate: piece n is read into one while the writer thread writes piece n - 1 from the other.
        """
        counter = ORIGIN_BYTES.labels("supernode")
        buffers = [bytearray(piece_size), bytearray(piece_size)]
        writing: Future[None] | None = None
        number = offset = 0
        try:
            while limit < 0 or offset < limit:
                view = memoryview(buffers[number % 2])
                want = piece_size if limit < 0 else min(piece_size, limit - offset)
                fill = 0
                while fill < want:
                    n = response.readinto(view[fill : fill + min(READ_SIZE, want - fill)])
                    if not n:
                        break
                    counter.inc(n)
                    if skip:
                        cut = min(skip, n)
                        skip -= cut
                        view[fill : fill + n - cut] = view[fill + cut : fill + n]
                        n -= cut
                    self.whole.update(view[fill : fill + n])
                    fill += n
                if writing is not None:
                    writing.result()  # piece n - 1 is on disk: its buffer is free for piece n + 1
                    writing = None
                if fill:
                    writing = self.fetcher.writers.submit(self._write, number, offset, view[:fill])
                    number += 1
                    offset += fill
                if fill < want:
                    break  # the body ended
            if writing is not None:
                writing.result()
                writing = None
        finally:
            if writing is not None:
                wait([writing])  # never leave a write in flight on fd
        return offset

    def _write(self, number: int, offset: int, data: memoryview) -> None:
        """In a writer thread, one piece at a time in order: write, hash, offer (as soon as it is on disk)."""
        written = 0
        while written < len(data):
            written += os.pwrite(self.fd, data[written:], offset + written)
        piece = PieceMeta(number, offset, len(data), digest_of(self.piece_digest, (data,)))
        self.pieces.append(piece)
        self.sink.piece_written(piece)


class OriginFetcher:
    """Runs origin fetches in worker threads: a reader thread per fetch, and writer threads for its pieces."""

    def __init__(self, client: HttpClient, max_fetches: int = MAX_FETCHES) -> None:
        self.client = client
        self.readers = ThreadPoolExecutor(max_fetches, thread_name_prefix="origin-read")
        self.writers = ThreadPoolExecutor(max_fetches, thread_name_prefix="origin-write")

    async def fetch(
        self,
        request: ContentRequest,
        fd: int,
        piece_base: int,
        sink: PieceSink,
        piece_digest: str = DEFAULT_ALGORITHM,
    ) -> FetchResult:
        """Fetch request's content into fd; raises OriginError or DigestMismatch.

        Cancelling this stops the fetch thread and waits for it: nothing writes to fd after this returns.
        """
        loop = asyncio.get_running_loop()
        relay = _LoopSink(loop, sink)
        job = _Fetch(self, request, fd, piece_base, relay, piece_digest)
        submitted = self.readers.submit(job.run)
        running = asyncio.wrap_future(submitted, loop=loop)
        try:
            result = await asyncio.shield(running)
        except asyncio.CancelledError:
            relay.open = False
            if not submitted.cancel():  # it runs already (or ran): stop it and wait for it to end
                job.abort()
                while not running.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait([running])
            raise
        except BaseException:
            relay.open = False
            raise
        if request.digest:
            await asyncio.to_thread(_check_digest, request, fd, result.content_length, result.sha256, job.shown)
        return result

    async def aclose(self) -> None:
        """Close idle connections and let the worker threads go (running fetches are cancelled by their jobs)."""
        self.client.close()
        self.readers.shutdown(wait=False)
        self.writers.shutdown(wait=False)


def _content_length(response: Response) -> int:
    text = response.header("content-length")
    if response.header("content-encoding").lower() not in ("identity", ""):
        return -1
    return int(text) if text.isdigit() else -1


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
