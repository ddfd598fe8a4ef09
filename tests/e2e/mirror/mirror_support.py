"""Credentials and assertions shared by the mirror end-to-end tests."""

from __future__ import annotations

import re
import secrets
from itertools import takewhile

import pytest
from fixtures.clients import missing_binaries
from fixtures.images import PushedImage
from fixtures.registry import Registry

from dfcommon.pieces import piece_size_for
from dfcommon.read_windows import windows

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


def registry_sent_across_restart(registry: Registry, layer: str, size: int, log: str) -> int:
    """Bytes the registry sent of a layer whose read a registry restart cut: every GET it logged (a killed registry
    logs none of the requests it was answering) and what the cut request had sent, from the start of its window (a
    read for the swarm asks window by window, dfcommon.read_windows) to the first resume's offset in the log."""
    resumed_at = [int(n) for n in re.findall(r"resuming at byte (\d+)", log)]
    assert resumed_at, log[-3000:]
    piece = piece_size_for(size)
    starts = [first * piece for first, _ in takewhile(lambda w: w[0] * piece <= resumed_at[0], windows(piece))]
    gets = [r for r in registry.access_log() if r.method == "GET" and r.blob_digest == layer and r.status < 300]
    return sum(r.size for r in gets) + resumed_at[0] - starts[-1]


def require(*binaries: str) -> None:
    """Skip the test when a third-party program is not installed (CI installs them all)."""
    missing = missing_binaries(*binaries)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
