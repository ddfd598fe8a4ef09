"""The mirror's HTTP behaviour seen directly: credentials, Range resume, bad input, upstream down."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cutting_proxy import cutting_proxy
from fixtures.clients import Dockerd, skopeo_copy_to_dir
from fixtures.images import MiB, build_and_push
from fixtures.registry import Registry
from mirror_support import PASSWORD, USER, assert_layers_fetched_once
from mirror_swarm import MirrorNode, MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]
DockerdFactory = Callable[..., Dockerd]
GOOD_AUTH = (USER, PASSWORD)
BAD_AUTH = (USER, PASSWORD + "-wrong")


def raw_status(node: MirrorNode, request_target: str, method: str = "GET") -> int:
    """Send one request with a target exactly as given (no client-side `..` normalisation); return the status."""
    with socket.create_connection((node.ip, node.mirror_port), timeout=30) as sock:
        request = f"{method} {request_target} HTTP/1.1\r\nHost: {node.mirror_addr}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    assert match, f"no HTTP status line for {request_target!r}: {head[:100]!r}"
    return int(match.group(1))


def assert_mirror_alive(node: MirrorNode, upstream_up: bool = True) -> None:
    """The mirror process runs and answers the API version check (a gateway error while upstream is down)."""
    assert node.proc.alive(), node.proc.tail()
    with node.client() as client:
        expected = (200, 401) if upstream_up else (200, 401, 502, 503, 504)
        assert client.get("/v2/").status_code in expected


def test_private_image_needs_credentials_even_where_another_node_holds_it(
    tmp_path: Path, basic_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """No or wrong credentials get 401 on every node, including the one whose cache holds the layers."""
    image = build_and_push(tmp_path, basic_registry.addr, "ns/secret", [2 * MiB, MiB], creds=f"{USER}:{PASSWORD}")
    holder, other = swarm_factory(basic_registry, nodes=2).nodes
    copy = skopeo_copy_to_dir(image.reference_via(holder.mirror_addr), tmp_path / "out", creds=f"{USER}:{PASSWORD}")
    assert copy.returncode == 0, copy.stderr
    layer = image.layer_digests[0]
    paths = [
        f"/v2/{image.repository}/manifests/{image.tag}",
        f"/v2/{image.repository}/manifests/{image.manifest_digest}",
        f"/v2/{image.repository}/blobs/{layer}",
    ]

    for node in (holder, other):
        with node.client() as client:
            challenge = client.get("/v2/")
            assert challenge.status_code == 401
            assert challenge.headers.get("www-authenticate", "").lower().startswith("basic")
            for path in paths:
                for auth in (None, BAD_AUTH):
                    for method in ("GET", "HEAD"):
                        response = client.request(method, path, auth=auth)
                        assert response.status_code == 401, (node.name, method, path, auth is not None)

    with other.client(auth=GOOD_AUTH) as client:
        response = client.get(f"/v2/{image.repository}/blobs/{layer}")
        assert response.status_code == 200
        assert "sha256:" + hashlib.sha256(response.content).hexdigest() == layer
    assert_layers_fetched_once(basic_registry, image)


def test_blob_download_cut_midway_resumes_with_range(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """A client that lost the connection after N bytes gets the rest with Range: bytes=N- (206)."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/ranged", [8 * MiB])
    layer, size = image.layer_digests[0], image.layer_sizes[0]
    node = swarm_factory(open_registry).nodes[0]
    path = f"/v2/{image.repository}/blobs/{layer}"

    first = b""
    with node.client() as client, client.stream("GET", path) as response:
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == size
        for chunk in response.iter_bytes():
            first += chunk
            if len(first) >= 3 * MiB:
                break  # leaving the block drops the connection mid-body
    cut = len(first)
    assert 0 < cut < size

    with node.client() as client:
        rest = client.get(path, headers={"Range": f"bytes={cut}-"})
        assert rest.status_code == 206
        assert rest.headers["content-range"] == f"bytes {cut}-{size - 1}/{size}"
        assert "sha256:" + hashlib.sha256(first + rest.content).hexdigest() == layer
        beyond = client.get(path, headers={"Range": f"bytes={size + 10}-"})
        assert beyond.status_code == 416
        huge = client.get(path, headers={"Range": "bytes=" + "9" * 5000 + "-"})  # no int(), no plain-text 500
        assert huge.status_code == 416 and huge.json()["errors"][0]["code"] == "RANGE_INVALID"
        to_the_end = client.get(path, headers={"Range": f"bytes={cut}-" + "9" * 5000})
        assert to_the_end.status_code == 206 and to_the_end.content == rest.content
    assert_layers_fetched_once(open_registry, image)


