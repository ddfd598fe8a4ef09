"""Test doubles for the swarm side of the mirror: a direct origin fetcher and a pre-filled swarm cache."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from dfcommon.content import ContentRequest
from dfcommon.errors import NotFound, OriginError, Unavailable
from mirror.config import MirrorConfig
from mirror.server import serve_mirror
from mirror.transfer import BlobStream, BlobTransferer

CHUNK = 1024 * 1024

DOCKER_ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
)


class HttpStream:
    """A blob stream straight from an origin response (optionally corrupting one byte)."""

    def __init__(self, response: httpx.Response, content_length: int, corrupt: bool) -> None:
        self._response = response
        self._length = content_length
        self._corrupt = corrupt

    @property
    def content_length(self) -> int:
        """Total blob length."""
        return self._length

    @property
    def verifies_digest(self) -> bool:
        """The origin's bytes are not checked: the mirror must."""
        return False

    def downloaded(self) -> bool:
        """Never: every byte comes from the origin as it is sent."""
        return False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in order."""
        async for chunk in self._response.aiter_bytes(CHUNK):
            if self._corrupt and chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                self._corrupt = False
            yield chunk

    async def aclose(self) -> None:
        """Close the origin response."""
        await self._response.aclose()


@dataclass
class DirectTransferer:
    """Fetches the upstream URL itself with the given headers, as a peer going back to source would."""

    corrupt: bool = False
    requests: list[tuple[ContentRequest, int]] = field(default_factory=list)
    prefetched: list[ContentRequest] = field(default_factory=list)
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(follow_redirects=True, timeout=30))

    async def open(self, request: ContentRequest, offset: int = 0) -> BlobStream:
        """GET the URL from offset."""
        self.requests.append((request, offset))
        headers = dict(request.headers)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = await self.client.send(
                self.client.build_request("GET", request.url, headers=headers), stream=True
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"origin unreachable: {exc}") from None
        if response.status_code not in (200, 206):
            await response.aclose()
            raise OriginError(f"origin returned HTTP {response.status_code}", response.status_code)
        if response.status_code == 206:
            total = int(response.headers["content-range"].rpartition("/")[2])
        else:
            total = int(response.headers["content-length"])
        return HttpStream(response, total, self.corrupt)

    def holds(self, request: ContentRequest) -> bool:
        """Nothing is cached: every open() fetches."""
        return False

    async def prefetch(self, request: ContentRequest) -> bool:
        """Record the prefetch (a peer would have the supernode seed the content)."""
        self.prefetched.append(request)
        return True

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


class MemoryStream:
    """Bytes already held by the swarm."""

    def __init__(self, data: bytes, offset: int) -> None:
        self._data = data
        self._offset = offset

    @property
    def content_length(self) -> int:
        """Total blob length."""
        return len(self._data)

    @property
    def verifies_digest(self) -> bool:
        """Held bytes are not checked here: the mirror must."""
        return False

    def downloaded(self) -> bool:
        """Held already."""
        return True

    async def chunks(self) -> AsyncIterator[bytes]:
        """The held bytes from offset."""
        for start in range(self._offset, len(self._data), CHUNK):
            await asyncio.sleep(0)
            yield self._data[start : start + CHUNK]

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass
class SwarmCache:
    """A swarm in which some node already holds blobs: serves them by digest, never asking the origin."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)

    async def open(self, request: ContentRequest, offset: int = 0) -> BlobStream:
        """Serve the digest from memory."""
        self.opened.append(request.digest)
        if request.digest not in self.blobs:
            raise NotFound(f"no peer holds {request.digest}")
        return MemoryStream(self.blobs[request.digest], offset)

    def holds(self, request: ContentRequest) -> bool:
        """Held blobs are not this host's cache: they come from other nodes."""
        return False

    async def prefetch(self, request: ContentRequest) -> bool:
        """Nothing to load: the blobs are held already."""
        return False


StartMirror = Callable[[MirrorConfig, BlobTransferer], Awaitable[str]]


class MirrorRunner:
    """Runs serve_mirror in-process on 127.0.0.1:<port 0> and stops it by its stop event."""

    def __init__(self) -> None:
        self._running: list[tuple[asyncio.Event, asyncio.Task[None], socket.socket]] = []

    async def start(self, config: MirrorConfig, transferer: BlobTransferer) -> str:
        """Start a mirror; returns its base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        stop = asyncio.Event()
        task = asyncio.create_task(serve_mirror(config, transferer, stop, sock=sock))
        self._running.append((stop, task, sock))
        await asyncio.sleep(0.05)
        if task.done():
            task.result()
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop_all(self) -> None:
        """Stop every mirror started here and wait for it."""
        for stop, task, sock in self._running:
            stop.set()
            await asyncio.wait_for(task, 15)
            sock.close()
        self._running.clear()
