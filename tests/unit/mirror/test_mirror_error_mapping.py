"""Swarm failures as registry errors: a full cache disk is 507 (docker gives up after a few tries and shows
"Insufficient Storage"), never 429 (docker would retry forever); upstream rate limiting stays 429."""

from __future__ import annotations

import json

import grpc

from dfcommon.errors import DandelionError, LocalDiskError, LocalDiskFull, OriginError
from mirror.errors import transfer_error

BASE = "http://registry.test"


def entry(status: int, exc: DandelionError) -> dict[str, str]:
    error = transfer_error(exc, BASE)
    assert error.status == status
    parsed: dict[str, str] = json.loads(error.body())["errors"][0]
    return parsed


def test_a_full_cache_disk_is_507_naming_the_cause() -> None:
    full = LocalDiskFull("no space left on device in the cache directory /var/cache/d (needed 10 bytes)")
    assert full.code == grpc.StatusCode.RESOURCE_EXHAUSTED  # the gRPC code a busy server would also get
    got = entry(507, full)
    assert got["code"] == "UNAVAILABLE"
    assert got["message"] == f"the mirror cannot cache the blob: {full}"


def test_other_cache_disk_failures_are_500() -> None:
    got = entry(500, LocalDiskError("the cache directory /var/cache/d is on a read-only file system"))
    assert got["code"] == "UNKNOWN" and "read-only file system" in got["message"]


def test_upstream_rate_limiting_stays_429_and_a_busy_swarm_is_not_a_full_disk() -> None:
    assert entry(429, OriginError("origin answered 429", 429))["code"] == "TOOMANYREQUESTS"
    busy = DandelionError("all upload slots are busy", grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert entry(503, busy)["code"] == "UNAVAILABLE"
