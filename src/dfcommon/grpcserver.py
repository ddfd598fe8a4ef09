"""Common set-up of every gRPC server: limits, health and reflection (channels: dfcommon.channels)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

import grpc
from dandelion.peer.v1 import peer_pb2
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dfcommon.channels import MAX_MESSAGE
from dfcommon.grpcguard import GuardInterceptor

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Calls that arrived but the server has not taken up yet. Beyond grpc's defaults (1,000; then up to 3,000 with
    # a rising chance) new calls are refused "Too many pending requests", which a grpc.aio client reports as
    # INTERNAL on its first write: 10,000 peers opening their SyncPieces streams at once lost half of them.
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 40_000),
    # A call not taken up within this many seconds is cancelled (grpc's default: 30): a busy server takes them up
    # late rather than never.
    ("grpc.server_max_unrequested_time_in_server", 120),
]


def new_server() -> grpc.aio.Server:
    """A grpc.aio server with the project's limits, every method behind the guard (dfcommon.grpcguard)."""
    return grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=None, interceptors=[GuardInterceptor()])


async def add_health_and_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> health_aio.HealthServicer:
    """Serve grpc.health.v1 and server reflection for the given full service names. The overall health is
    NOT_SERVING and the services unknown until mark_serving (grpc's servicer starts with the overall SERVING, which
    told a probe the server was ready before its services were)."""
    names = list(service_names)
    servicer = health_aio.HealthServicer()
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return servicer


async def mark_serving(servicer: health_aio.HealthServicer, service_names: Iterable[str]) -> None:
    """Set each service's health and then the overall health to SERVING: overall SERVING means every service is."""
    for name in [*service_names, ""]:
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


def add_peer_method(
    server: grpc.aio.Server,
    name: str,
    method: Callable[..., AsyncIterator[bytes]],
    request_deserializer: Callable[[bytes], object],
) -> None:
    """Serve the server-streaming dandelion.peer.v1.PeerService method `name` from method, whose messages are
    already serialized (dfcommon.wire): the bytes it yields go out as they are."""
    handler = grpc.unary_stream_rpc_method_handler(
        method, request_deserializer=request_deserializer, response_serializer=None
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("dandelion.peer.v1.PeerService", {name: handler}),)
    )


def add_download_pieces(method: Callable[..., AsyncIterator[bytes]], server: grpc.aio.Server) -> None:
    """Serve dandelion.peer.v1.PeerService/DownloadPieces from method (see add_peer_method)."""
    add_peer_method(server, "DownloadPieces", method, peer_pb2.DownloadPiecesRequest.FromString)
