"""The upstream allow-list against the attack it closes, with real processes.

A private layer sits in a dfdaemon's cache, pulled from an htpasswd registry with the right credentials. A client
without credentials names a rogue "registry" (a server that answers 200 to everything) with X-Dandelion-Registry or
?ns=, hoping the mirror asks that server whether it may read the layer and then serves it from the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures.images import MiB, PushedImage, build_and_push
from fixtures.registry import Registry
from fixtures.rogue_registry import RogueRegistry, run_rogue_registry
from mirror_support import PASSWORD, USER
from mirror_swarm import MirrorNode, MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]
ROGUE_IP = "127.0.0.66"  # not the registry's, the supernode's or a peer's address
LAYER_SIZE = MiB + 4321


@pytest.fixture
def private_image(tmp_path: Path, basic_registry: Registry) -> PushedImage:
    """A one-layer image pushed to the htpasswd registry."""
    return build_and_push(tmp_path, basic_registry.addr, "private/app", [LAYER_SIZE], creds=f"{USER}:{PASSWORD}")


@pytest.fixture
def rogue(private_image: PushedImage) -> Iterator[RogueRegistry]:
    """The rogue server, claiming every blob has the private layer's size (an attacker can learn sizes)."""
    with run_rogue_registry(ROGUE_IP, private_image.layer_sizes[0]) as server:
        yield server


def cache_layer(node: MirrorNode, image: PushedImage) -> str:
    """Pull the private layer through the node with the right credentials; returns its digest."""
    layer = image.layer_digests[0]
    with node.client(auth=(USER, PASSWORD)) as client:
        response = client.get(f"/v2/{image.repository}/blobs/{layer}")
    assert response.status_code == 200, response.text
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == layer
    return layer


def attacks(rogue: RogueRegistry, layer: str) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, headers) of requests naming the rogue upstream, no credentials: every route that selects one."""
    by_header = {"X-Dandelion-Registry": rogue.url}
    ns = f"ns={rogue.addr}"
    return [
        ("GET", f"/v2/anyone/blobs/{layer}", by_header),
        ("HEAD", f"/v2/anyone/blobs/{layer}", by_header),
        ("GET", f"/v2/anyone/blobs/{layer}?{ns}", {}),
        ("GET", f"/v2/anyone/blobs/{layer}", {"X-Dandelion-Registry": rogue.addr}),
        ("GET", f"/v2/anyone/blobs/{layer}", {"Range": "bytes=0-99", **by_header}),
        ("GET", f"/v2/?{ns}", {}),
        ("GET", f"/v2/anyone/manifests/latest?{ns}", {}),
        ("GET", "/v2/anyone/manifests/latest", by_header),
        ("GET", f"/v2/anyone/tags/list?{ns}", {}),
        ("GET", f"/v2/_catalog?{ns}", {}),
    ]


def test_a_rogue_upstream_is_denied_before_it_is_asked_or_the_cache_is_read(
    basic_registry: Registry, private_image: PushedImage, rogue: RogueRegistry, swarm_factory: SwarmFactory
) -> None:
    """Header and ?ns= naming the rogue server get 403 DENIED on every route; the rogue server hears nothing."""
    node = swarm_factory(basic_registry).nodes[0]
    layer = cache_layer(node, private_image)
    with node.client() as client:
        assert client.get(f"/v2/{private_image.repository}/blobs/{layer}").status_code == 401  # no credentials
        for method, path, headers in attacks(rogue, layer):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 403, (method, path, headers, response.text)
            assert len(response.content) < 1024  # an error, not the layer
            if method == "GET":
                error = response.json()["errors"][0]
                assert error["code"] == "DENIED"
                assert f"{rogue.url} is not allowed" in error["message"]
                assert f"--allow-registry {rogue.url}" in error["message"]
        # The userinfo trick names the real registry before '@': a malformed upstream, never the rogue one.
        trick = {"X-Dandelion-Registry": f"http://{basic_registry.addr}@{rogue.addr}"}
        assert client.get(f"/v2/anyone/blobs/{layer}", headers=trick).status_code == 400
    assert rogue.requests == []
    assert node.proc.alive(), node.proc.tail()


def test_an_allow_listed_upstream_is_asked_and_its_answer_followed(
    basic_registry: Registry, private_image: PushedImage, rogue: RogueRegistry, swarm_factory: SwarmFactory
) -> None:
    """With --allow-registry naming it, the server is the client's chosen upstream: the mirror asks it (HEAD)
    and follows its yes, serving the blob from the swarm — which is why allowing a registry means trusting it."""
    node = swarm_factory(basic_registry, extra_args=("--allow-registry", rogue.addr)).nodes[0]
    layer = cache_layer(node, private_image)
    with node.client() as client:
        assert client.get(f"/v2/{private_image.repository}/blobs/{layer}").status_code == 401
        # Two repository names: the mirror remembers a grant per upstream, repository and blob for a minute.
        by_header = ("anyone", {"X-Dandelion-Registry": rogue.url}, {})
        by_ns = ("someone", {}, {"ns": rogue.addr})
        for name, headers, params in (by_header, by_ns):
            response = client.get(f"/v2/{name}/blobs/{layer}", headers=headers, params=params)
            assert response.status_code == 200, response.text
            assert "sha256:" + hashlib.sha256(response.content).hexdigest() == layer
            assert ("HEAD", f"/v2/{name}/blobs/{layer}", False) in rogue.requests
        # Another, still unlisted upstream stays denied on the same node.
        other = client.get(f"/v2/anyone/blobs/{layer}", params={"ns": f"127.0.0.67:{rogue.port}"})
        assert other.status_code == 403 and other.json()["errors"][0]["code"] == "DENIED"
