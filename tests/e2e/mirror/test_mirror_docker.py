"""docker pulls through the dfdaemon registry mirror: login+pull, registry-mirrors, token auth, three nodes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fixtures.clients import Dockerd
from fixtures.images import MiB, build_and_push
from fixtures.registry import Registry
from mirror_support import PASSWORD, USER, assert_layers_fetched_once
from mirror_swarm import MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]
DockerdFactory = Callable[..., Dockerd]


def test_docker_login_then_pull_private_image_through_mirror(
    tmp_path: Path, basic_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """As in the Dragonfly article: docker login to the mirror, then pull MIRROR/ns/img:tag (and by digest)."""
    image = build_and_push(
        tmp_path, basic_registry.addr, "ns/private", [3 * MiB, 2 * MiB, MiB // 2], creds=f"{USER}:{PASSWORD}"
    )
    node = swarm_factory(basic_registry).nodes[0]
    docker = dockerd_factory()

    login = docker.login(node.mirror_addr, USER, PASSWORD)
    assert login.returncode == 0, login.stderr
    reference = image.reference_via(node.mirror_addr)
    pull = docker.pull(reference)
    assert pull.returncode == 0, pull.stderr

    assert docker.image_id(reference) == image.config_digest
    by_digest = f"{node.mirror_addr}/{image.repository}@{image.manifest_digest}"
    assert docker.repo_digests(reference) == [by_digest]

    docker.remove_all_images()
    pull = docker.pull(by_digest)
    assert pull.returncode == 0, pull.stderr
    assert docker.image_id(by_digest) == image.config_digest
    assert_layers_fetched_once(basic_registry, image)


def test_docker_without_login_cannot_pull_private_image_another_node_holds(
    tmp_path: Path, basic_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """Node A pulls with credentials; on node B a docker without (or with wrong) credentials is refused."""
    image = build_and_push(tmp_path, basic_registry.addr, "ns/guarded", [2 * MiB, MiB], creds=f"{USER}:{PASSWORD}")
    node_a, node_b = swarm_factory(basic_registry, nodes=2).nodes
    holder = dockerd_factory()
    assert holder.login(node_a.mirror_addr, USER, PASSWORD).returncode == 0
    assert holder.pull(image.reference_via(node_a.mirror_addr)).returncode == 0

    stranger = dockerd_factory()
    anonymous = stranger.pull(image.reference_via(node_b.mirror_addr))
    assert anonymous.returncode != 0
    refusals = ("unauthorized", "authentication required", "no basic auth credentials")
    assert any(refusal in anonymous.stderr.lower() for refusal in refusals), anonymous.stderr
    assert stranger.login(node_b.mirror_addr, USER, PASSWORD + "-wrong").returncode != 0
    assert stranger.pull(image.reference_via(node_b.mirror_addr)).returncode != 0
    images = stranger.docker("image", "ls", "--quiet").stdout.split()
    assert images == []
    assert_layers_fetched_once(basic_registry, image)


def test_docker_login_with_wrong_password_is_refused(
    basic_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """The mirror passes the upstream's verdict on credentials through: wrong ones do not log in."""
    node = swarm_factory(basic_registry).nodes[0]
    docker = dockerd_factory()
    login = docker.login(node.mirror_addr, USER, PASSWORD + "-wrong")
    assert login.returncode != 0
    assert "unauthorized" in login.stderr.lower() or "401" in login.stderr


def test_docker_hub_style_names_through_registry_mirrors(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """With registry-mirrors, `docker pull ns/img` and `docker pull img` arrive at the mirror as Hub names."""
    namespaced = build_and_push(tmp_path, open_registry.addr, "ns/hubstyle", [2 * MiB, MiB], tag="v1")
    official = build_and_push(tmp_path, open_registry.addr, "library/plain", [MiB], tag="v2")
    node = swarm_factory(open_registry).nodes[0]
    docker = dockerd_factory(registry_mirrors=(node.mirror_url,))

    for reference, image in (("ns/hubstyle:v1", namespaced), ("plain:v2", official)):
        pull = docker.pull(reference)
        assert pull.returncode == 0, pull.stderr
        assert docker.image_id(reference) == image.config_digest
        # Docker Hub is unreachable here, so the layers can only have come from the upstream via the mirror.
        assert_layers_fetched_once(open_registry, image)


def test_docker_pull_through_mirror_with_token_auth_registry(
    tmp_path: Path, token_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """Bearer tokens: docker gets them from the token realm itself and sends them through the mirror."""
    image = build_and_push(tmp_path, token_registry.addr, "ns/tokened", [2 * MiB, MiB], creds=f"{USER}:{PASSWORD}")
    node = swarm_factory(token_registry).nodes[0]
    docker = dockerd_factory()

    login = docker.login(node.mirror_addr, USER, PASSWORD)
    assert login.returncode == 0, login.stderr
    reference = image.reference_via(node.mirror_addr)
    pull = docker.pull(reference)
    assert pull.returncode == 0, pull.stderr
    assert docker.image_id(reference) == image.config_digest
    assert_layers_fetched_once(token_registry, image)


def test_three_nodes_pull_the_same_image_each_layer_fetched_once(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """Three hosts pull at the same time through their own mirrors; upstream serves each layer once."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/shared", [4 * MiB, 3 * MiB, 2 * MiB], tag="1.0")
    swarm = swarm_factory(open_registry, nodes=3)
    dockers = [dockerd_factory() for _ in swarm.nodes]
    references = [image.reference_via(node.mirror_addr) for node in swarm.nodes]

    with ThreadPoolExecutor(len(dockers)) as pool:
        pulls = list(pool.map(lambda pair: pair[0].pull(pair[1]), zip(dockers, references, strict=True)))

    for pull in pulls:
        assert pull.returncode == 0, pull.stderr
    for docker, reference, node in zip(dockers, references, swarm.nodes, strict=True):
        assert docker.image_id(reference) == image.config_digest
        assert docker.repo_digests(reference) == [f"{node.mirror_addr}/{image.repository}@{image.manifest_digest}"]
    assert_layers_fetched_once(open_registry, image)


@pytest.mark.slow
def test_large_layer_pulled_by_two_nodes(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory, dockerd_factory: DockerdFactory
) -> None:
    """A 64 MiB layer: the second node gets it from the swarm, upstream serves it once."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/large", [64 * MiB, MiB])
    swarm = swarm_factory(open_registry, nodes=2)
    for node in swarm.nodes:
        docker = dockerd_factory()
        reference = image.reference_via(node.mirror_addr)
        pull = docker.pull(reference)
        assert pull.returncode == 0, pull.stderr
        assert docker.image_id(reference) == image.config_digest
    assert_layers_fetched_once(open_registry, image)
