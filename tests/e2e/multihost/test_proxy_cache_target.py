"""Pull-through caches as --registry-map targets (docs/registries.md), with real dockerds pulling by Hub name through
their mirrors (registry-mirrors, --registry left at Docker Hub). All on loopback; the clients' own way out (a proxy)
is dead, so a pass means the mirror served the pulls.

A cache's root ("A pull-through cache as the target"): docker.io mapped to distribution's own proxy (`proxy:
remoteurl:`), the part an internal Hub proxy plays, in front of a registry that plays Docker Hub.

Two hosts' dockerds pull `dfimg:1`. The first pull fills the cache from its remote; the second host gets the layers
from the swarm, so the cache serves each layer once in all, and then holds every layer.

A project of a registry ("A Harbor proxy-cache project as the target"): docker.io mapped to http://REGISTRY/hub-cache,
a registry holding Hub's names under `hub-cache/` as a Harbor proxy-cache project does. Every manifest and blob
request reaches it as hub-cache/library/dfimg, and so does a tag list asked for under the client's own name.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from fixtures.clients import loopback_env, missing_binaries, run_dockerd
from fixtures.images import MiB, build_and_push
from fixtures.processes import free_port
from fixtures.registry import REGISTRY_BIN, Registry, run_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mirror"))

from mirror_swarm import run_mirror_swarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HUB = "https://registry-1.docker.io"  # the dfdaemons' --registry: Docker Hub, as by default
PROJECT = "hub-cache"


def layer_reads(registry: Registry, sizes: dict[str, int], mark: int = 0) -> dict[str, tuple[int, float]]:
    """Per layer: the GETs the registry answered after mark and the bytes it sent, in layer sizes."""
    gets = [r for r in registry.records_since(mark) if r.method == "GET" and r.status in (200, 206)]
    return {
        digest: (
            sum(1 for r in gets if r.blob_digest == digest),
            sum(r.size for r in gets if r.blob_digest == digest) / size,
        )
        for digest, size in sizes.items()
    }


def docker_client_env() -> dict[str, str]:
    """The dockerds' environment, whose own way out (a proxy) is dead; skips unless the binaries are there."""
    missing = missing_binaries(REGISTRY_BIN, "skopeo", "dockerd", "docker")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them)")
    dead = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    return loopback_env({"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": "127.0.0.0/8"})


def test_docker_io_mapped_to_a_pull_through_cache(tmp_path: Path) -> None:
    client_env = docker_client_env()
    with ExitStack() as stack:
        remote = stack.enter_context(run_registry(tmp_path / "remote"))  # plays Docker Hub
        image = build_and_push(tmp_path, remote.addr, "library/dfimg", [5 * MiB + 77, MiB], tag="1")
        remote_mark = remote.log_mark()
        cache = stack.enter_context(run_registry(tmp_path / "cache", proxy_remote=remote.url))
        swarm = stack.enter_context(
            run_mirror_swarm(tmp_path / "swarm", HUB, nodes=2, extra_args=("--registry-map", f"docker.io={cache.url}"))
        )
        for index, node in enumerate(swarm.nodes):
            docker = stack.enter_context(
                run_dockerd(tmp_path / f"docker-{index}", registry_mirrors=(node.mirror_url,), extra_env=client_env)
            )
            pull = docker.pull("dfimg:1", timeout=180)
            assert pull.returncode == 0, pull.stderr + swarm.logs()
            assert docker.image_id("dfimg:1") == image.config_digest
        assert f"docker.io -> {cache.url}" in swarm.nodes[0].proc.log()

    sizes = dict(zip(image.layer_digests, image.layer_sizes, strict=True))
    from_remote, from_cache = layer_reads(remote, sizes, remote_mark), layer_reads(cache, sizes)
    print(f"\nlayers (GETs, sizes sent): remote {list(from_remote.values())}, cache {list(from_cache.values())}")
    # The swarm: the cache sent each layer once in all (a read split between two readers may re-send what was in
    # flight at the cut, never a whole second copy).
    assert all(1.0 <= sent < 2.0 for _, sent in from_cache.values()), from_cache
    # distribution's proxy fetches a whole blob it lacks for a HEAD too, and again (without keeping it) for each
    # request that comes while that fetch runs. The first pull sends the cache two HEADs and one GET per layer, and
    # the second host's HEAD can still come before the cache has stored its copy on a loaded machine: on a cold
    # cache the remote sends a layer up to four times (measured 2-4x; docs/registries.md). What the fleet reads
    # from the cache stays once.
    assert all(1.0 <= sent <= 4.0 for _, sent in from_remote.values()), from_remote
    assert all(cache.blob_path(digest).exists() for digest in sizes)  # the cache kept what it fetched


def test_docker_io_mapped_to_a_project_of_a_registry(tmp_path: Path) -> None:
    client_env = docker_client_env()
    with ExitStack() as stack:
        registry = stack.enter_context(run_registry(tmp_path / "registry"))
        repository = f"{PROJECT}/library/dfimg"
        image = build_and_push(tmp_path, registry.addr, repository, [3 * MiB + 77, MiB], tag="1")
        build_and_push(tmp_path, registry.addr, repository, [4096], tag="2")
        mark = registry.log_mark()
        swarm = stack.enter_context(
            run_mirror_swarm(
                tmp_path / "swarm", HUB, nodes=1, extra_args=("--registry-map", f"docker.io={registry.url}/{PROJECT}")
            )
        )
        node = swarm.nodes[0]
        docker = stack.enter_context(
            run_dockerd(tmp_path / "docker", registry_mirrors=(node.mirror_url,), extra_env=client_env)
        )
        pull = docker.pull("dfimg:1", timeout=180)
        assert pull.returncode == 0, pull.stderr + swarm.logs()
        assert docker.image_id("dfimg:1") == image.config_digest
        assert f"docker.io -> {registry.url}/{PROJECT}" in node.proc.log()

        # The tag list under the client's name (containerd's ?ns=docker.io) is the project's list. distribution 2.8
        # answers tag lists whole, so its paging is checked as "n reached the project's path" (the Link rewrite to
        # the client's name is unit-tested in tests/unit/mirror/test_mirror_listing_links.py).
        tags_mark = registry.log_mark()
        with node.client() as client:
            listed = client.get("/v2/dfimg/tags/list", params={"n": "1", "ns": "docker.io"})
        assert listed.status_code == 200, listed.text
        assert listed.json()["name"] == repository and sorted(listed.json()["tags"]) == ["1", "2"]
        assert [r.target for r in registry.records_since(tags_mark) if "/tags/" in r.target] == [
            f"/v2/{repository}/tags/list?n=1"
        ]

    requests = [r for r in registry.records_since(mark) if r.target.startswith("/v2/") and r.target != "/v2/"]
    assert requests, "the registry saw no request"
    # Every repository request the mirror and the swarm made went to the project's path.
    assert all(r.target.startswith(f"/v2/{repository}/") for r in requests), [r.target for r in requests]
    blobs = {r.blob_digest for r in requests if r.method == "GET" and r.blob_digest and r.status in (200, 206)}
    assert set(image.layer_digests) <= blobs
