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
    """Upstream served every layer blob of images exactly once (the swarm shared it)."""
    gets = registry.blob_gets()
    counts = {digest: gets[digest] for image in images for digest in image.layer_digests}
    assert all(count == 1 for count in counts.values()), f"upstream blob GETs per layer: {counts}"


def require(*binaries: str) -> None:
    """Skip the test when a third-party program is not installed (CI installs them all)."""
    missing = missing_binaries(*binaries)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
