"""Credentials and assertions shared by the mirror end-to-end tests."""

from __future__ import annotations

import secrets

import pytest
from fixtures.clients import missing_binaries
from fixtures.images import PushedImage
from fixtures.registry import Registry

USER = "alice"
# A fresh password per run: nothing may depend on (or leak) a fixed secret.
PASSWORD = secrets.token_urlsafe(12)


# Bytes a split reader may have had in flight past its cut, read again by the reader of the part after it: the body
# reader's read-ahead (4 MiB, peer.origin_body.READ_AHEAD) and the socket buffers of both ends (loopback autotunes
# them to ~6 MiB and ~4 MiB). Measured: 12.5 MB on a 64 MiB layer read by a seed peer and split with one dfdaemon.
IN_FLIGHT = 16 << 20


def assert_layers_fetched_once(registry: Registry, *images: PushedImage) -> None:
    """Upstream served every layer blob of images once (the swarm shared it): one GET, or a few ranged GETs of
    disjoint parts when the read was split between readers (docs/protocol.md, "Readers"), where what was in flight
    on the first reader's body when it stopped at its cut (at most a piece or two) may be sent twice."""
    sent, gets = registry.blob_bytes(), registry.blob_gets()
    sizes = {
        digest: size for image in images for digest, size in zip(image.layer_digests, image.layer_sizes, strict=True)
    }
    counts = {digest: (sent[digest], gets[digest]) for digest in sizes}
    assert all(size <= sent[digest] <= size + IN_FLIGHT for digest, size in sizes.items()), (
        f"upstream (bytes, GETs) per layer: {counts}, sizes {sizes}"
    )


def require(*binaries: str) -> None:
    """Skip the test when a third-party program is not installed (CI installs them all)."""
    missing = missing_binaries(*binaries)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
