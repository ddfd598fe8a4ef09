"""A server's health says SERVING only once every one of its services does: a probe that sees the overall SERVING
may call any service at once."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfcommon.grpcserver import add_health_and_reflection, mark_serving, new_server

SERVICE = "dandelion.scheduler.v1.SchedulerService"


async def _check(stub: health_pb2_grpc.HealthStub, service: str) -> str:
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    except grpc.aio.AioRpcError as err:
        return str(err.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def test_overall_health_is_not_serving_until_the_services_are_marked() -> None:
    async def run() -> tuple[list[str], list[str]]:
        server = new_server()
        health = await add_health_and_reflection(server, [SERVICE])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
                stub = health_pb2_grpc.HealthStub(chan)
                before = [await _check(stub, ""), await _check(stub, SERVICE)]
                await mark_serving(health, [SERVICE])
                after = [await _check(stub, ""), await _check(stub, SERVICE)]
        finally:
            await server.stop(None)
        return before, after

    before, after = asyncio.run(run())
    assert before == ["NOT_SERVING", "NOT_FOUND"]
    assert after == ["SERVING", "SERVING"]
