"""Which digest a peer checks a piece against, from what the scheduler sent."""

from __future__ import annotations

import hashlib

import pytest
from blake3 import blake3
from dandelion.common.v1 import common_pb2

from dfcommon import piecedigest
from peer.download.stream_events import piece_digest as _piece_digest

DATA = b"piece bytes"
BLAKE3 = blake3(DATA).hexdigest()
SHA256 = hashlib.sha256(DATA).hexdigest()


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        ({"digest": f"blake3:{BLAKE3}"}, f"blake3:{BLAKE3}"),
        ({"digest": f"BLAKE3:{BLAKE3.upper()}"}, f"blake3:{BLAKE3}"),
        ({"digest": f"sha256:{SHA256}", "sha256": SHA256}, f"sha256:{SHA256}"),
        ({"sha256": SHA256}, f"sha256:{SHA256}"),  # a seed that fills only the deprecated field
        ({"digest": f"blake3:{BLAKE3}", "sha256": "ff" * 32}, f"blake3:{BLAKE3}"),  # digest wins
        ({}, ""),  # no digest: the peer hashes the whole content itself
        ({"digest": "md5:" + hashlib.md5(DATA).hexdigest()}, ""),  # unknown algorithm: cannot vouch
        ({"digest": "blake3:abc"}, ""),  # malformed
    ],
)
def test_piece_digest_from_the_assignment(fields: dict[str, str], want: str) -> None:
    piece = common_pb2.PieceInfo(number=0, offset=0, size=len(DATA), **fields)
    assert _piece_digest(piece) == want


@pytest.mark.parametrize("algorithm", piecedigest.ALGORITHMS)
def test_digest_of_matches_the_reference_implementations(algorithm: str) -> None:
    reference = {"blake3": BLAKE3, "sha256": SHA256}[algorithm]
    assert piecedigest.digest_of(algorithm, [DATA[:4], memoryview(DATA)[4:]]) == f"{algorithm}:{reference}"
    assert piecedigest.legacy_sha256(f"{algorithm}:{reference}") == (SHA256 if algorithm == "sha256" else "")


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown piece digest algorithm"):
        piecedigest.hasher("md5")
