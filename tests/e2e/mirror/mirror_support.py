"""Credentials and assertions shared by the mirror end-to-end tests."""

from __future__ import annotations

import secrets

import pytest
from fixtures.clients import missing_binaries
from fixtures.images import PushedImage
from fixtures.origin import IN_FLIGHT
from fixtures.registry import Registry

USER = "alice"
# A fresh password per run: nothing may depend on (or leak) a fixed secret.
PASSWORD = secrets.token_urlsafe(12)


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
