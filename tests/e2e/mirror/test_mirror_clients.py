"""containerd, podman and skopeo pull through the dfdaemon registry mirror.

Where a client would fall back to the registry itself, that fallback points at an address nothing
listens on, so a passing pull proves the mirror served it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.clients import (
    dir_blob_digests,
    podman_instance,
    registries_conf,
    run_containerd,
    skopeo_copy_to_dir,
)
from fixtures.images import MiB, build_and_push
from fixtures.processes import free_port
from fixtures.registry import Registry
from mirror_support import PASSWORD, USER, assert_layers_fetched_once, require
from mirror_swarm import MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]


def unreachable_registry() -> str:
    """host:port where no registry listens, used as the name clients think is upstream."""
    return f"127.0.0.1:{free_port('127.0.0.1')}"


def test_containerd_pulls_through_mirror_with_hosts_dir(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """ctr image pull --hosts-dir with the mirror as a pull/resolve host (requests carry ?ns=UPSTREAM).

    The fallback `server` in hosts.toml is unreachable, so only the mirror can have served the pull.
    """
    require("containerd", "ctr")
    image = build_and_push(tmp_path, open_registry.addr, "ns/ctr", [2 * MiB, MiB])
    node = swarm_factory(open_registry).nodes[0]
    reference = image.reference

    with run_containerd(tmp_path / "containerd") as containerd:
        hosts = containerd.hosts_dir(open_registry.addr, [node.mirror_addr], server=unreachable_registry())
        pull = containerd.pull(reference, hosts)
        assert pull.returncode == 0, pull.stderr
        assert containerd.image_target_digest(reference) == image.manifest_digest
        assert set(image.blob_digests) <= containerd.content_digests()
    assert_layers_fetched_once(open_registry, image)


def test_podman_pulls_private_image_through_mirror(
    tmp_path: Path, basic_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """podman logs in to the mirror (authfile) and pulls the upstream name via registries.conf mirror."""
    require("podman")
    image = build_and_push(tmp_path, basic_registry.addr, "ns/podman", [2 * MiB, MiB], creds=f"{USER}:{PASSWORD}")
    node = swarm_factory(basic_registry).nodes[0]
    named = unreachable_registry()
    reference = f"{named}/{image.repository}:{image.tag}"
    authfile = tmp_path / "podman-auth.json"

    with podman_instance(tmp_path / "podman", named, [node.mirror_addr]) as podman:
        login = podman.login(node.mirror_addr, USER, PASSWORD, authfile)
        assert login.returncode == 0, login.stderr
        pull = podman.pull(reference, authfile)
        assert pull.returncode == 0, pull.stderr
        assert podman.image_digest(reference) == image.manifest_digest
        assert "sha256:" + podman.image_id(reference) == image.config_digest
    assert_layers_fetched_once(basic_registry, image)


def test_skopeo_copies_from_mirror(tmp_path: Path, basic_registry: Registry, swarm_factory: SwarmFactory) -> None:
    """skopeo copy docker://MIRROR/ns/img:tag dir:OUT gives upstream's manifest and blobs, byte for byte."""
    image = build_and_push(tmp_path, basic_registry.addr, "ns/skopeo", [3 * MiB, MiB], creds=f"{USER}:{PASSWORD}")
    node = swarm_factory(basic_registry).nodes[0]
    out = tmp_path / "out"

    copy = skopeo_copy_to_dir(image.reference_via(node.mirror_addr), out, creds=f"{USER}:{PASSWORD}")
    assert copy.returncode == 0, copy.stderr
    assert dir_blob_digests(out) == set(image.blob_digests)
    assert "sha256:" + hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest() == image.manifest_digest
    assert_layers_fetched_once(basic_registry, image)


def test_skopeo_with_registries_conf_mirror(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """skopeo --registries-conf: the upstream name resolves through the mirror."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/skopeo-conf", [2 * MiB])
    node = swarm_factory(open_registry).nodes[0]
    named = unreachable_registry()
    conf = tmp_path / "registries.conf"
    conf.write_text(registries_conf(named, [node.mirror_addr]))
    out = tmp_path / "out"

    copy = skopeo_copy_to_dir(f"{named}/{image.repository}:{image.tag}", out, registries_conf_path=conf)
    assert copy.returncode == 0, copy.stderr
    assert dir_blob_digests(out) == set(image.blob_digests)
    assert_layers_fetched_once(open_registry, image)


def test_pull_through_mirror_still_works_when_the_supernode_is_gone(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """With the supernode killed, the dfdaemon fetches from the upstream itself (back to source)."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/nosupernode", [3 * MiB, MiB])
    swarm = swarm_factory(open_registry)
    swarm.supernode.kill()
    node = swarm.nodes[0]

    out = tmp_path / "out"
    copy = skopeo_copy_to_dir(image.reference_via(node.mirror_addr), out, timeout=120)
    assert copy.returncode == 0, copy.stderr
    assert dir_blob_digests(out) == set(image.blob_digests)
    assert node.proc.alive(), node.proc.tail()
