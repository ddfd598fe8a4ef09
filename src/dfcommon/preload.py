"""Imports that libraries otherwise make on their first use, done at start-up instead; and httpcore's read size.

httpx imports httpcore, h11 and anyio's asyncio backend (and trio, where installed) when it sends its first
request: 20 ms on an idle host, measured up to 0.2 s on a busy one, paid by the first registry or origin request
after a start, which is exactly a cold pull. preload_http_client() takes that cost before the servers listen.
"""

from __future__ import annotations

import importlib

HTTP_CLIENT_MODULES = (
    "h11",
    "httpcore",
    "httpcore._async.http11",
    "httpcore._async.connection_pool",
    "httpcore._backends.anyio",
    "anyio._backends._asyncio",
)


# httpcore reads HTTP/1.1 bodies 64 KiB at a time, each read passing through h11 and anyio in Python: about
# 800 MB/s on loopback from docker-registry. 256 KiB reads: about 1,500 MB/s, with half the CPU per byte (the
# supernode's and the peers' origin fetches, the mirror's upstream calls).
READ_NUM_BYTES = 256 << 10


def preload_http_client() -> None:
    """Import what httpx would import on its first request, and raise httpcore's read size."""
    for name in HTTP_CLIENT_MODULES:
        importlib.import_module(name)
    http11 = importlib.import_module("httpcore._async.http11")
    connection = getattr(http11, "AsyncHTTP11Connection", None)
    if connection is not None and isinstance(getattr(connection, "READ_NUM_BYTES", None), int):
        connection.READ_NUM_BYTES = max(connection.READ_NUM_BYTES, READ_NUM_BYTES)
