"""Layer prefetch against a real docker-registry with htpasswd auth: an image manifest served to a client hands
each of its layers to the swarm at once, with the client's own upstream authorisation; nothing else does."""

from __future__ import annotations

import asyncio
import base64

import httpx
from conftest import USERS
from fixtures.images import PushedImage
from fixtures.registry import Registry
from mirror_helpers import DOCKER_ACCEPT, DirectTransferer, MirrorRunner

from mirror.config import MirrorConfig

ALICE = "Basic " + base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()


def lines(authorization: str | None) -> list[tuple[str, str]]:
    accept = [("Accept", value) for value in DOCKER_ACCEPT]
    return [*accept, ("Authorization", authorization)] if authorization else accept


async def settle(transferer: DirectTransferer, want: int) -> None:
    for _ in range(100):
        if len(transferer.prefetched) >= want:
            return
        await asyncio.sleep(0.05)


async def test_manifest_get_prefetches_every_layer_with_the_clients_authorisation(
    mirrors: MirrorRunner, basic_registry: Registry, basic_image: PushedImage, transferer: DirectTransferer
) -> None:
    mirror = await mirrors.start(MirrorConfig(registry=basic_registry.url), transferer)
    url = f"{mirror}/v2/{basic_image.repository}/manifests/{basic_image.tag}"
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers=lines(ALICE))
    assert response.status_code == 200
    await settle(transferer, len(basic_image.layer_digests))
    assert [r.digest for r in transferer.prefetched] == list(basic_image.layer_digests)  # in manifest order
    for request in transferer.prefetched:
        assert request.url == f"{basic_registry.url}/v2/{basic_image.repository}/blobs/{request.digest}"
        assert request.headers.get("Authorization", "").startswith("Basic ")  # what the upstream accepted
    assert transferer.requests == []  # nothing was read: the swarm only starts loading


async def test_no_prefetch_for_head_refused_clients_or_when_off(
    mirrors: MirrorRunner, basic_registry: Registry, basic_image: PushedImage, transferer: DirectTransferer
) -> None:
    mirror = await mirrors.start(MirrorConfig(registry=basic_registry.url), transferer)
    quiet = await mirrors.start(MirrorConfig(registry=basic_registry.url, prefetch_layers=False), transferer)
    path = f"/v2/{basic_image.repository}/manifests/{basic_image.tag}"
    async with httpx.AsyncClient() as client:
        head = await client.head(mirror + path, headers=lines(ALICE))
        anonymous = await client.get(mirror + path, headers=lines(None))
        off = await client.get(quiet + path, headers=lines(ALICE))
    assert (head.status_code, anonymous.status_code, off.status_code) == (200, 401, 200)
    await asyncio.sleep(0.5)
    assert transferer.prefetched == []
