"""Prometheus metrics of every component; start_metrics_server() serves one binary's families on /metrics.

Every family lives in the default registry (the code that counts does not know which binary runs it);
each binary's /metrics shows only the families listed for it in FAMILIES, every sample with a component
label, plus dandelion_build_info{version}.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from dfcommon.sizes import parse_hostport
from dfcommon.version import version

ORIGIN_BYTES = Counter(
    "dandelion_origin_bytes", "Bytes fetched from origins (seed fetches and back-to-source)", ["component"]
)
PEER_BYTES_RECEIVED = Counter("dandelion_peer_bytes_received", "Verified piece bytes received from other peers")
PEER_BYTES_SERVED = Counter("dandelion_peer_bytes_served", "Piece bytes served to other peers", ["component"])
PIECES = Counter("dandelion_pieces", "Piece downloads by outcome", ["result"])
TASK_DURATION = Histogram(
    "dandelion_task_duration_seconds",
    "Wall time of whole downloads",
    ["component", "result"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
ACTIVE_TASKS = Gauge("dandelion_active_tasks", "Tasks known", ["component"])
ACTIVE_PEERS = Gauge("dandelion_active_peers", "Peers registered and not gone (supernode)")
ACTIVE_HOSTS = Gauge("dandelion_active_hosts", "Hosts registered and heart-beating (supernode)")
PIECE_REPORTS = Counter("dandelion_piece_reports", "Piece results reported to the supernode", ["result"])
SLOTS_BUSY = Gauge("dandelion_slots_busy", "Slots held now, per pool (0 when idle: anything else is a leak)", ["pool"])
SLOTS_LIMIT = Gauge("dandelion_slots_limit", "Slots of each pool", ["pool"])
MALFORMED_REQUESTS = Counter(
    "dandelion_malformed_requests",
    "gRPC requests refused: protobuf that does not parse, invalid field values",
    ["kind"],
)
MIRROR_REQUESTS = Counter("dandelion_mirror_requests", "Registry mirror requests", ["method", "kind", "status"])
BUILD_INFO = Gauge("dandelion_build_info", "Always 1; the running version in its label", ["version"])
CACHE_USED = Gauge("dandelion_cache_used_bytes", "Bytes the dfdaemon's cache takes or has promised to downloads")
CACHE_QUOTA = Gauge("dandelion_cache_quota_bytes", "The dfdaemon's cache quota (--cache-quota)")
SEED_PEERS = Gauge("dandelion_seed_peers", "Seed peers registered (dfdaemon --seed) (supernode)")
SEED_ORDERS = Counter("dandelion_seed_orders", "Tasks ordered from seed peers (supernode)")
LIMITS = Gauge(
    "dandelion_limit",
    "What the supernode remembers at most (--max-tasks, --max-peers-per-task, --max-hosts)",
    ["resource"],
)
LIMIT_REFUSALS = Counter(
    "dandelion_limit_refusals", "Registrations refused at a limit, RESOURCE_EXHAUSTED (supernode)", ["resource"]
)
LIMIT_EVICTIONS = Counter(
    "dandelion_limit_evictions", "Idle tasks forgotten before their --task-ttl to make room (supernode)", ["resource"]
)
HEARTBEATS = Counter(
    "dandelion_heartbeats",
    "Host heartbeats taken, by how they came: a HeartbeatHost call or a stream (supernode)",
    ["via"],
)
ACCESS_DECISIONS = Counter(
    "dandelion_access_decisions",
    "RegisterTask access decisions by outcome: public, public-cached, public-stale, caller, caller-cached, exempt "
    "(granted); refused, undecided (not granted) (supernode)",
    ["outcome"],
)


class CountedElsewhere(Collector):
    """A counter family whose values the code that counts keeps as plain integers (the supernode's scheduler does no
    I/O and imports no metrics), read at each scrape from set_function's mapping of label value to count."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._read: Callable[[], Mapping[str, int]] | None = None
        REGISTRY.register(self)

    def set_function(self, read: Callable[[], Mapping[str, int]]) -> None:
        """Where the counts are read from at each scrape (a mapping whose keys never change: read from the metrics
        server's thread)."""
        self._read = read

    def collect(self) -> Iterable[Metric]:
        """The family, with one sample per label value once set_function was called."""
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        if self._read is not None:
            for value, count in list(self._read().items()):
                family.add_metric([value], count)
        yield family


