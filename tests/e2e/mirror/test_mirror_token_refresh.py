"""A registry token that expires during a layer: the dfdaemon's resume after the registry restarted is refused (the
token it read with is stale); the mirror, which holds the client's own credentials, gets a fresh token and the layer
goes on from the verified pieces, neither read again nor cut. A client that brought its own Bearer token cannot be
given a newer one: its response is cut and its retry (with a fresh token) gets the layer."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fixtures.images import MiB, build_and_push
from fixtures.registry import Registry, TokenAuth
from fixtures.token_server import TokenServer
from mirror_support import PASSWORD, USER
from mirror_swarm import MirrorNode, MirrorSwarm
from test_mirror_upstream_restart import kill_registry, read_blob

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]
LAYER = 40 * MiB
RATE = "16M"  # the dfdaemon's --download-limit: the layer takes ~2.5 s
OWN_READ = ("--no-seed-peer",)  # the dfdaemon reads the registry itself, with the mirror's token
# docker-registry accepts a token up to 60 s past its exp: a lifetime of -56 s makes tokens good for ~4 s.
SHORT_LIFETIME_S = -56
DOWN_S = 6.0  # the registry is down this long: every token issued before is stale when it is back


def registry_sent(registry: Registry, layer: str, log: str) -> int:
    """Bytes the registry sent for the layer: before the kill (the first resume's offset counts them) and every
    GET after its restart."""
    resumed_at = [int(n) for n in re.findall(r"resuming at byte (\d+)", log)]
    assert resumed_at, log[-3000:]
    after = [r for r in registry.access_log() if r.method == "GET" and r.blob_digest == layer and r.status < 300]
    return resumed_at[0] + sum(r.size for r in after)


@dataclass
class Layer:
    """A private one-layer image in the token registry, and a dfdaemon mirroring that registry."""

    server: TokenServer
    registry: Registry
    path: str  # the layer's blob path through the mirror
    digest: str
    node: MirrorNode

    def restart_registry(self) -> None:
        """Kill the registry, keep it down until every token issued before is stale, start it again."""
        kill_registry(self.registry)
        time.sleep(DOWN_S)
        self.registry.start()


def short_lived_layer(tmp_path: Path, registry: Registry, swarm_factory: SwarmFactory, repository: str) -> Layer:
    """Push the layer, start the mirror (it reads the registry itself), make tokens short-lived from now on."""
    assert isinstance(registry.auth, TokenAuth)
    image = build_and_push(tmp_path, registry.addr, repository, [LAYER], creds=f"{USER}:{PASSWORD}")
    layer = image.layer_digests[0]
    node = swarm_factory(registry, extra_args=("--download-limit", RATE), supernode_args=OWN_READ).nodes[0]
    registry.auth.server.lifetime_s = SHORT_LIFETIME_S
    return Layer(registry.auth.server, registry, f"/v2/{image.repository}/blobs/{layer}", layer, node)


def test_a_token_that_expires_mid_layer_is_renewed_with_the_clients_credentials(
    tmp_path: Path, token_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    layer = short_lived_layer(tmp_path, token_registry, swarm_factory, "ns/refresh")
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    issued = len(layer.server.requests)
    body, error = read_blob(layer.node, layer.path, 8 * MiB, layer.restart_registry, {"Authorization": basic})
    log = layer.node.proc.log()
    assert error is None, log[-3000:]
    assert "sha256:" + hashlib.sha256(body).hexdigest() == layer.digest
    assert "reading on with a fresh one" in log, log[-3000:]
    tokens = len(layer.server.requests) - issued
    assert tokens > 1, "a second token was fetched"
    sent = registry_sent(token_registry, layer.digest, log)
    print(f"token expired mid-layer: registry sent {sent / LAYER:.3f}x the layer, {tokens} tokens issued")
    assert sent <= LAYER * 1.05
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_a_clients_own_expired_token_cuts_the_response_and_its_retry_succeeds(
    tmp_path: Path, token_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    layer = short_lived_layer(tmp_path, token_registry, swarm_factory, "ns/own")
    server = layer.server

    def token() -> str:
        params = {"service": server.service, "scope": "repository:ns/own:pull"}
        reply = httpx.get(server.realm, params=params, auth=(USER, PASSWORD), trust_env=False)
        return f"Bearer {reply.json()['token']}"

    body, error = read_blob(layer.node, layer.path, 8 * MiB, layer.restart_registry, {"Authorization": token()})
    assert error is not None and len(body) < LAYER, "a stale token of the client's own is not renewed: a cut"
    with layer.node.client() as client:
        again = client.get(layer.path, headers={"Authorization": token()})
    assert again.status_code == 200 and "sha256:" + hashlib.sha256(again.content).hexdigest() == layer.digest
    log = layer.node.proc.log()
    sent = registry_sent(token_registry, layer.digest, log)
    print(f"client's own token expired mid-layer: registry sent {sent / LAYER:.3f}x the layer (the retry included)")
    assert sent <= LAYER * 1.05, "the retry read only what the cache lacked"
    assert "Traceback" not in log and "Exception in ASGI application" not in log
