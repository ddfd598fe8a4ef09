"""An HTTPS upstream with a private CA: --registry-ca (dfdaemon) and --origin-ca (supernode) trust it,
--insecure / --origin-insecure skip checks, neither refuses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.clients import dir_blob_digests, skopeo_copy_to_dir
from fixtures.images import MiB, build_and_push
from fixtures.registry import Registry
from mirror_support import assert_layers_fetched_once, require
from mirror_swarm import MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]


@pytest.fixture
def tls_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """An open upstream registry serving HTTPS with a self-signed certificate for 127.0.0.1."""
    require("openssl")
    return registry_factory(tls=True)


@pytest.mark.parametrize("trust", ["registry-ca", "insecure"])
def test_https_upstream_trusted_by_flag(
    tmp_path: Path, tls_registry: Registry, swarm_factory: SwarmFactory, trust: str
) -> None:
    """skopeo copies through the mirror from an HTTPS upstream the mirror trusts by --registry-ca or --insecure."""
    assert tls_registry.tls is not None
    image = build_and_push(tmp_path, tls_registry.addr, "ns/tls", [2 * MiB, MiB])
    ca = str(tls_registry.tls.cert_path)
    if trust == "registry-ca":
        flags, seed_flags = ("--registry-ca", ca), ("--origin-ca", ca)
    else:
        flags, seed_flags = ("--insecure",), ("--origin-insecure",)
    swarm = swarm_factory(tls_registry, nodes=2, extra_args=flags, supernode_args=seed_flags)

    for node in swarm.nodes:
        out = tmp_path / f"out-{node.name}"
        copy = skopeo_copy_to_dir(image.reference_via(node.mirror_addr), out)
        assert copy.returncode == 0, copy.stderr
        assert dir_blob_digests(out) == set(image.blob_digests)
    assert_layers_fetched_once(tls_registry, image)


def test_https_upstream_with_unknown_ca_is_refused(
    tmp_path: Path, tls_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """Without --registry-ca the certificate is not trusted: a gateway error, no content, mirror keeps running."""
    image = build_and_push(tmp_path, tls_registry.addr, "ns/untrusted", [MiB])
    node = swarm_factory(tls_registry).nodes[0]
    with node.client() as client:
        for path in (
            f"/v2/{image.repository}/manifests/{image.tag}",
            f"/v2/{image.repository}/blobs/{image.layer_digests[0]}",
        ):
            response = client.get(path)
            assert response.status_code in (502, 503), (path, response.status_code, response.text)
            assert "errors" in response.json()
            assert hashlib.sha256(response.content).hexdigest() != image.layer_digests[0].removeprefix("sha256:")
    assert node.proc.alive(), node.proc.tail()
    assert tls_registry.blob_gets()[image.layer_digests[0]] == 0
