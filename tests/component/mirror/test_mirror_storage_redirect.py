"""A registry that redirects blobs to object storage (like Docker Hub or S3-backed distribution)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Generator

import httpx
import pytest
import uvicorn
from mirror_helpers import DirectTransferer, MirrorRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mirror.config import MirrorConfig

BLOB = os.urandom(3 * 1024 * 1024 + 7)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
AUTH = "Basic " + base64.b64encode(b"carol:pw").decode()
SIGNATURE = "X-Amz-Signature=abc123&X-Amz-Expires=600"


def storage_app(seen: list[tuple[str, str | None]]) -> Starlette:
    """Object storage: serves by signed URL only and, like S3, refuses requests carrying an Authorization header."""

    async def blob(request: Request) -> Response:
        seen.append((request.method, request.headers.get("authorization")))
        if request.headers.get("authorization") or request.query_params.get("X-Amz-Signature") != "abc123":
            return Response(b"<Error>InvalidArgument</Error>", status_code=400)
        start = 0
        if request.headers.get("range"):
            start = int(request.headers["range"].removeprefix("bytes=").split("-")[0])
            headers = {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"}
            return Response(BLOB[start:], status_code=206, headers=headers)
        return Response(BLOB if request.method == "GET" else b"", headers={"Content-Length": str(len(BLOB))})

    return Starlette(routes=[Route("/blob", blob, methods=["GET", "HEAD"])])


def registry_app(storage: str) -> Starlette:
    """A registry with Basic auth whose blob endpoints answer 307 to the storage."""

    async def blob(request: Request) -> Response:
        if request.headers.get("authorization") != AUTH:
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.path_params["digest"] != DIGEST:
            return Response(status_code=404)
        return RedirectResponse(f"{storage}/blob?{SIGNATURE}", status_code=307)

    return Starlette(routes=[Route("/v2/ns/img/blobs/{digest}", blob, methods=["GET", "HEAD"])])


class QuietServer(uvicorn.Server):
    """uvicorn that leaves the test process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(app: Starlette) -> tuple[str, uvicorn.Server, asyncio.Task[None], socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = QuietServer(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, task, sock


@pytest.fixture
async def redirecting_registry() -> AsyncIterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    storage_url, storage, storage_task, storage_sock = await serve(storage_app(seen))
    registry_url, registry, registry_task, registry_sock = await serve(registry_app(storage_url))
    try:
        yield registry_url, seen
    finally:
        for server, task, sock in ((registry, registry_task, registry_sock), (storage, storage_task, storage_sock)):
            server.should_exit = True
            await task
            sock.close()


async def test_blobs_redirected_to_storage(
    mirrors: MirrorRunner, redirecting_registry: tuple[str, list[tuple[str, str | None]]]
) -> None:
    registry_url, storage_seen = redirecting_registry
    transferer = DirectTransferer()  # follows redirects like the peer's and the supernode's origin fetchers
    try:
        mirror = await mirrors.start(MirrorConfig(registry=registry_url), transferer)
        url = f"{mirror}/v2/ns/img/blobs/{DIGEST}"
        async with httpx.AsyncClient() as client:
            refused = await client.get(url)
            head = await client.head(url, headers={"Authorization": AUTH})
            whole = await client.get(url, headers={"Authorization": AUTH})
            tail = await client.get(url, headers={"Authorization": AUTH, "Range": "bytes=1000-"})
    finally:
        await transferer.aclose()
    assert refused.status_code == 401
    assert (head.status_code, int(head.headers["content-length"])) == (200, len(BLOB))
    assert whole.status_code == 200 and whole.content == BLOB
    assert tail.status_code == 206 and tail.content == BLOB[1000:]
    # The credentials went to the registry only; the storage saw signed URLs without them.
    assert storage_seen and all(auth is None for _, auth in storage_seen)
    assert ("HEAD", None) in storage_seen and ("GET", None) in storage_seen
    request, _ = transferer.requests[0]
    assert (request.url, request.digest) == (f"{registry_url}/v2/ns/img/blobs/{DIGEST}", DIGEST)
