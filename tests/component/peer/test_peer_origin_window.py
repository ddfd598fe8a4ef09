"""The first window of a read for the swarm (peer.origin.open_origin with window), against real HTTP origins on
127.0.0.1: its answer tells the content's whole length, and origins that ignore Range, hold empty content or hide
the length still give all of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from loopback_origin import Answer, Origin, serve_origin

from dfcommon.content import ContentRequest
from peer.origin import new_client, open_origin

DATA = os.urandom(3 << 20)
WINDOW = 1 << 20


def ranged(data: bytes, total: str | None = None) -> Callable[[dict[str, str], str], Answer]:
    """An origin that answers Range requests with 206 (total: what it says after the slash), and 416 beyond."""

    def answer(headers: dict[str, str], path: str) -> Answer:
        if "range" not in headers:
            return Answer(200, {"Content-Length": str(len(data))}, data)
        first_text, _, last_text = headers["range"].removeprefix("bytes=").partition("-")
        first = int(first_text)
        if first >= len(data):
            return Answer(416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"})
        last = min(int(last_text), len(data) - 1) if last_text else len(data) - 1
        part = data[first : last + 1]
        content_range = f"bytes {first}-{last}/{len(data) if total is None else total}"
        return Answer(206, {"Content-Range": content_range, "Content-Length": str(len(part))}, part)

    return answer


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serve_origin(ranged(DATA)) as state:
        yield state


async def read_window(origin: Origin) -> tuple[int, int, bytes]:
    client = new_client()
    try:
        async with open_origin(client, ContentRequest(f"{origin.url}/blob"), window=WINDOW) as response:
            body = b"".join([bytes(chunk) async for chunk in response.body])
            return response.length, response.total, body
    finally:
        await client.aclose()


async def test_the_first_window_tells_the_whole_length(origin: Origin) -> None:
    assert await read_window(origin) == (WINDOW, len(DATA), DATA[:WINDOW])
    assert [headers["range"] for _, headers in origin.seen] == [f"bytes=0-{WINDOW - 1}"]


async def test_content_shorter_than_a_window_comes_whole(origin: Origin) -> None:
    origin.answer = ranged(DATA[:1000])
    assert await read_window(origin) == (1000, 1000, DATA[:1000])


async def test_an_origin_that_ignores_range_sends_all_at_once(origin: Origin) -> None:
    origin.answer = lambda headers, path: Answer(200, {"Content-Length": str(len(DATA))}, DATA)
    assert await read_window(origin) == (len(DATA), len(DATA), DATA)


async def test_empty_content_is_asked_for_without_a_range(origin: Origin) -> None:
    origin.answer = ranged(b"")
    assert await read_window(origin) == (0, 0, b"")
    assert "range" in origin.seen[0][1] and "range" not in origin.seen[1][1]


async def test_a_window_of_content_whose_length_is_hidden_is_read_again_whole(origin: Origin) -> None:
    origin.answer = ranged(DATA, total="*")
    assert await read_window(origin) == (len(DATA), len(DATA), DATA)
    assert "range" not in origin.seen[-1][1]
