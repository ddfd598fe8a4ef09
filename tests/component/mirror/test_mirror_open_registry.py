"""The mirror in front of a real open docker-registry: manifests, blobs, ranges, errors, robustness."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from fixtures.images import PushedImage
from fixtures.processes import free_port
from fixtures.registry import Registry
from mirror_helpers import DOCKER_ACCEPT, DirectTransferer, MirrorRunner

from dfcommon.content import ContentRequest
from dfcommon.errors import DigestMismatch, OriginError, Unavailable
from mirror.config import MirrorConfig
from mirror.transfer import BlobStream

V2S2 = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
async def mirror(mirrors: MirrorRunner, open_registry: Registry, transferer: DirectTransferer) -> str:
    """A mirror whose default upstream is the open registry."""
    return await mirrors.start(MirrorConfig(registry=open_registry.url), transferer)


def accept_lines(values: tuple[str, ...] = DOCKER_ACCEPT) -> list[tuple[str, str]]:
    return [("Accept", value) for value in values]


async def raw_request(base: str, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send a request line exactly as written (no client-side path normalisation)."""
    url = httpx.URL(base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_version_check_on_open_upstream(mirror: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{mirror}/v2/")
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


async def test_manifest_by_tag_with_six_accept_lines_keeps_the_upstream_digest(
    mirror: str, open_image: PushedImage
) -> None:
    url = f"{mirror}/v2/{open_image.repository}/manifests/{open_image.tag}"
    async with httpx.AsyncClient() as client:
        head = await client.head(url, headers=accept_lines())
        got = await client.get(url, headers=accept_lines())
    for response in (head, got):
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == open_image.manifest_digest
        assert response.headers["content-type"] == V2S2
    assert int(head.headers["content-length"]) == len(got.content)
    assert "sha256:" + hashlib.sha256(got.content).hexdigest() == open_image.manifest_digest
    assert json.loads(got.content)["config"]["digest"] == open_image.config_digest


async def test_accept_lines_decide_what_the_upstream_sends(
    mirror: str, open_registry: Registry, open_image: PushedImage
) -> None:
    """Control: without the client's Accept lines the upstream converts to signed schema 1 (another digest)."""
    path = f"/v2/{open_image.repository}/manifests/{open_image.tag}"
    schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    async with httpx.AsyncClient() as client:
        direct = await client.get(f"{open_registry.url}{path}")
        through = await client.get(f"{mirror}{path}", headers={"Accept": schema1})
    assert direct.headers["content-type"] == through.headers["content-type"] == schema1
    assert direct.headers["docker-content-digest"] != open_image.manifest_digest
    assert through.headers["docker-content-digest"] == direct.headers["docker-content-digest"]


async def test_manifest_by_digest_and_containerd_style_ns(
    mirrors: MirrorRunner, open_registry: Registry, open_image: PushedImage, transferer: DirectTransferer
) -> None:
    # The default upstream is unreachable: only ?ns= (or the header) can lead to the registry, allowed explicitly.
    dead = f"http://127.0.0.1:{free_port()}"
    mirror = await mirrors.start(MirrorConfig(registry=dead, allowed_registries=(open_registry.addr,)), transferer)
    url = f"{mirror}/v2/{open_image.repository}/manifests/{open_image.manifest_digest}"
    async with httpx.AsyncClient() as client:
        response = await client.get(
            url, params={"ns": open_registry.addr}, headers={"Accept": ", ".join(DOCKER_ACCEPT)}
        )
        by_header = await client.get(url, headers=[*accept_lines(), ("X-Dandelion-Registry", open_registry.url)])
        default = await client.get(url, headers=accept_lines())
    assert response.status_code == 200, response.text
    assert response.headers["docker-content-digest"] == open_image.manifest_digest
    assert by_header.status_code == 200
    assert "sha256:" + hashlib.sha256(by_header.content).hexdigest() == open_image.manifest_digest
    assert default.status_code == 503
    assert dead in default.json()["errors"][0]["message"]


async def test_unknown_manifest_and_blob_are_404(mirror: str, open_image: PushedImage) -> None:
    missing = "sha256:" + "0" * 64
    async with httpx.AsyncClient() as client:
        tag = await client.get(f"{mirror}/v2/{open_image.repository}/manifests/nope", headers=accept_lines())
        repo = await client.get(f"{mirror}/v2/no/such-repo/manifests/latest", headers=accept_lines())
        blob = await client.get(f"{mirror}/v2/{open_image.repository}/blobs/{missing}")
    assert (tag.status_code, tag.json()["errors"][0]["code"]) == (404, "MANIFEST_UNKNOWN")
    assert repo.status_code == 404
    assert repo.json()["errors"][0]["code"] in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")  # as the upstream said
    assert (blob.status_code, blob.json()["errors"][0]["code"]) == (404, "BLOB_UNKNOWN")


async def test_blobs_match_their_digests_through_the_transferer(
    mirror: str, open_registry: Registry, open_image: PushedImage, transferer: DirectTransferer
) -> None:
    async with httpx.AsyncClient() as client:
        for digest in open_image.blob_digests:
            url = f"{mirror}/v2/{open_image.repository}/blobs/{digest}"
            head = await client.head(url)
            got = await client.get(url)
            assert got.status_code == 200
            assert "sha256:" + hashlib.sha256(got.content).hexdigest() == digest
            assert int(head.headers["content-length"]) == len(got.content) == int(got.headers["content-length"])
            assert got.headers["docker-content-digest"] == digest
    requested = [(r.digest, r.url, offset) for r, offset in transferer.requests]
    assert requested == [
        (d, f"{open_registry.url}/v2/{open_image.repository}/blobs/{d}", 0) for d in open_image.blob_digests
    ]


async def test_range_requests(mirror: str, open_image: PushedImage) -> None:
    digest, size = open_image.layer_digests[1], open_image.layer_sizes[1]
    url = f"{mirror}/v2/{open_image.repository}/blobs/{digest}"
    async with httpx.AsyncClient() as client:
        whole = (await client.get(url)).content
        tail = await client.get(url, headers={"Range": "bytes=1000000-"})
        middle = await client.get(url, headers={"Range": "bytes=10-1048586"})
        head = await client.head(url, headers={"Range": "bytes=5-"})
        beyond = await client.get(url, headers={"Range": f"bytes={size}-"})
        garbage = await client.get(url, headers={"Range": "bytes=x-"})
    assert len(whole) == size
    assert tail.status_code == 206
    assert tail.headers["content-range"] == f"bytes 1000000-{size - 1}/{size}"
    assert tail.content == whole[1000000:]
    assert middle.status_code == 206
    assert middle.content == whole[10:1048587]
    assert int(middle.headers["content-length"]) == 1048577
    assert (head.status_code, int(head.headers["content-length"])) == (206, size - 5)
    for refused in (beyond, garbage):
        assert refused.status_code == 416
        assert refused.headers["content-range"] == f"bytes */{size}"
        assert refused.json()["errors"][0]["code"] == "RANGE_INVALID"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/dandelion/app/blobs/uploads/"),
        ("PATCH", "/v2/dandelion/app/blobs/uploads/1234"),
        ("PUT", "/v2/dandelion/app/blobs/uploads/1234?digest=sha256:" + "a" * 64),
        ("GET", "/v2/dandelion/app/blobs/uploads/1234"),
        ("PUT", "/v2/dandelion/app/manifests/latest"),
        ("DELETE", "/v2/dandelion/app/manifests/sha256:" + "a" * 64),
        ("DELETE", "/v2/dandelion/app/blobs/sha256:" + "a" * 64),
        ("POST", "/v2/"),
    ],
)
async def test_push_and_delete_are_405(mirror: str, method: str, path: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.request(method, f"{mirror}{path}", content=b"x" if method != "DELETE" else None)
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("/v2/dandelion/../etc/manifests/latest", 400, "NAME_INVALID"),
        ("/v2/../../etc/passwd/blobs/sha256:" + "a" * 64, 400, "NAME_INVALID"),
        ("/v2/dandelion/%2e%2e/app/manifests/latest", 400, "NAME_INVALID"),
        ("/v2/Dandelion/App/manifests/latest", 400, "NAME_INVALID"),
        ("/v2/dandelion/app/manifests/..", 400, "TAG_INVALID"),
        ("/v2/dandelion/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
        ("/v2/dandelion/app/blobs/md5:" + "a" * 32, 400, "DIGEST_INVALID"),
        ("/v2/dandelion/app/blobs/latest", 400, "DIGEST_INVALID"),
        ("/v2/dandelion/app/manifests/sha256:" + "A" * 64, 400, "DIGEST_INVALID"),
        ("/v1/search", 404, "NOT_FOUND"),
        ("/", 404, "NOT_FOUND"),
    ],
)
async def test_bad_requests(mirror: str, open_registry: Registry, target: str, status: int, code: str) -> None:
    mark = open_registry.log_mark()
    got_status, body = await raw_request(mirror, target)
    assert got_status == status
    assert json.loads(body)["errors"][0]["code"] == code
    assert open_registry.records_since(mark) == []  # nothing bad went upstream


