"""One cheap question to an origin: does it let whoever presents these headers read this URL?

The question is HEAD of the URL; GET of byte 0 where HEAD is refused (405, 501: remembered per origin) or doubted
(403: signed URLs sign the method too). It goes through an HttpClient built like the asker's origin client (its TLS
contexts and fetch policy, so the redirect rules of origin fetches apply), with the timeouts of a question rather
than a download, in a worker thread: the event loop never waits on the origin. Shared by a dfdaemon's check of its
local callers (peer.access) and the supernode's check of registrations (supernode.access).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from dfcommon.http_client import Cancel, HttpClient, HttpFailure, PolicyRefused, Response

CONNECT_TIMEOUT_S = 5.0  # a probe waits less than a download: the caller is waiting for its first byte
READ_TIMEOUT_S = 10.0
_DRAIN_LIMIT = 64 << 10  # a probe's body up to this size is read so its connection can be reused
_HEAD_REFUSED = frozenset({405, 501})  # HEAD not implemented: ask with GET from now on
_HEAD_DOUBTED = frozenset({403})  # signed URLs (S3 and the like) sign the method too: confirm with GET
_ASK_LATER = frozenset({408, 429})  # timed out, rate-limited: no answer about the caller
_NOT_SENT = frozenset({"range", "accept-encoding", "if-range"})  # the probe's own


@dataclass(frozen=True)
class ProbeAnswer:
    """What the origin said: its status (None when it could not be asked), the reason phrase or the transport
    failure, and the content length it stated (-1 unknown)."""

    status: int | None
    reason: str
    length: int = -1
    refused_by_policy: bool = False

    @property
    def allowed(self) -> bool:
        """The origin serves the URL to whoever asked."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def undecided(self) -> bool:
        """The origin could not say: unreachable, refused by the fetch policy, failing itself (5xx), or asking to
        be asked later (408, 429)."""
        return self.status is None or self.status >= 500 or self.status in _ASK_LATER


def access_url(url: str) -> str:
    """The URL the anonymous probe asks and marks are kept under: without user info and fragment (the query stays:
    a signed URL's signature is its credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def caller_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers as the probe sends them (a Range of its own is the probe's business)."""
    return {k: v for k, v in headers.items() if k.lower() not in _NOT_SENT}


class OriginProbe:
    """One question to the origin, in a worker thread: HEAD, or GET of byte 0 where HEAD is refused or doubted."""

    def __init__(
        self,
        http: HttpClient,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        executor: Executor | None = None,
    ) -> None:
        """executor: the threads the questions wait in (None: the event loop's default executor)."""
        # The asker's client's TLS contexts and fetch policy, with timeouts of a question rather than a download.
        self.http = HttpClient(
            http.ssl_context,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent=http.user_agent,
            policy=http.policy,
            origin_contexts=http.origin_contexts,
        )
        self._no_head: set[str] = set()  # scheme://host:port of origins that answered HEAD with 405 or 501
        self.executor = executor

    async def ask(self, url: str, headers: Mapping[str, str]) -> ProbeAnswer:
        """The origin's answer for url with headers; cancelling stops the exchange at once."""
        cancel = Cancel()
        loop = asyncio.get_running_loop()
        asking = loop.run_in_executor(self.executor, self._ask, url, dict(headers), cancel)
        try:
            return await asyncio.shield(asking)
        except asyncio.CancelledError:
            cancel.cancel()
            with contextlib.suppress(BaseException):
                await asking
            raise

    def _ask(self, url: str, headers: dict[str, str], cancel: Cancel) -> ProbeAnswer:
        headers["Accept-Encoding"] = "identity"
        origin = access_url(url).split("/", 3)[:3]
        key = "/".join(origin)
        try:
            if key not in self._no_head:
                answer = self._exchange("HEAD", url, headers, cancel)
                if answer.status in _HEAD_REFUSED:
                    self._no_head.add(key)
                elif answer.status not in _HEAD_DOUBTED:
                    return answer
            return self._exchange("GET", url, headers | {"Range": "bytes=0-0"}, cancel)
        except PolicyRefused as exc:
            return ProbeAnswer(None, str(exc), refused_by_policy=True)
        except HttpFailure as exc:
            return ProbeAnswer(None, str(exc))

    def _exchange(self, method: str, url: str, headers: Mapping[str, str], cancel: Cancel) -> ProbeAnswer:
        response = self.http.request(method, url, headers, cancel)
        try:
            return ProbeAnswer(response.status, response.reason, _stated_length(response))
        finally:
            _finish(response, method == "HEAD")

    def close(self) -> None:
        """Close the idle connections."""
        self.http.close()


def _stated_length(response: Response) -> int:
    """The whole content's length as a probe's answer states it (-1 unknown, or encoded on the wire)."""
    if response.header("content-encoding").lower() not in ("", "identity"):
        return -1
    if response.status == 206:
        total = response.header("content-range").rpartition("/")[2].strip()
        return int(total) if total.isdigit() and len(total) < 20 else -1
    length = response.header("content-length").strip()
    return int(length) if response.status == 200 and length.isdigit() and len(length) < 20 else -1


def _finish(response: Response, head: bool) -> None:
    """Read a small body to its end so the connection can be reused (a large one is cut: its connection closed)."""
    length = response.header("content-length")
    if head or not length.isdigit() or int(length) <= _DRAIN_LIMIT:
        buffer = memoryview(bytearray(16 << 10))
        read = 0
        with contextlib.suppress(HttpFailure):
            while read <= _DRAIN_LIMIT and (n := response.readinto(buffer)):
                read += n
    response.close()
