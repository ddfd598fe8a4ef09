"""Back-to-source: fetching content (or ranges of it) from the origin with httpx."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument, OriginError
from dfcommon.identity import display_url
from peer.byterange import parse_byte_range

CHUNK = 1 << 20


@dataclass
class OriginResponse:
    """An origin's answer: the length of what it sends (-1 unknown) and the body."""

    length: int
    body: AsyncIterator[bytes]


def _headers(request: ContentRequest, start: int, end: int | None) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("range", "accept-encoding")}
    headers["Accept-Encoding"] = "identity"
    base, base_end = parse_byte_range(request.byte_range) if request.byte_range else (0, None)
    first = base + start
    last = base + end if end is not None else base_end
    if first or last is not None:
        headers["Range"] = f"bytes={first}-{'' if last is None else last}"
    return headers


def origin_error(request: ContentRequest, response: httpx.Response) -> OriginError:
    """The one-line error for an origin's failing status."""
    return OriginError(
        f"origin returned HTTP {response.status_code} {response.reason_phrase} for {display_url(request.url)}",
        response.status_code,
    )


@asynccontextmanager
async def open_origin(
    client: httpx.AsyncClient, request: ContentRequest, start: int = 0, end: int | None = None
) -> AsyncIterator[OriginResponse]:
    """Open content bytes [start, end] (inclusive, relative to the request's own range) at the origin."""
    headers = _headers(request, start, end)
    try:
        async with client.stream("GET", request.url, headers=headers) as response:
            if response.status_code >= 400:
                raise origin_error(request, response)
            if "Range" in headers and response.status_code != 206:
                raise OriginError(
                    f"origin ignored the Range request for {display_url(request.url)}", response.status_code
                )
            length_text = response.headers.get("content-length")
            length = int(length_text) if length_text and length_text.isdigit() else -1
            yield OriginResponse(length, response.aiter_raw(CHUNK))
    except httpx.HTTPError as exc:
        raise OriginError(f"cannot fetch {display_url(request.url)}: {type(exc).__name__} {exc}".strip()) from None


def tls_verification(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext | bool:
    """httpx's verify: the system CAs plus ca_file, or no verification at all when insecure."""
    if insecure:
        return False
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load CA bundle {ca_file}: {exc}") from None
    return context


def new_client(ca_file: str | None = None, insecure: bool = False) -> httpx.AsyncClient:
    """The HTTP client for origin fetches (follows redirects, no overall timeout on big bodies)."""
    return httpx.AsyncClient(
        follow_redirects=True,
        timeout=httpx.Timeout(30.0, read=60.0),
        headers={"User-Agent": "dandelion-peer"},
        verify=tls_verification(ca_file, insecure),
    )
