"""Back-to-source against origins without a length, that cut the body short, or that ignore Range."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, DigestMismatch, OriginError
from dfcommon.identity import task_id
from peer.context import PeerContext
from peer.storage import Storage
from peer.transferer import SwarmTransferer

DATA = os.urandom(9 << 20)  # two full 4 MiB pieces and a short one
URL = "http://origin.test/blob"


def chunked_body(data: bytes, cut: int | None = None) -> Callable[[], AsyncIterator[bytes]]:
    async def body() -> AsyncIterator[bytes]:
        end = len(data) if cut is None else cut
        for start in range(0, end, 300_000):
            yield data[start : min(end, start + 300_000)]

    return body


def make_transferer(tmp_path: Path, handler: Callable[[httpx.Request], httpx.Response]) -> SwarmTransferer:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SwarmTransferer(PeerContext(storage=Storage(tmp_path), scheduler=None, http=client))


async def read_all(transferer: SwarmTransferer, request: ContentRequest) -> bytes:
    stream = await transferer.open(request)
    return b"".join([chunk async for chunk in stream.chunks()])


async def test_origin_without_content_length(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=chunked_body(DATA)())

    transferer = make_transferer(tmp_path, handler)
    digest = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    stream = await transferer.open(ContentRequest(URL, digest=digest, headers={"Authorization": "x"}))
    assert b"".join([chunk async for chunk in stream.chunks()]) == DATA
    await stream.conductor.finished.wait()  # the cache entry is sealed just after the last byte went out
    assert seen[0].headers["accept-encoding"] == "identity"
    assert seen[0].headers["authorization"] == "x"
    store = transferer.ctx.storage.get_complete(task_id(URL, digest))
    assert store is not None and store.meta.content_length == len(DATA) and store.meta.piece_count == 3
    meta = (store.directory / "meta.json").read_text()
    assert "Authorization" not in meta and '"x"' not in meta
    await transferer.close()


@pytest.mark.parametrize("with_length", [True, False])
async def test_body_cut_short_fails_and_caches_nothing(tmp_path: Path, with_length: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Length": str(len(DATA))} if with_length else {}
        return httpx.Response(200, headers=headers, content=chunked_body(DATA, cut=5 << 20)())

    transferer = make_transferer(tmp_path, handler)
    digest = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    expected: type[DandelionError] = OriginError if with_length else DigestMismatch
    with pytest.raises(expected) as info:
        await read_all(transferer, ContentRequest(URL, digest=digest))
    assert ("ended early" if with_length else "has digest") in str(info.value)
    assert transferer.ctx.storage.get(task_id(URL, digest)) is None
    await transferer.close()


async def test_range_request_for_a_byte_range(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["range"] == "bytes=100-5000099"
        part = DATA[100:5_000_100]
        return httpx.Response(206, headers={"Content-Length": str(len(part))}, content=chunked_body(part)())

    transferer = make_transferer(tmp_path, handler)
    assert await read_all(transferer, ContentRequest(URL, byte_range="100-5000099")) == DATA[100:5_000_100]
    await transferer.close()


async def test_origin_ignoring_range_is_an_error(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(len(DATA))}, content=DATA)

    transferer = make_transferer(tmp_path, handler)
    with pytest.raises(OriginError) as info:
        await read_all(transferer, ContentRequest(URL, byte_range="10-19"))
    assert "ignored the Range request" in str(info.value)
    await transferer.close()
