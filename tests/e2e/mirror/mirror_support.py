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


def assert_layers_fetched_once(registry: Registry, *images: PushedImage) -> None:
    """Upstream sent every layer blob of images once (the swarm shared it), in one GET or several ranged GETs: a
    read for the swarm asks window by window, and a read split between readers is split where one of the first
    reader's requests ends (docs/protocol.md, "Read windows"), so no byte is sent twice."""
    sent, gets = registry.blob_bytes(), registry.blob_gets()
    sizes = {
        digest: size for image in images for digest, size in zip(image.layer_digests, image.layer_sizes, strict=True)
    }
    counts = {digest: (sent[digest], gets[digest]) for digest in sizes}
    assert all(sent[digest] == size for digest, size in sizes.items()), (
        f"upstream (bytes, GETs) per layer: {counts}, sizes {sizes}"
    )


def require(*binaries: str) -> None:
    """Skip the test when a third-party program is not installed (CI installs them all)."""
    missing = missing_binaries(*binaries)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