async def test_upstream_down_is_503_naming_it(mirrors: MirrorRunner, transferer: DirectTransferer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    mirror = await mirrors.start(MirrorConfig(registry=dead), transferer)
    async with httpx.AsyncClient() as client:
        for path in ("/v2/", "/v2/a/b/manifests/latest", "/v2/a/b/blobs/sha256:" + "a" * 64):
            response = await client.get(f"{mirror}{path}")
            assert response.status_code == 503
            error = response.json()["errors"][0]
            assert error["code"] == "UNAVAILABLE"
            assert f"upstream {dead} is unreachable" in error["message"]


async def test_slow_upstream_is_504_within_the_timeout(mirrors: MirrorRunner, transferer: DirectTransferer) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        config = MirrorConfig(registry=f"http://127.0.0.1:{port}", read_timeout_s=0.5)
        mirror = await mirrors.start(config, transferer)
        async with httpx.AsyncClient(timeout=10) as client:
            started = asyncio.get_running_loop().time()
            response = await client.get(f"{mirror}/v2/a/b/manifests/latest")
            elapsed = asyncio.get_running_loop().time() - started
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert response.status_code == 504
    assert "did not answer within 0.5 s" in response.json()["errors"][0]["message"]
    assert elapsed < 5
    assert accepted


async def test_tls_client_hello_does_not_hurt_the_server(mirror: str) -> None:
    url = httpx.URL(mirror)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for _ in range(3):  # dockerd tries TLS first on every pull
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port, ssl=context, server_hostname="127.0.0.1"), 10
            )
            writer.close()
    # A raw hello followed by garbage, without waiting for an answer.
    with socket.create_connection((url.host, url.port)) as raw:
        raw.sendall(bytes.fromhex("16030100a5010000a10303") + b"\x00" * 160)
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{mirror}/v2/")).status_code == 200


