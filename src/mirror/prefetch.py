"""Layer prefetch: when the mirror serves an image manifest, this host starts downloading its layers at once.

A client that fetches layers one after another (skopeo to dir:, or docker with more layers than its 3 parallel
downloads) would leave the registry's uplink idle between layers, each layer starting only when the client asks for
it. Downloading every layer through the swarm as soon as the manifest passes keeps the uplink busy; the client's
blob requests then join downloads that are already running or done. Each layer is still read with the client's own
credentials (the upstream authorises this client for it first), and the registry still sends each one once for the
whole cluster (to the first peer that asks, or to the supernode's seed).
"""

from __future__ import annotations

import asyncio
import json
import logging

from dfcommon.errors import DandelionError
from mirror.transfer import BlobTransferer
from registryclient.credentials import Credentials
from registryclient.errors import RegistryError
from registryclient.names import validate_digest
from registryclient.upstream import Upstream

log = logging.getLogger(__name__)

IMAGE_MANIFEST_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    }
)
# An image has at most 127 layers in overlay-based runtimes; more entries than this is not an image to prefetch.
MAX_LAYERS = 128
# Manifests whose layers are being prefetched at once on one mirror; beyond that, layers load when asked for.
MAX_PENDING = 16


def layer_digests(media_type: str, body: bytes) -> list[str]:
    """The sha256 digests of an image manifest's layers, in order, without duplicates; [] for anything else.

    Index manifests (multi-platform lists) name manifests, not layers: the client asks for its platform's manifest
    next, and that one is prefetched. Foreign layers (with `urls`) live outside the registry and are skipped, as are
    entries that are not valid sha256 digests.
    """
    if media_type.split(";")[0].strip().lower() not in IMAGE_MANIFEST_TYPES:
        return []
    try:
        document = json.loads(body)
    except ValueError:
        return []
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        return []
    digests: list[str] = []
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("urls"):
            continue
        digest = layer.get("digest")
        if not isinstance(digest, str) or digest in digests:
            continue
        try:
            validate_digest(digest, ("sha256",))
        except RegistryError:
            continue
        digests.append(digest)
    return digests


class Prefetcher:
    """Downloads the layers of the image manifests the mirror serves, in the background, never delaying the client.

    The layers of one manifest load one after another, in manifest order: runtimes unpack layers in that order
    and clients that fetch one layer at a time ask for them in that order, so the first layer should be whole
    first rather than every layer be a third done (the registry's uplink is shared either way).
    """

    def __init__(self, upstream: Upstream, transferer: BlobTransferer) -> None:
        self.upstream = upstream
        self.transferer = transferer
        self._pending: set[asyncio.Task[None]] = set()

    def schedule(self, base: str, name: str, creds: Credentials, digests: list[str]) -> bool:
        """Start prefetching the layers (digests, in order) of upstream repository `name`; False when MAX_PENDING
        manifests are being prefetched already (the layers then load when the client asks for them)."""
        if not digests or len(self._pending) >= MAX_PENDING:
            return False
        task = asyncio.create_task(self._prefetch_layers(base, name, creds, digests), name=f"prefetch-{name[:40]}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _prefetch_layers(self, base: str, name: str, creds: Credentials, digests: list[str]) -> None:
        for digest in digests:
            try:
                grant = await self.upstream.authorize_blob(base, name, digest, creds)
                if grant.length <= 0:
                    continue
                content = grant.content(digest)
                log.info("prefetching %s of %s (%d bytes)", digest, name, grant.length)
                await self.transferer.prefetch(content)
            except (RegistryError, DandelionError) as exc:
                log.info("not prefetching %s of %s: %s", digest, name, exc)
            except Exception as exc:  # a prefetch is an optimisation: it never takes the mirror down
                log.warning("prefetch of %s of %s failed: %s: %s", digest, name, type(exc).__name__, exc)

    async def aclose(self) -> None:
        """Stop waiting for the prefetches (the downloads go on until the transferer closes)."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
