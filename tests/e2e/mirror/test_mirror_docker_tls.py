"""docker pull through the registry mirror on a cluster whose supernode and dfdaemons speak mutual TLS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.certs import identity, make_certs
from fixtures.clients import Dockerd
from fixtures.images import MiB, build_and_push
from fixtures.registry import Registry
from mirror_support import PASSWORD, USER, assert_layers_fetched_once, require
from mirror_swarm import FIRST_PEER_OCTET, MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_docker_pulls_a_private_image_through_two_nodes_of_a_tls_cluster(
    tmp_path: Path,
    basic_registry: Registry,
    swarm_factory: Callable[..., MirrorSwarm],
    dockerd_factory: Callable[..., Dockerd],
) -> None:
    """Two hosts' dockers pull the same private image through their own mirror; the layers cross from one host to
    the other over TLS (the registry sends each once), and every component logged that it runs mutual TLS."""
    require("openssl")
    certs = tmp_path / "certs"
    make_certs(certs, f"node=127.0.0.1,127.0.0.{FIRST_PEER_OCTET},127.0.0.{FIRST_PEER_OCTET + 1}")
    flags = tuple(identity(certs, "node").flags())
    image = build_and_push(
        tmp_path, basic_registry.addr, "ns/tls", [3 * MiB, 2 * MiB, MiB // 2], creds=f"{USER}:{PASSWORD}"
    )
    swarm = swarm_factory(basic_registry, nodes=2, extra_args=flags, supernode_args=flags)

    for node in swarm.nodes:
        docker = dockerd_factory()
        assert docker.login(node.mirror_addr, USER, PASSWORD).returncode == 0
        reference = image.reference_via(node.mirror_addr)
        pull = docker.pull(reference)
        assert pull.returncode == 0, pull.stderr + swarm.logs()
        assert docker.image_id(reference) == image.config_digest

    assert_layers_fetched_once(basic_registry, image)
    assert "(mutual TLS)" in swarm.supernode.log()
    assert all("(mutual TLS)" in node.proc.log() for node in swarm.nodes)
    second = swarm.nodes[1].proc.log()
    assert "from origin" in second and all(" 0 from origin" in line for line in second.splitlines() if "done:" in line)
