"""Big layers asked for at once go into the swarm one at a time in manifest order (docker unpacks in that order);
configs never wait. Against a real docker-registry, with a swarm whose downloads take a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fixtures.images import MiB, PushedImage, build_and_push
from fixtures.registry import Registry
from mirror_helpers import DOCKER_ACCEPT, MemoryStream, MirrorRunner

from dfcommon.content import ContentRequest
from mirror.config import MirrorConfig
from mirror.transfer import BlobStream

LAYER = 9 * MiB  # above the gate's 8 MiB


class PacedStream(MemoryStream):
    """A download that delivers a chunk every few milliseconds and is complete with its last one."""

    def __init__(self, data: bytes, offset: int) -> None:
        super().__init__(data, offset)
        self._done = False

    def downloaded(self) -> bool:
        return self._done

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in super().chunks():
            await asyncio.sleep(0.02)
            yield chunk
        self._done = True


@dataclass
class PacedSwarm:
    """Holds the blobs elsewhere in the swarm; records the order in which the mirror opened them."""

    blobs: dict[str, bytes]
    opened: list[str] = field(default_factory=list)

    async def open(self, request: ContentRequest, offset: int = 0) -> BlobStream:
        self.opened.append(request.digest)
        return PacedStream(self.blobs[request.digest], offset)

    def holds(self, request: ContentRequest) -> bool:
        return False

    async def prefetch(self, request: ContentRequest) -> bool:
        return False


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "layers-at-once"])
async def test_layers_enter_the_swarm_in_manifest_order(
    mirrors: MirrorRunner, open_registry: Registry, tmp_path: Path, ordered: bool
) -> None:
    image: PushedImage = build_and_push(tmp_path / "image", open_registry.addr, "order/app", [LAYER] * 3)
    first, second, third = image.layer_digests
    async with httpx.AsyncClient(timeout=30) as client:
        upstream = open_registry.url + f"/v2/{image.repository}/blobs/"
        blobs = {d: (await client.get(upstream + d)).content for d in (*image.layer_digests, image.config_digest)}
        swarm = PacedSwarm(blobs)
        mirror = await mirrors.start(MirrorConfig(registry=open_registry.url, ordered_layers=ordered), swarm)
        accept = [("Accept", value) for value in DOCKER_ACCEPT]
        manifest = await client.get(f"{mirror}/v2/{image.repository}/manifests/{image.tag}", headers=accept)
        assert manifest.status_code == 200

        async def get(digest: str, delay: float) -> httpx.Response:
            await asyncio.sleep(delay)
            return await client.get(f"{mirror}/v2/{image.repository}/blobs/{digest}")

        # As docker does: every layer at once, in no particular order; the config beside them.
        replies = await asyncio.gather(
            get(third, 0), get(second, 0.05), get(first, 0.1), get(image.config_digest, 0.15)
        )
    assert [reply.status_code for reply in replies] == [200] * 4
    assert [reply.content for reply in replies] == [blobs[d] for d in (third, second, first, image.config_digest)]
    layers = [d for d in swarm.opened if d != image.config_digest]
    if ordered:
        # The first to come found the gate empty; the other two went in manifest order; the config did not wait.
        assert layers == [third, first, second]
        assert swarm.opened.index(image.config_digest) < swarm.opened.index(first)
    else:
        assert layers == [third, second, first]  # as asked for, side by side