async def test_digest_mismatch_cuts_the_response(
    mirrors: MirrorRunner, open_registry: Registry, open_image: PushedImage
) -> None:
    corrupting = DirectTransferer(corrupt=True)
    try:
        mirror = await mirrors.start(MirrorConfig(registry=open_registry.url), corrupting)
        digest, size = open_image.layer_digests[1], open_image.layer_sizes[1]
        received = bytearray()
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                async with client.stream("GET", f"{mirror}/v2/{open_image.repository}/blobs/{digest}") as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_raw():
                        received += chunk
            assert len(received) < size  # the client never got a complete (bad) blob
            assert (await client.get(f"{mirror}/v2/")).status_code == 200  # and the server lives on
    finally:
        await corrupting.aclose()


async def test_serve_mirror_binds_its_listen_address(transferer: DirectTransferer, tmp_path: Path) -> None:
    from mirror.server import serve_mirror

    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve_mirror(MirrorConfig(listen=f"127.0.0.1:{port}"), transferer, stop))
    try:
        for _ in range(100):
            try:
                async with httpx.AsyncClient() as client:
                    response = await client.post(f"http://127.0.0.1:{port}/v2/x/blobs/uploads/")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        assert response.status_code == 405
        # A second mirror on the same address fails with one clear line instead of exiting the process.
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_mirror(MirrorConfig(listen=f"127.0.0.1:{port}"), transferer, asyncio.Event())
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


class FailingTransferer:
    """A swarm that fails to open, with a given error, or never answers."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def open(self, request: ContentRequest, offset: int = 0) -> BlobStream:
        """Fail (or hang when error is None)."""
        if self.error is None:
            await asyncio.Event().wait()
        assert self.error is not None
        raise self.error

    def holds(self, request: ContentRequest) -> bool:
        """Nothing is cached."""
        return False

    async def prefetch(self, request: ContentRequest) -> bool:
        """The swarm takes nothing."""
        return False


@pytest.mark.parametrize(
    ("error", "status", "code", "message"),
    [
        (OriginError("origin returned HTTP 404 Not Found", 404), 404, "BLOB_UNKNOWN", "blob unknown to upstream"),
        (OriginError("origin returned HTTP 403 Forbidden", 403), 403, "DENIED", "denied the blob"),
        (OriginError("origin returned HTTP 500", 500), 502, "UNAVAILABLE", "fetching the blob from"),
        (Unavailable("supernode unreachable"), 503, "UNAVAILABLE", "supernode unreachable"),
        (DigestMismatch("piece 3 is bad"), 502, "UNAVAILABLE", "does not match its digest"),
        (None, 504, "UNAVAILABLE", "did not start delivering"),
    ],
)
async def test_swarm_failures_before_the_first_byte(
    mirrors: MirrorRunner,
    open_registry: Registry,
    open_image: PushedImage,
    error: Exception | None,
    status: int,
    code: str,
    message: str,
) -> None:
    config = MirrorConfig(registry=open_registry.url, blob_open_timeout_s=0.3)
    mirror = await mirrors.start(config, FailingTransferer(error))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{mirror}/v2/{open_image.repository}/blobs/{open_image.config_digest}")
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code
    assert message in response.json()["errors"][0]["message"]
