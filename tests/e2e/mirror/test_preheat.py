"""`dfget preheat`: an image's blobs land in the supernode's cache; later pulls fetch no blob from the registry."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from fixtures.clients import dir_blob_digests, skopeo_copy_to_dir
from fixtures.images import build_and_push
from fixtures.processes import console_script
from fixtures.registry import Registry
from mirror_support import PASSWORD, USER
from mirror_swarm import MirrorSwarm

MiB = 1 << 20
SwarmFactory = Callable[..., MirrorSwarm]


def preheat(swarm: MirrorSwarm, ref: str, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `dfget preheat REF --supernode ...` (password, if any, on stdin)."""
    argv = [console_script("dfget"), "preheat", ref, "--supernode", swarm.supernode_addr, *args]
    return subprocess.run(argv, input=password, capture_output=True, text=True, timeout=300)


def test_preheated_image_is_pulled_through_two_nodes_without_registry_blob_fetches(
    tmp_path: Path, token_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    creds = f"{USER}:{PASSWORD}"
    image = build_and_push(tmp_path, token_registry.addr, "ns/preheated", [4 * MiB, 2 * MiB, MiB], creds=creds)
    swarm = swarm_factory(token_registry, nodes=2)

    refused = preheat(swarm, image.reference)
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert PASSWORD not in refused.stderr

    done = preheat(swarm, image.reference, "--username", USER, "--password-stdin", password=PASSWORD)
    assert done.returncode == 0, done.stderr + swarm.logs()
    assert PASSWORD not in done.stderr + swarm.logs()
    assert token_registry.blob_gets() == dict.fromkeys(image.blob_digests, 1)

    mark = token_registry.log_mark()
    for node in swarm.nodes:
        out = tmp_path / f"via-{node.name}"
        copy = skopeo_copy_to_dir(image.reference_via(node.mirror_addr), out, creds=creds)
        assert copy.returncode == 0, copy.stderr + swarm.logs()
        assert dir_blob_digests(out) == set(image.blob_digests)
    blob_gets = [r for r in token_registry.records_since(mark) if r.method == "GET" and r.blob_digest]
    assert blob_gets == [], f"registry blob GETs after preheat: {blob_gets}"


def test_preheat_url_with_digest_and_bad_references(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    swarm = swarm_factory(open_registry, nodes=1)
    image = build_and_push(tmp_path, open_registry.addr, "ns/plain", [MiB])
    layer = image.layer_digests[0]
    url = f"{open_registry.url}/v2/ns/plain/blobs/{layer}"

    done = preheat(swarm, url, "--digest", layer)
    assert done.returncode == 0, done.stderr + swarm.logs()
    assert open_registry.blob_gets()[layer] == 1

    for bad, words in [
        (f"{open_registry.addr}/ns/missing:latest", "manifest"),
        (f"{open_registry.addr}/NS/Upper:latest", "invalid image reference"),
        ("ftp://example.invalid/x", "scheme"),
    ]:
        failed = preheat(swarm, bad)
        assert failed.returncode != 0, bad
        assert words in failed.stderr.lower() or words in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
