"""Whether the origin lets a caller read a URL, asked as seldom as the answers allow (dfcommon.origin_probe asks).

What the origin serves without any credentials is marked public for `public_ttl` and then costs no question; what
it refuses to anyone is marked private for as long, and then only the caller's own question is asked. A caller the
origin let in is remembered for `grant_ttl` under a keyed hash of its headers and the URL's user info (HMAC with a
key drawn at start and held in memory only): no header value is stored or logged. Callers asking the same question
at once share one probe; one that answered with a server error (5xx) is asked once more. When the origin cannot
answer, content whose last word was "public" still flows; anything else is refused.

Used by a dfdaemon for its local callers (peer.access) and by the supernode before it grants a registration
(supernode.access); each maps the refusals to its own messages and codes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, PermissionDenied, Unavailable
from dfcommon.http_client import HttpClient
from dfcommon.identity import display_url
from dfcommon.origin_probe import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    OriginProbe,
    ProbeAnswer,
    access_url,
    caller_headers,
)
from dfcommon.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

PUBLIC_TTL_S = 600.0  # a URL the origin served to anyone is not asked about again for this long
GRANT_TTL_S = 60.0  # a caller the origin let in is not asked about again for this long (per URL and headers)
MAX_ENTRIES = 4096  # marks and grants remembered, each; the oldest are forgotten first
SERVER_ERROR_PAUSE_S = 0.2  # an origin that answered 5xx is asked once more after this pause

# How a caller was let in (Admission.how): the origin serves the URL to anyone (asked now, remembered, or only
# remembered while the origin cannot answer), or lets this caller in (asked now, or remembered).
PUBLIC, PUBLIC_CACHED, PUBLIC_STALE = "public", "public-cached", "public-stale"
CALLER, CALLER_CACHED = "caller", "caller-cached"


@dataclass(frozen=True)
class Admission:
    """The origin lets the caller in: the content length it stated (-1 unknown), and how it was decided."""

    length: int
    how: str


class AccessRefused(DandelionError):
    """The origin refused the caller (its status in answer); str() is one line naming the status and the URL."""

    def __init__(self, message: str, code: grpc.StatusCode, answer: ProbeAnswer, shown: str) -> None:
        super().__init__(message, code)
        self.answer, self.shown = answer, shown


class AccessUndecided(Unavailable):
    """Nobody could ask the origin (unreachable, refused by the fetch policy, 5xx) and the URL is not public."""

    def __init__(self, message: str, answer: ProbeAnswer, shown: str) -> None:
        super().__init__(message)
        self.answer, self.shown = answer, shown


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
    """Decides whether a caller may have the content of a URL (see the module doc)."""

    def __init__(
        self,
        http: HttpClient,
        public_ttl: float = PUBLIC_TTL_S,
        grant_ttl: float = GRANT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        executor: Executor | None = None,
    ) -> None:
        self.probe = OriginProbe(http, connect_timeout, read_timeout, executor)
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
        headers = caller_headers(request.headers)
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
        """The content length the origin stated for the URL (-1 unknown) when it lets this caller read it; else
        AccessRefused (the origin's refusing status) or AccessUndecided (nobody could ask it)."""
        return (await self.admit(request)).length

    async def admit(self, request: ContentRequest) -> Admission:
        """As authorise, with how the caller was let in."""
        url = access_url(request.url)
        shown = display_url(request.url, request.filtered_query_params)
        credential = self._credential(request)
        if (public := self._fresh(self._public, url, self.public_ttl)) is not None:
            return Admission(public[1], PUBLIC_CACHED)
        if credential and (grant := self._fresh(self._grants, (url, credential), self.grant_ttl)) is not None:
            return Admission(grant[1], CALLER_CACHED)
        if not credential or self._fresh(self._private, url, self.public_ttl) is None:
            anonymous = await self._ask(url, url, {}, b"")
            if anonymous.allowed:
                return Admission(anonymous.length, PUBLIC)
            if anonymous.undecided:
                if (stale := self._public.get(url)) is not None:
                    self._log.log(
                        logging.INFO,
                        "stale",
                        f"{shown}: origin cannot say ({anonymous.reason}); serving it as public, its last word",
                    )
                    return Admission(stale[1], PUBLIC_STALE)
                raise self._undecided(shown, anonymous)
            if not credential:
                raise self._refused(shown, anonymous)
        answer = await self._ask(url, request.url, caller_headers(request.headers), credential)
        if answer.allowed:
            return Admission(answer.length, CALLER)
        raise self._undecided(shown, answer) if answer.undecided else self._refused(shown, answer)

    async def _ask(self, url: str, asked: str, headers: Mapping[str, str], credential: bytes) -> ProbeAnswer:
        """The origin's answer for asked (its access URL: url); callers asking the same question at once share one
        probe, and its answer is remembered before any of them resumes (a caller arriving meanwhile finds the mark,
        not a finished probe)."""
        key = (url, credential)
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.ensure_future(self._ask_and_remember(url, asked, headers, credential))
            self._asking[key] = asking
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        return await asyncio.shield(asking)

    async def _ask_and_remember(
        self, url: str, asked: str, headers: Mapping[str, str], credential: bytes
    ) -> ProbeAnswer:
        answer = await self.probe.ask(asked, headers)
        if answer.undecided and answer.status is not None and answer.status >= 500:
            # A server error is no access decision, and often one request's: distribution's pull-through cache
            # answered a HEAD that met its own first fetch of the blob with 500 "invalid checksum digest format"
            # (seen in CI), and the peer then read the layer itself, outside the swarm. Asked once more.
            await asyncio.sleep(SERVER_ERROR_PAUSE_S)
            answer = await self.probe.ask(asked, headers)
        if answer.undecided:
            return answer
        if credential:
            if answer.allowed:
                self._grants.set((url, credential), self.clock(), answer.length)
        elif answer.allowed:
            self._private.drop(url)
            self._public.set(url, self.clock(), answer.length)
        else:
            self._public.drop(url)
            self._private.set(url, self.clock(), -1)
        return answer

    def refusal_code(self, status: int) -> grpc.StatusCode:
        """The gRPC code a refusal with this HTTP status carries."""
        return grpc.StatusCode.PERMISSION_DENIED

    def _refused(self, shown: str, answer: ProbeAnswer) -> AccessRefused:
        assert answer.status is not None
        self._log.log(logging.INFO, f"refused-{answer.status}", f"{shown}: refused, origin answered {answer.status}")
        return AccessRefused(
            f"access refused: origin answered HTTP {answer.status} {answer.reason} for {shown}",
            self.refusal_code(answer.status),
            answer,
            shown,
        )

    def _undecided(self, shown: str, answer: ProbeAnswer) -> AccessUndecided:
        self._log.log(logging.INFO, "undecided", f"{shown}: cannot check access ({answer.reason})")
        if answer.refused_by_policy:
            message = f"{answer.reason}: cannot check access to {shown}"
        elif answer.status is not None:
            message = f"origin answered HTTP {answer.status} {answer.reason}: cannot check access to {shown}"
        else:
            message = f"origin unreachable: cannot check access to {shown} ({answer.reason})"
        return AccessUndecided(message, answer, shown)

    def close(self) -> None:
        """Close the probe's idle connections."""
        self.probe.close()


def check_same_content(request: ContentRequest, stated: int, content_length: int) -> None:
    """Content named by digest is handed out under a URL only when that URL's content is as long as it: a URL the
    caller may read that serves something else does not unlock another URL's content (the digest is the task)."""
    if request.digest and not request.byte_range and stated >= 0 and content_length >= 0 and stated != content_length:
        shown = display_url(request.url, request.filtered_query_params)
        raise PermissionDenied(
            f"access refused: {shown} serves {stated} bytes, not the {content_length} bytes of {request.digest}"
        )
