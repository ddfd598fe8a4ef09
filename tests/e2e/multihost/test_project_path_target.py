"""A registry project as a --registry-map target (docs/registries.md, "A Harbor proxy-cache project as the target"):
docker.io mapped to http://REGISTRY/hub-cache, a registry that holds Hub's names under the project `hub-cache/`, as
a Harbor proxy-cache project does. All on loopback.

A dockerd pulls `dfimg:1` through the mirror (registry-mirrors, --registry left at Docker Hub): every manifest and
blob request reaches the registry as hub-cache/library/dfimg, and so does a tag list asked for under the client's
own name.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from fixtures.clients import loopback_env, missing_binaries, run_dockerd
from fixtures.images import MiB, build_and_push
from fixtures.processes import free_port
from fixtures.registry import REGISTRY_BIN, run_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mirror"))

from mirror_swarm import run_mirror_swarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HUB = "https://registry-1.docker.io"  # the dfdaemon's --registry: Docker Hub, as by default
PROJECT = "hub-cache"


def test_docker_io_mapped_to_a_project_of_a_registry(tmp_path: Path) -> None:
    missing = missing_binaries(REGISTRY_BIN, "skopeo", "dockerd", "docker")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them)")
    dead = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    client_env = loopback_env({"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": "127.0.0.0/8"})
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
