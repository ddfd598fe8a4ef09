"""Prometheus metrics of every component, served on /metrics by start_metrics_server()."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from dfcommon.sizes import parse_hostport

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


def start_metrics_server(address: str) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on HOST:PORT in a background thread; call server.shutdown() to stop."""
    host, port = parse_hostport(address)
    server, thread = start_http_server(port, addr=host)
    return server, thread
