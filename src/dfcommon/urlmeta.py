"""The one conversion between a ContentRequest and its wire form, dandelion.common.v1.UrlMeta."""

from __future__ import annotations

from dandelion.common.v1 import common_pb2

from dfcommon.content import ContentRequest


def to_url_meta(request: ContentRequest) -> common_pb2.UrlMeta:
    """The wire form of a content request (its headers included: they travel to whoever fetches the origin)."""
    return common_pb2.UrlMeta(
        url=request.url,
        headers=request.headers,
        digest=request.digest,
        filtered_query_params=list(request.filtered_query_params),
        range=request.byte_range,
    )


def from_url_meta(meta: common_pb2.UrlMeta) -> ContentRequest:
    """The content request a UrlMeta stands for (validation is the caller's: dfcommon.identity, digest, range)."""
    return ContentRequest(
        url=meta.url,
        headers=dict(meta.headers),
        digest=meta.digest,
        filtered_query_params=tuple(meta.filtered_query_params),
        byte_range=meta.range,
    )
