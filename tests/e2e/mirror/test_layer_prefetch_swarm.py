"""Layer prefetch with real processes: a manifest passing a dfdaemon's mirror makes the supernode's seed load every
layer of the image from the registry before the client asks for any, each once; `--no-prefetch` turns it off."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fixtures.clients import dir_blob_digests, skopeo_copy_to_dir
from fixtures.images import PushedImage, build_and_push
from fixtures.registry import Registry
from mirror_support import PASSWORD, USER
from mirror_swarm import MirrorNode, MirrorSwarm

MiB = 1 << 20
SwarmFactory = Callable[..., MirrorSwarm]
ACCEPT = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]


def get_manifest(node: MirrorNode, image: PushedImage, auth: tuple[str, str] | None = None) -> httpx.Response:
    headers = [("Accept", value) for value in ACCEPT]
    with node.client(auth=auth) as client:
        return client.get(f"/v2/{image.repository}/manifests/{image.tag}", headers=headers)


def layer_gets(registry: Registry, image: PushedImage) -> dict[str, int]:
    gets = registry.blob_gets()
    return {digest: gets[digest] for digest in image.layer_digests}


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_manifest_starts_seeding_every_layer_once(
    tmp_path: Path, token_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    creds = f"{USER}:{PASSWORD}"
    image = build_and_push(tmp_path, token_registry.addr, "ns/prefetched", [3 * MiB, 2 * MiB, MiB], creds=creds)
    swarm = swarm_factory(token_registry, nodes=1)
    (node,) = swarm.nodes

    assert get_manifest(node, image).status_code == 401  # no credentials: no manifest, nothing prefetched
    response = get_manifest(node, image, (USER, PASSWORD))
    assert response.status_code == 200, response.text
    every_layer_once = dict.fromkeys(image.layer_digests, 1)
    assert wait_for(lambda: layer_gets(token_registry, image) == every_layer_once), (
        f"{layer_gets(token_registry, image)}\n{swarm.logs()}"
    )
    assert "prefetching" in node.proc.log()
    assert PASSWORD not in node.proc.log() + swarm.supernode.log()

    out = tmp_path / "pulled"
    copy = skopeo_copy_to_dir(image.reference_via(node.mirror_addr), out, creds=creds)
    assert copy.returncode == 0, copy.stderr + swarm.logs()
    assert dir_blob_digests(out) == set(image.blob_digests)
    assert layer_gets(token_registry, image) == every_layer_once  # the pull joined the seed's fetches


def test_no_prefetch_flag(tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory) -> None:
    image = build_and_push(tmp_path, open_registry.addr, "ns/quiet", [2 * MiB, MiB])
    swarm = swarm_factory(open_registry, nodes=1, extra_args=("--no-prefetch",))
    assert get_manifest(swarm.nodes[0], image).status_code == 200
    time.sleep(1.5)
    assert layer_gets(open_registry, image) == dict.fromkeys(image.layer_digests, 0)