def test_docker_resumes_a_cut_layer_download(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """The connection drops 2 MiB into a layer; docker asks for the rest with Range and the pull completes."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/cut", [6 * MiB, MiB])
    node = swarm_factory(open_registry).nodes[0]
    docker = dockerd_factory()
    big = image.layer_digests[0]

    with cutting_proxy((node.ip, node.mirror_port), big, 2 * MiB) as proxy:
        reference = image.reference_via(proxy.addr)
        pull = docker.pull(reference)
        assert pull.returncode == 0, pull.stderr
        assert proxy.cuts == 1
        resumed = proxy.ranged_gets_of_cut_blob()
    assert resumed and all(start > 0 for start in resumed), proxy.requests
    assert docker.image_id(reference) == image.config_digest
    assert_layers_fetched_once(open_registry, image)


def test_bad_requests_get_clear_errors_and_the_mirror_keeps_serving(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """Invalid digests, `..` in names, unknown content and a TLS hello on the HTTP port."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/valid", [MiB])
    node = swarm_factory(open_registry).nodes[0]
    mark = open_registry.log_mark()

    with node.client() as client:
        for bad_digest in ("sha256:xyz", "sha256:" + "0" * 63, "md5:" + "0" * 32, "sha256:" + "A" * 64):
            response = client.get(f"/v2/ns/valid/blobs/{bad_digest}")
            assert response.status_code == 400, (bad_digest, response.status_code)
            assert "errors" in response.json()
        response = client.get(f"/v2/ns/valid/manifests/sha256:{'z' * 64}")
        assert response.status_code == 400
        unknown = client.get(f"/v2/ns/valid/blobs/sha256:{'0' * 64}")
        assert unknown.status_code == 404
        missing = client.get("/v2/ns/valid/manifests/no-such-tag")
        assert missing.status_code == 404

    for target in (
        f"/v2/ns/../etc/blobs/{image.layer_digests[0]}",
        "/v2/../../etc/passwd",
        f"/v2/ns/%2e%2e/valid/blobs/{image.layer_digests[0]}",
        "/v2/ns/valid/manifests/..",
        f"/v2/ns/valid/blobs/../../{image.layer_digests[0]}",
    ):
        status = raw_status(node, target)
        assert status in (400, 404), (target, status)

    # docker probes a registry with TLS first: the plain-HTTP port must shrug that off.
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((node.ip, node.mirror_port), timeout=10) as sock,
        pytest.raises((ssl.SSLError, OSError)),
        context.wrap_socket(sock, server_hostname=node.ip),
    ):
        pass

    upstream_targets = [record.target for record in open_registry.records_since(mark)]
    assert not [t for t in upstream_targets if ".." in t or "%2e" in t.lower()], upstream_targets
    assert_mirror_alive(node)
    with node.client() as client:
        assert client.get(f"/v2/ns/valid/blobs/{image.layer_digests[0]}").status_code == 200


def test_upstream_down_gives_gateway_errors_then_recovers(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """While the registry is down the mirror answers 502/503/504 with a registry error body; then it recovers."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/flaky", [MiB])
    node = swarm_factory(open_registry).nodes[0]
    open_registry.stop()
    try:
        with node.client() as client:
            for path in (
                f"/v2/{image.repository}/manifests/{image.tag}",
                f"/v2/{image.repository}/blobs/{image.layer_digests[0]}",
            ):
                response = client.get(path)
                assert response.status_code in (502, 503, 504), (path, response.status_code, response.text)
                assert "errors" in response.json()
        assert_mirror_alive(node, upstream_up=False)
    finally:
        open_registry.start()

    with node.client() as client:
        manifest = client.get(
            f"/v2/{image.repository}/manifests/{image.tag}", headers={"Accept": image.manifest_media_type}
        )
        assert manifest.status_code == 200
        assert manifest.headers["docker-content-digest"] == image.manifest_digest
        blob = client.get(f"/v2/{image.repository}/blobs/{image.layer_digests[0]}")
        assert blob.status_code == 200
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == image.layer_digests[0]


def _fetch_whole(node: MirrorNode, path: str) -> tuple[int, bytes | None]:
    """GET path; the status and the body, or None for the body if the transfer broke off."""
    with node.client() as client:
        try:
            response = client.get(path)
        except httpx.TransportError:
            return 0, None
        return response.status_code, response.content


def test_corrupted_upstream_blob_is_never_served_and_not_cached(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """Upstream sends bytes that do not match the digest: no client gets them whole; once fixed, all is well."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/corrupt", [4 * MiB])
    layer = image.layer_digests[0]
    stored = open_registry.blob_path(layer)
    original = stored.read_bytes()
    stored.write_bytes(os.urandom(len(original)))
    first, second = swarm_factory(open_registry, nodes=2).nodes
    path = f"/v2/{image.repository}/blobs/{layer}"

    for node in (first, second):
        status, body = _fetch_whole(node, path)
        assert not (status == 200 and body is not None and len(body) == len(original)), (node.name, status)
        assert body is None or "sha256:" + hashlib.sha256(body).hexdigest() != layer or status != 200
    assert first.proc.alive() and second.proc.alive()

    stored.write_bytes(original)
    deadline = time.monotonic() + 30
    for node in (second, first):
        while True:
            status, body = _fetch_whole(node, path)
            if status == 200 and body is not None:
                break
            assert time.monotonic() < deadline, f"{node.name} still fails after the upstream was fixed: {status}"
            time.sleep(1)
        assert "sha256:" + hashlib.sha256(body).hexdigest() == layer
