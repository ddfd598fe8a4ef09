"""Local callers' access: before content from this host's cache or the swarm goes to a local caller (dfget), the
origin is asked, with the caller's own headers, whether it lets that caller read that URL.

The question is one cheap request (HEAD; GET of byte 0 where HEAD is refused) through the peer's origin client, so
the fetch policy, the origin TLS settings and the redirect rules of back-to-source apply to it. What the origin
serves without any credentials is marked public for `public_ttl` and then costs no question; a caller's grant is
kept for `grant_ttl` under a keyed hash of its headers (never the values: nothing of them is stored or logged).
When the origin cannot answer, content whose last word was "public" still flows; anything else is refused.

Only DaemonService.Download and the one-shot peer ask: the registry mirror asks its upstream itself before it
calls the transferer in-process, and preheat and the seed role are no local callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import grpc

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, Unavailable
from dfcommon.http_client import Cancel, HttpClient, HttpFailure, PolicyRefused, Response
from dfcommon.identity import display_url
from dfcommon.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

PUBLIC_TTL_S = 600.0  # a URL the origin served to anyone is not asked about again for this long
GRANT_TTL_S = 60.0  # a caller the origin let in is not asked about again for this long (per URL and headers)
CONNECT_TIMEOUT_S = 5.0  # a probe waits less than a download: the caller is waiting for its first byte
READ_TIMEOUT_S = 10.0
MAX_ENTRIES = 4096  # marks and grants remembered, each; the oldest are forgotten first
_DRAIN_LIMIT = 64 << 10  # a probe's body up to this size is read so its connection can be reused
_HEAD_REFUSED = frozenset({405, 501})  # HEAD not implemented: ask with GET from now on
_HEAD_DOUBTED = frozenset({403})  # signed URLs (S3 and the like) sign the method too: confirm with GET
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
        """The origin could not say: unreachable, refused by the fetch policy, or failing itself (5xx)."""
        return self.status is None or self.status >= 500


def access_url(url: str) -> str:
    """The URL the anonymous probe asks and marks are kept under: without user info and fragment (the query stays:
    a signed URL's signature is its credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def caller_headers(request: ContentRequest) -> dict[str, str]:
    """The caller's headers as the probe sends them (a Range of its own is the probe's business)."""
    return {k: v for k, v in request.headers.items() if k.lower() not in _NOT_SENT}


class OriginProbe:
    """One question to the origin, in a worker thread: HEAD, or GET of byte 0 where HEAD is refused or doubted."""

    def __init__(self, http: HttpClient) -> None:
        # The peer's client's TLS contexts and fetch policy, with timeouts of a question rather than a download.
        self.http = HttpClient(
            http.ssl_context,
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            user_agent=http.user_agent,
            policy=http.policy,
            origin_contexts=http.origin_contexts,
        )
        self._no_head: set[str] = set()  # scheme://host:port of origins that answered HEAD with 405 or 501

    async def ask(self, url: str, headers: Mapping[str, str]) -> ProbeAnswer:
        """The origin's answer for url with headers; cancelling stops the exchange at once."""
        cancel = Cancel()
        asking = asyncio.ensure_future(asyncio.to_thread(self._ask, url, dict(headers), cancel))
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


class _Expiring:
    """Keys with the time they were set, at most MAX_ENTRIES (the oldest forgotten first)."""

    def __init__(self) -> None:
        self._items: OrderedDict[object, tuple[float, int]] = OrderedDict()

    def set(self, key: object, now: float, length: int) -> None:
        self._items[key] = (now, length)
        self._items.move_to_end(key)
        while len(self._items) > MAX_ENTRIES:
            self._items.popitem(last=False)

    def get(self, key: object) -> tuple[float, int] | None:
        return self._items.get(key)

    def drop(self, key: object) -> None:
        self._items.pop(key, None)


class AccessCheck:
    """Decides whether a local caller may have content from this host's cache or the swarm (see the module doc)."""

    def __init__(
        self,
        http: HttpClient,
        public_ttl: float = PUBLIC_TTL_S,
        grant_ttl: float = GRANT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = OriginProbe(http)
        self.public_ttl = public_ttl
        self.grant_ttl = grant_ttl
        self.clock = clock
        self._key = secrets.token_bytes(32)  # the grants' hash key: this process's memory only
        self._public = _Expiring()  # access URL -> the anonymous probe was let in (the last word while it stands)
        self._private = _Expiring()  # access URL -> the anonymous probe was turned away
        self._grants = _Expiring()  # (access URL, keyed hash of the caller's headers) -> the caller was let in
        self._asking: dict[tuple[str, bytes], asyncio.Future[ProbeAnswer]] = {}
        self._log = RateLimitedLog(log)

    def _credential(self, request: ContentRequest) -> bytes:
        """A keyed hash of what the caller presents beyond the URL: its headers and the URL's user info ("" when
        there is none of either)."""
        headers = caller_headers(request)
        userinfo = urlsplit(request.url).netloc.rpartition("@")[0]
        if not headers and not userinfo:
            return b""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for name, value in sorted((k.lower(), v) for k, v in headers.items()):
            mac.update(f"{len(name)}:{name}{len(value)}:".encode() + value.encode())
        mac.update(b"@" + userinfo.encode())
        return mac.digest()

    def _fresh(self, marks: _Expiring, key: object, ttl: float) -> tuple[float, int] | None:
        entry = marks.get(key)
        return entry if entry is not None and self.clock() - entry[0] < ttl else None

    async def authorise(self, request: ContentRequest) -> int:
        """Return the content length the origin stated for the URL (-1 unknown) when it lets this caller read it;
        otherwise raise the one-line error the caller gets (the origin's refusing status, or that nobody could
        be asked)."""
        url = access_url(request.url)
        shown = display_url(request.url, request.filtered_query_params)
        credential = self._credential(request)
        if (public := self._fresh(self._public, url, self.public_ttl)) is not None:
            return public[1]
        if credential and (grant := self._fresh(self._grants, (url, credential), self.grant_ttl)) is not None:
            return grant[1]
        if not credential or self._fresh(self._private, url, self.public_ttl) is None:
            anonymous = await self._ask(url, {}, b"")
            if anonymous.allowed:
                self._private.drop(url)
                self._public.set(url, self.clock(), anonymous.length)
                return anonymous.length
            if anonymous.undecided:
                if (stale := self._public.get(url)) is not None:
                    self._log.log(
                        logging.INFO,
                        "stale",
                        f"{shown}: origin cannot say ({anonymous.reason}); serving it as public, its last word",
                    )
                    return stale[1]
                raise self._undecided(shown, anonymous)
            self._public.drop(url)
            self._private.set(url, self.clock(), -1)
            if not credential:
                raise self._refused(shown, anonymous)
        answer = await self._ask(request.url, caller_headers(request), credential)
        if answer.allowed:
            self._grants.set((url, credential), self.clock(), answer.length)
            return answer.length
        raise self._undecided(shown, answer) if answer.undecided else self._refused(shown, answer)

    async def _ask(self, url: str, headers: Mapping[str, str], credential: bytes) -> ProbeAnswer:
        """The origin's answer; callers asking the same question at once share one probe."""
        key = (url, credential)
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.ensure_future(self.probe.ask(url, headers))
            self._asking[key] = asking
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        return await asyncio.shield(asking)

    def _refused(self, shown: str, answer: ProbeAnswer) -> DandelionError:
        assert answer.status is not None
        self._log.log(logging.INFO, f"refused-{answer.status}", f"{shown}: refused, origin answered {answer.status}")
        return DandelionError(
            f"access refused: origin answered HTTP {answer.status} {answer.reason} for {shown}",
            _refusal_code(answer.status),
        )

    def _undecided(self, shown: str, answer: ProbeAnswer) -> DandelionError:
        self._log.log(logging.INFO, "undecided", f"{shown}: cannot check access ({answer.reason})")
        if answer.refused_by_policy:
            return Unavailable(f"{answer.reason}: cannot check access to {shown}")
        if answer.status is not None:
            return Unavailable(f"origin answered HTTP {answer.status} {answer.reason}: cannot check access to {shown}")
        return Unavailable(f"origin unreachable: cannot check access to {shown} ({answer.reason})")

    def close(self) -> None:
        """Close the probe's idle connections."""
        self.probe.close()


def _refusal_code(status: int) -> grpc.StatusCode:
    return {401: grpc.StatusCode.UNAUTHENTICATED, 404: grpc.StatusCode.NOT_FOUND, 410: grpc.StatusCode.NOT_FOUND}.get(
        status, grpc.StatusCode.PERMISSION_DENIED
    )


def check_same_content(request: ContentRequest, stated: int, content_length: int) -> None:
    """Content named by digest is handed out under a URL only when that URL's content is as long as it: a URL the
    caller may read that serves something else does not unlock another URL's content (the digest is the task)."""
    if request.digest and not request.byte_range and stated >= 0 and content_length >= 0 and stated != content_length:
        shown = display_url(request.url, request.filtered_query_params)
        raise DandelionError(
            f"access refused: {shown} serves {stated} bytes, not the {content_length} bytes of {request.digest}",
            grpc.StatusCode.PERMISSION_DENIED,
        )
