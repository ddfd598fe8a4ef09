"""dfcommon.urlmeta: the one conversion between a ContentRequest and its wire form, UrlMeta, both ways."""

from __future__ import annotations

from dandelion.common.v1 import common_pb2

from dfcommon.content import ContentRequest
from dfcommon.urlmeta import from_url_meta, to_url_meta
from registryclient.answers import BlobGrant

DIGEST = "sha256:" + "ab" * 32


def test_every_field_survives_the_round_trip_through_the_wire() -> None:
    request = ContentRequest(
        url="https://origin.example/big.iso?token=x&part=1",
        headers={"Authorization": "Bearer t", "X-Trace": "1"},
        digest=DIGEST,
        filtered_query_params=("token", "part"),
        byte_range="100-199",
    )
    wire = common_pb2.UrlMeta.FromString(to_url_meta(request).SerializeToString())
    assert wire.url == request.url
    assert dict(wire.headers) == request.headers
    assert list(wire.filtered_query_params) == ["token", "part"]
    assert wire.range == "100-199"
    assert from_url_meta(wire) == request


def test_a_bare_request_leaves_the_optional_fields_unset() -> None:
    meta = to_url_meta(ContentRequest(url="http://127.0.0.1:8080/f"))
    assert meta == common_pb2.UrlMeta(url="http://127.0.0.1:8080/f")
    assert from_url_meta(meta) == ContentRequest(url="http://127.0.0.1:8080/f")


def test_a_blob_grant_becomes_the_request_the_mirror_and_preheat_send() -> None:
    grant = BlobGrant("https://registry.example/v2/team/app/blobs/" + DIGEST, {"Authorization": "Bearer t"}, 42)
    request = grant.content(DIGEST)
    assert request == ContentRequest(url=grant.url, headers={"Authorization": "Bearer t"}, digest=DIGEST)
    assert to_url_meta(request) == common_pb2.UrlMeta(url=grant.url, headers=grant.headers, digest=DIGEST)
