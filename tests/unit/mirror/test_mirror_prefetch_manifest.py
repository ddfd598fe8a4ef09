"""Which blobs of a manifest the mirror has the swarm prefetch: an image manifest's registry-held sha256 layers."""

from __future__ import annotations

import json

import pytest

from mirror.prefetch import MAX_LAYERS, layer_digests

V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def manifest(layers: list[dict[str, object]], config: str = digest(999)) -> bytes:
    return json.dumps({"schemaVersion": 2, "config": {"digest": config, "size": 9}, "layers": layers}).encode()


@pytest.mark.parametrize("media_type", [V2S2, OCI, OCI + "; charset=utf-8", V2S2.upper()])
def test_layers_in_order_without_the_config(media_type: str) -> None:
    body = manifest([{"digest": digest(n), "size": 5} for n in (3, 1, 2)])
    assert layer_digests(media_type, body) == [digest(3), digest(1), digest(2)]


def test_foreign_duplicate_and_invalid_layers_are_skipped() -> None:
    body = manifest(
        [
            {"digest": digest(1)},
            {"digest": digest(2), "urls": ["https://elsewhere.example/layer.tar"]},  # not in the registry
            {"digest": digest(1)},
            {"digest": "sha256:XYZ"},
            {"digest": "md5:" + "0" * 32},
            {"digest": 7},
            "not an object",
            {"digest": digest(3)},
        ]
    )
    assert layer_digests(OCI, body) == [digest(1), digest(3)]


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        (LIST, json.dumps({"manifests": [{"digest": digest(1)}]}).encode()),  # indexes name manifests
        (INDEX, manifest([{"digest": digest(1)}])),
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", manifest([{"digest": digest(1)}])),
        (OCI, b"{not json"),
        (OCI, b"[1, 2]"),
        (OCI, json.dumps({"layers": "nope"}).encode()),
        (OCI, manifest([{"digest": digest(n)} for n in range(MAX_LAYERS + 1)])),
    ],
)
def test_anything_but_a_plausible_image_manifest_prefetches_nothing(media_type: str, body: bytes) -> None:
    assert layer_digests(media_type, body) == []
