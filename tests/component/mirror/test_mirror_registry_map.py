"""An in-process mirror with a --registry-map entry in front of a real docker-registry: every route by ?ns=, by the
header and by the mapped name before the repository name; the default upstream is a dead address, so any request
that reached it instead would answer 503."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from fixtures.images import PushedImage
from fixtures.processes import free_port
from fixtures.registry import Registry
from mirror_helpers import DOCKER_ACCEPT, DirectTransferer, MirrorRunner

from mirror.config import MirrorConfig

DEAD = f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def mirror(mirrors: MirrorRunner, open_registry: Registry, transferer: DirectTransferer) -> str:
    """A mirror whose default upstream is dead and whose ghcr.io is the open registry."""
    config = MirrorConfig(registry=DEAD, registry_map=(f"ghcr.io={open_registry.url}",))
    return await mirrors.start(config, transferer)


@pytest.mark.parametrize(
    ("prefix", "query", "headers"),
    [
        ("ghcr.io/", "", {}),
        ("", "?ns=ghcr.io", {}),
        ("", "", {"X-Dandelion-Registry": "GHCR.io"}),
    ],
)
async def test_a_mapped_name_reaches_its_registry_on_every_route(
    mirror: str, open_image: PushedImage, prefix: str, query: str, headers: dict[str, str]
) -> None:
    name = f"{prefix}{open_image.repository}"
    accept = [("Accept", value) for value in DOCKER_ACCEPT]
    async with httpx.AsyncClient(base_url=mirror, headers=headers) as client:
        manifest = await client.get(f"/v2/{name}/manifests/{open_image.tag}{query}", headers=accept)
        assert manifest.status_code == 200, manifest.text
        assert manifest.headers["docker-content-digest"] == open_image.manifest_digest
        tags = await client.get(f"/v2/{name}/tags/list{query}")
        assert tags.status_code == 200 and open_image.tag in tags.json()["tags"]
        for digest in open_image.layer_digests:
            blob = await client.get(f"/v2/{name}/blobs/{digest}{query}")
            assert blob.status_code == 200
            assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == digest


async def test_unmapped_prefixes_and_names_are_not_routed_there(mirror: str, open_image: PushedImage) -> None:
    async with httpx.AsyncClient(base_url=mirror) as client:
        # Another dotted first component is a repository name on the default upstream (dead here).
        other = await client.get(f"/v2/quay.io/{open_image.repository}/manifests/{open_image.tag}")
        assert other.status_code == 503 and DEAD in other.json()["errors"][0]["message"]
        # A name the map does not hold is not allowed (the allow-list is --registry and the map's targets).
        denied = await client.get(f"/v2/{open_image.repository}/manifests/{open_image.tag}?ns=quay.io")
        assert denied.status_code == 403 and denied.json()["errors"][0]["code"] == "DENIED"
