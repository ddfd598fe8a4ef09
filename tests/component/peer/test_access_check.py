"""peer.access against a real HTTP origin on loopback: what it asks the origin, with which headers, how often, and
what it decides when the origin refuses, cannot be reached, or does not implement HEAD."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError
from dfcommon.http_client import HttpClient
from peer.access import AccessCheck, check_same_content

TOKEN = "Bearer tok-9f1c-never-stored"
BODY = b"x" * 5000


@dataclass
class Origin:
    """What the origin saw, (method, path, Authorization or ""), and whether it implements HEAD."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)
    head: bool = True
    url: str = ""
    stop: Callable[[], None] = lambda: None

    def count(self, path: str, method: str | None = None) -> int:
        return sum(1 for m, p, _ in self.seen if p == path and (method is None or m == method))


@pytest.fixture
def origin() -> Iterator[Origin]:
    """/pub: anyone; /priv: TOKEN only (401); /signed: HEAD always 403 (a method-signed URL), GET as /priv; else 404."""
    state = Origin()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, head: bool) -> None:
            auth = self.headers.get("Authorization", "")
            state.seen.append(("HEAD" if head else "GET", self.path, auth))
            if self.path == "/signed" and head:
                status = 403
            elif self.path in ("/priv", "/signed"):
                status = 200 if auth == TOKEN else 401
            else:
                status = 200 if self.path == "/pub" else 404
            body = BODY if status == 200 else b"no"
            if status == 200 and self.headers.get("Range") == "bytes=0-0":
                status, body = 206, BODY[:1]
            self.send_response(status)
            self.send_header("Connection", "close")  # nothing answers on a kept-alive connection once stopped
            self.send_header("Content-Length", str(len(BODY) if head and status == 200 else len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes 0-0/{len(BODY)}")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            if not state.head:
                self.send_error(501)
                return
            self._answer(head=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            server.shutdown()
            server.server_close()

    state.stop = stop
    try:
        yield state
    finally:
        stop()


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def check(clock: Clock, public_ttl: float = 600.0, grant_ttl: float = 60.0) -> AccessCheck:
    return AccessCheck(HttpClient(), public_ttl, grant_ttl, clock)


def request(origin: Origin, path: str, auth: str = "", digest: str = "") -> ContentRequest:
    return ContentRequest(origin.url + path, {"Authorization": auth} if auth else {}, digest=digest)


async def refused(access: AccessCheck, wanted: ContentRequest) -> DandelionError:
    with pytest.raises(DandelionError) as caught:
        await access.authorise(wanted)
    return caught.value


async def test_public_content_is_asked_about_once_per_ttl_and_outlives_its_origin(origin: Origin) -> None:
    clock = Clock()
    access = check(clock)
    assert await access.authorise(request(origin, "/pub")) == len(BODY)
    assert await access.authorise(request(origin, "/pub", auth="Bearer anything")) == len(BODY)
    assert origin.seen == [("HEAD", "/pub", "")], "one anonymous HEAD, whatever the later callers send"
    clock.now += 601
    await access.authorise(request(origin, "/pub"))
    assert origin.count("/pub") == 2, "asked again once the mark went stale"
    clock.now += 601
    origin.stop()
    assert await access.authorise(request(origin, "/pub")) == len(BODY), "public was its last word"
    error = await refused(access, request(origin, "/priv", auth=TOKEN))
    assert error.code == grpc.StatusCode.UNAVAILABLE
    where = origin.url.removeprefix("http://")
    assert str(error) == (
        f"origin unreachable: cannot check access to {origin.url}/priv (cannot connect to {where}: connection refused)"
    )


async def test_private_content_needs_the_callers_own_grant(origin: Origin) -> None:
    clock = Clock()
    access = check(clock)
    for auth in ("", "Bearer WRONG"):
        error = await refused(access, request(origin, "/priv", auth=auth))
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
        assert str(error) == f"access refused: origin answered HTTP 401 Unauthorized for {origin.url}/priv"
    origin.seen.clear()
    assert await access.authorise(request(origin, "/priv", auth=TOKEN)) == len(BODY)
    assert origin.seen == [("HEAD", "/priv", TOKEN)], "known private: only the caller's own probe"
    await access.authorise(request(origin, "/priv", auth=TOKEN))
    assert len(origin.seen) == 1, "the grant holds for its TTL"
    assert await refused(access, request(origin, "/priv", auth="Bearer WRONG")), "a grant is per credential"
    clock.now += 61
    await access.authorise(request(origin, "/priv", auth=TOKEN))
    assert origin.seen[-1] == ("HEAD", "/priv", TOKEN), "asked again once the grant expired"
    origin.stop()
    clock.now += 61
    assert (await refused(access, request(origin, "/priv", auth=TOKEN))).code == grpc.StatusCode.UNAVAILABLE
    kept = repr((access._public._items, access._private._items, access._grants._items))
    assert "tok-9f1c" not in kept and "WRONG" not in kept, "header values are never kept, only a keyed hash"


async def test_a_digest_under_a_url_the_origin_does_not_serve_is_refused(origin: Origin) -> None:
    access = check(Clock())
    error = await refused(access, request(origin, "/does-not-exist", digest="sha256:" + "ab" * 32))
    assert error.code == grpc.StatusCode.NOT_FOUND and "HTTP 404" in str(error)
    stated = await access.authorise(request(origin, "/pub", digest="sha256:" + "ab" * 32))
    with pytest.raises(DandelionError, match="serves 5000 bytes, not the 7 bytes of sha256:"):
        check_same_content(request(origin, "/pub", digest="sha256:" + "ab" * 32), stated, 7)
    check_same_content(request(origin, "/pub", digest="sha256:" + "ab" * 32), stated, len(BODY))
    check_same_content(request(origin, "/pub"), stated, 7)  # without a digest the URL is the task: nothing to bind


async def test_without_head_the_origin_is_asked_for_one_byte(origin: Origin) -> None:
    origin.head = False
    access = check(Clock(), public_ttl=0, grant_ttl=0)
    assert await access.authorise(request(origin, "/pub")) == len(BODY), "the total of the 206's Content-Range"
    await access.authorise(request(origin, "/priv", auth=TOKEN))
    assert origin.seen == [("GET", "/pub", ""), ("GET", "/priv", ""), ("GET", "/priv", TOKEN)], (
        "HEAD answered 501 once (not counted here), then GET of byte 0 only"
    )


async def test_a_head_refused_with_403_is_confirmed_with_get(origin: Origin) -> None:
    access = check(Clock())
    await access.authorise(request(origin, "/signed", auth=TOKEN))
    methods = [(m, a == TOKEN) for m, p, a in origin.seen if p == "/signed"]
    assert methods == [("HEAD", False), ("GET", False), ("HEAD", True), ("GET", True)]


async def test_callers_asking_at_once_share_one_probe(origin: Origin) -> None:
    access = check(Clock())
    await asyncio.gather(*(access.authorise(request(origin, "/pub")) for _ in range(20)))
    assert origin.count("/pub") == 1


async def test_added_latency_of_the_authorised_path(origin: Origin) -> None:
    """One probe per download once the URL is known private and the grant has expired (grant TTL 0 here)."""
    access = check(Clock(), grant_ttl=0)
    await access.authorise(request(origin, "/priv", auth=TOKEN))  # marks it private, opens the connection
    took = []
    for _ in range(50):
        began = time.perf_counter()
        await access.authorise(request(origin, "/priv", auth=TOKEN))
        took.append(time.perf_counter() - began)
    assert origin.count("/priv") == 2 + 50
    median = statistics.median(took)
    print(f"\nauthorised path, one HEAD on loopback: median {median * 1e3:.2f} ms, max {max(took) * 1e3:.2f} ms")
    assert median < 0.05
