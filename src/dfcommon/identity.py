"""Task identity: which requests name the same content."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dfcommon.digest import parse_digest
from dfcommon.errors import InvalidArgument

if TYPE_CHECKING:
    from dfcommon.content import ContentRequest

SCHEMES = ("http", "https")
MAX_URL_LENGTH = 8192


def validate_url(url: str) -> str:
    """Check an origin URL: http(s), a host, bounded length. Returns it unchanged."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgument(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as err:
        raise InvalidArgument(f"malformed URL: {str(err)[:100]}") from None
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise InvalidArgument("URL contains control characters")
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidArgument(f"unsupported URL scheme {parts.scheme[:20]!r} in {display_url(url)}: want http or https")
    if not parts.hostname:
        raise InvalidArgument(f"URL has no host: {display_url(url)}")
    return url


def display_url(url: str, filtered_query_params: Iterable[str] = ()) -> str:
    """The URL without user info and filtered query parameters: safe to log and to key on."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    drop = set(filtered_query_params)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in drop])
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, query, ""))


def task_id(url: str, digest: str = "", filtered_query_params: Iterable[str] = (), byte_range: str = "") -> str:
    """Stable id of the content: from the digest when known, else from the sanitized URL (and range)."""
    key = str(parse_digest(digest)) if digest else display_url(url, filtered_query_params)
    if byte_range:
        key += f"#range={byte_range}"
    return hashlib.sha256(key.encode()).hexdigest()


def request_task_id(request: ContentRequest) -> str:
    """The task a content request names (task_id of its URL, digest, filtered query parameters and range)."""
    return task_id(request.url, request.digest, request.filtered_query_params, request.byte_range)
