"""dfcommon.metrics.ComponentView: a binary's /metrics labels every sample with that binary."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from dfcommon.metrics import ComponentView


def exposed(source: CollectorRegistry, component: str) -> list[str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ComponentView(component, source))
    return [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]


def test_samples_counted_under_another_binary_label_are_the_running_binary_s() -> None:
    """The supernode's in-process seed peer is the peer package, which counts origin bytes as "dfdaemon"."""
    source = CollectorRegistry()
    origin = Counter("dandelion_origin_bytes", "bytes", ["component"], registry=source)
    origin.labels("dfdaemon").inc(3)
    origin.labels("supernode").inc(2)  # both in one process: one series, summed
    Gauge("dandelion_active_peers", "peers", registry=source).set(7)
    Gauge("dandelion_cache_used_bytes", "not a supernode family", registry=source).set(1)
    lines = exposed(source, "supernode")
    assert 'dandelion_origin_bytes_total{component="supernode"} 5.0' in lines
    (created,) = [line for line in lines if line.startswith("dandelion_origin_bytes_created")]
    assert abs(float(created.split()[-1]) - time.time()) < 60  # a time, not the sum of two
    assert 'dandelion_active_peers{component="supernode"} 7.0' in lines
    assert all('component="supernode"' in line for line in lines), lines
    assert not any(line.startswith("dandelion_cache_used_bytes") for line in lines)
