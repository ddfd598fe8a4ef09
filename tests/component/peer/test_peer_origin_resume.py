"""An origin body cut mid-way is resumed with Range (If-Range), bounded, and never splices two contents."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock, Thread

import pytest

from dfcommon.backoff import BackoffPolicy
from dfcommon.content import ContentRequest
from dfcommon.errors import OriginError
from dfcommon.identity import task_id
from peer import origin_resume
from peer.context import PeerContext
from peer.origin import new_client, open_origin
from peer.storage import Storage
from peer.transferer import SwarmTransferer

DATA = os.urandom(10 << 20)
CUT = (5 << 20) + 12345  # not on a piece boundary


@dataclass
class RangedOrigin:
    """A threaded HTTP/1.1 origin on 127.0.0.1 serving DATA with Range and If-Range; plan(n) says, for the n-th
    request, (ETag or "" for none, bytes of the answer to send before cutting the connection or None)."""

    plan: Callable[[int], tuple[str, int | None]]
    requests: list[dict[str, str]] = field(default_factory=list)
    sent: int = 0
    url: str = ""
    lock: Lock = field(default_factory=Lock)


@pytest.fixture
def origin() -> Iterator[RangedOrigin]:
    state = RangedOrigin(plan=lambda n: ('"v1"', None))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                state.requests.append(headers)
                etag, cut = state.plan(len(state.requests) - 1)
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("range", ""))
            if_range = headers.get("if-range")
            ranged = match is not None and (if_range is None or if_range == etag)
            start = int(match.group(1)) if match and ranged else 0
            end = int(match.group(2)) if match and ranged and match.group(2) else len(DATA) - 1
            self.send_response(206 if ranged else 200)
            if etag:
                self.send_header("ETag", etag)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(DATA)}")
            self.send_header("Content-Length", str(end + 1 - start))
            self.end_headers()
            body = DATA[start : end + 1] if cut is None else DATA[start : min(end + 1, start + cut)]
            try:
                for at in range(0, len(body), 256 << 10):
                    part = body[at : at + (256 << 10)]
                    self.wfile.write(part)
                    with state.lock:
                        state.sent += len(part)
            except (BrokenPipeError, ConnectionResetError):
                return
            if cut is not None:
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/blob"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(origin_resume, "RESUME_BACKOFF", BackoffPolicy(base=0.01, cap=0.05))


@pytest.fixture
async def transferer(tmp_path: Path) -> SwarmTransferer:
    swarm = SwarmTransferer(PeerContext(storage=Storage(tmp_path), scheduler=None, http=new_client()))
    yield swarm  # type: ignore[misc]
    await swarm.close()
    await swarm.ctx.http.aclose()


async def download(transferer: SwarmTransferer, request: ContentRequest) -> bytes:
    stream = await transferer.open(request)
    return b"".join([chunk async for chunk in stream.chunks()])


async def test_a_cut_body_is_resumed_with_if_range(origin: RangedOrigin, transferer: SwarmTransferer) -> None:
    origin.plan = lambda n: ('"v1"', CUT if n == 0 else None)
    assert await download(transferer, ContentRequest(origin.url)) == DATA
    assert len(origin.requests) == 2
    assert origin.requests[1]["range"] == f"bytes={CUT}-" and origin.requests[1]["if-range"] == '"v1"'
    assert origin.sent == len(DATA)  # every byte once


async def test_repeated_cuts_with_progress_are_all_resumed(origin: RangedOrigin, transferer: SwarmTransferer) -> None:
    origin.plan = lambda n: ('"v1"', 1 << 20 if n < 8 else None)  # more cuts than resumes in a row may fail
    assert await download(transferer, ContentRequest(origin.url)) == DATA
    assert len(origin.requests) == 9 and origin.sent == len(DATA)


async def test_changed_content_is_not_spliced(origin: RangedOrigin, transferer: SwarmTransferer) -> None:
    origin.plan = lambda n: ('"v1"', CUT) if n == 0 else ('"v2"', None)
    with pytest.raises(OriginError, match="changed while it was fetched"):
        await download(transferer, ContentRequest(origin.url))
    assert transferer.ctx.storage.get(task_id(origin.url, "")) is None


async def test_without_validator_or_digest_a_cut_fails(origin: RangedOrigin, transferer: SwarmTransferer) -> None:
    origin.plan = lambda n: ("", CUT)
    with pytest.raises(OriginError, match=r"ended early.*not resumed: the origin gave no ETag or Last-Modified"):
        await download(transferer, ContentRequest(origin.url))
    assert len(origin.requests) == 1


async def test_without_validator_a_digest_allows_the_resume(origin: RangedOrigin, transferer: SwarmTransferer) -> None:
    origin.plan = lambda n: ("", CUT if n == 0 else None)
    digest = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    assert await download(transferer, ContentRequest(origin.url, digest=digest)) == DATA
    assert origin.requests[1]["range"] == f"bytes={CUT}-" and "if-range" not in origin.requests[1]


async def test_resumes_that_bring_nothing_are_bounded(origin: RangedOrigin, transferer: SwarmTransferer) -> None:
    origin.plan = lambda n: ('"v1"', CUT if n == 0 else 0)
    with pytest.raises(OriginError, match=r"gave up after \d+ resumes"):
        await download(transferer, ContentRequest(origin.url))
    assert len(origin.requests) == 1 + origin_resume.MAX_STALLED_RESUMES


async def test_a_cut_range_request_is_resumed_within_its_range(origin: RangedOrigin) -> None:
    """The back-to-source path of a partial task asks for runs of missing pieces: a cut run resumes inside it."""
    origin.plan = lambda n: ('"v1"', 1 << 20 if n == 0 else None)
    client = new_client()
    start, end = 4 << 20, (8 << 20) - 1
    async with open_origin(client, ContentRequest(origin.url), start, end) as response:
        assert response.length == end + 1 - start
        got = b"".join([bytes(chunk) async for chunk in response.body])
    await client.aclose()
    assert got == DATA[start : end + 1]
    assert [r["range"] for r in origin.requests] == [f"bytes={start}-{end}", f"bytes={start + (1 << 20)}-{end}"]