PIECE_BYTES_DELIVERED = CountedElsewhere(
    "dandelion_piece_bytes_delivered",
    "Piece bytes of assignments their child reported received, by where the parent was: within_zone, "
    "between_zones (both gave a region|zone, dfdaemon --location), no_zone (supernode)",
    "path",
)

_COMMON = (
    "dandelion_build_info",
    "dandelion_origin_bytes",
    "dandelion_peer_bytes_served",
    "dandelion_task_duration_seconds",
    "dandelion_active_tasks",
    "dandelion_slots_busy",
    "dandelion_slots_limit",
    "dandelion_malformed_requests",
)
# The families each binary exports (the component label of its samples is the key).
FAMILIES: dict[str, frozenset[str]] = {
    "supernode": frozenset(
        (
            *_COMMON,
            "dandelion_active_peers",
            "dandelion_active_hosts",
            "dandelion_piece_reports",
            "dandelion_seed_peers",
            "dandelion_seed_orders",
            "dandelion_limit",
            "dandelion_limit_refusals",
            "dandelion_limit_evictions",
            "dandelion_heartbeats",
            "dandelion_access_decisions",
            "dandelion_piece_bytes_delivered",
        )
    ),
    "dfdaemon": frozenset(
        (
            *_COMMON,
            "dandelion_peer_bytes_received",
            "dandelion_pieces",
            "dandelion_mirror_requests",
            "dandelion_cache_used_bytes",
            "dandelion_cache_quota_bytes",
        )
    ),
}


class ComponentView(Collector):
    """The default registry's families of one binary, each sample labelled component=<binary>."""

    def __init__(self, component: str, source: CollectorRegistry = REGISTRY) -> None:
        self.component = component
        self.names = FAMILIES[component]
        self.source = source

    def collect(self) -> Iterable[Metric]:
        """The binary's families, every sample labelled with the binary: code another package's counts with its own
        label runs in this process for this binary (the supernode's in-process seed peer is the peer package, whose
        origin bytes are the supernode's). Samples that become alike are summed (their creation time: the first)."""
        for family in self.source.collect():
            if family.name not in self.names:
                continue
            view = Metric(family.name, family.documentation, family.type, family.unit)
            merged: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
            for sample in family.samples:
                others = {name: value for name, value in sample.labels.items() if name != "component"}
                labels = {"component": self.component, **others}
                key = (sample.name, tuple(labels.items()))
                if key in merged:
                    at, value = merged[key], view.samples[merged[key]].value
                    value = min(value, sample.value) if sample.name.endswith("_created") else value + sample.value
                    view.samples[at] = view.samples[at]._replace(value=value)
                    continue
                merged[key] = len(view.samples)
                view.samples.append(sample._replace(labels=labels))
            yield view


def component_registry(component: str) -> CollectorRegistry:
    """A registry exposing only component's families (see FAMILIES), with its build_info set."""
    BUILD_INFO.labels(version()).set(1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ComponentView(component))
    return registry


class _QuietHandler(WSGIRequestHandler):
    """No access line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _MetricsServer(ThreadingWSGIServer):
    """The WSGI server without http.server's reverse lookup of the listen address at bind (socket.getfqdn), which
    blocks for seconds where the host's own name does not resolve (seen in a fresh network namespace)."""

    def server_bind(self) -> None:
        """Bind, name the server by its address, set up the WSGI environment."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
        self.setup_environ()


class _MetricsServer6(_MetricsServer):
    address_family = socket.AF_INET6


def start_metrics_server(address: str, component: str) -> tuple[WSGIServer, threading.Thread]:
    """Serve component's /metrics on HOST:PORT in a background thread; call server.shutdown() to stop."""
    host, port = parse_hostport(address)
    server_class = _MetricsServer6 if ":" in host else _MetricsServer
    app = make_wsgi_app(component_registry(component))
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
