"""The guard every server runs behind (dfcommon.grpcguard), on an in-process server with raw-bytes clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from dandelion.peer.v1 import peer_pb2

from dfcommon import grpcguard
from dfcommon.errors import NotFound
from dfcommon.grpcserver import new_server
from dfcommon.ratelog import RateLimitedLog

SERVICE = "test.v1.Guarded"


class Servicer:
    """Methods that misbehave in every way the guard handles."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.seen: list[str] = []

    async def Echo(self, request: peer_pb2.ListCacheRequest, context: Any) -> bytes:
        """Answers."""
        return b"ok"

    async def Boom(self, request: peer_pb2.ListCacheRequest, context: Any) -> bytes:
        """An unexpected exception."""
        raise KeyError("secret-internal-detail")

    async def Missing(self, request: peer_pb2.ListCacheRequest, context: Any) -> bytes:
        """An expected error."""
        raise NotFound("no such thing")

    async def Stream(self, request: peer_pb2.ListCacheRequest, context: Any) -> AsyncIterator[bytes]:
        """Endless chunks; notes when its generator is closed."""
        try:
            while True:
                yield b"x" * 65536
                await asyncio.sleep(0)
        finally:
            self.closed.set()

    async def Collect(self, requests: AsyncIterator[peer_pb2.DownloadPiecesRequest], context: Any) -> bytes:
        """Reads the whole request stream."""
        async for request in requests:
            self.seen.append(request.task_id)
        return b"done"


def handlers(servicer: Servicer) -> grpc.GenericRpcHandler:
    """The test service's method handlers (raw bytes out)."""
    unary = peer_pb2.ListCacheRequest.FromString
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(servicer.Echo, request_deserializer=unary),
            "Boom": grpc.unary_unary_rpc_method_handler(servicer.Boom, request_deserializer=unary),
            "Missing": grpc.unary_unary_rpc_method_handler(servicer.Missing, request_deserializer=unary),
            "Stream": grpc.unary_stream_rpc_method_handler(servicer.Stream, request_deserializer=unary),
            "Collect": grpc.stream_unary_rpc_method_handler(
                servicer.Collect, request_deserializer=peer_pb2.DownloadPiecesRequest.FromString
            ),
        },
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Servicer, grpc.aio.Channel]]:
    """The servicer behind new_server() and a channel to it."""
    servicer = Servicer()
    server = new_server()
    server.add_generic_rpc_handlers((handlers(servicer),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield servicer, channel
    await server.stop(None)


def unary(channel: grpc.aio.Channel, name: str) -> Any:
    """A raw-bytes unary call."""
    return channel.unary_unary(f"/{SERVICE}/{name}", request_serializer=None, response_deserializer=None)


async def status(call: Any) -> tuple[grpc.StatusCode, str]:
    """How an awaited call ended."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def test_malformed_message_is_invalid_argument(
    served: tuple[Servicer, grpc.aio.Channel], caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are no protobuf: INVALID_ARGUMENT naming the expected type, no class name; one log line."""
    _, channel = served
    caplog.set_level(logging.WARNING)
    for _ in range(20):
        code, details = await status(unary(channel, "Echo")(b"\xff\xff\xff\xff\x0f"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details == "malformed request: not a valid dandelion.peer.v1.ListCacheRequest"
    assert await unary(channel, "Echo")(b"") == b"ok"
    lines = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None


async def test_unexpected_and_expected_errors(
    served: tuple[Servicer, grpc.aio.Channel], caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception: INTERNAL with a plain message (its traceback logged once); a DandelionError its code."""
    _, channel = served
    caplog.set_level(logging.WARNING)
    for _ in range(5):
        code, details = await status(unary(channel, "Boom")(b""))
        assert code == grpc.StatusCode.INTERNAL
        assert "KeyError" not in details and "secret" not in details and "<class" not in details
    assert len([r for r in caplog.records if r.exc_info]) == 1
    assert await status(unary(channel, "Missing")(b"")) == (grpc.StatusCode.NOT_FOUND, "no such thing")


async def test_stream_generator_closes_when_the_client_cancels(served: tuple[Servicer, grpc.aio.Channel]) -> None:
    """A cancelled server stream closes the servicer's async generator at once (its finally runs)."""
    servicer, channel = served
    call = channel.unary_stream(f"/{SERVICE}/Stream", request_serializer=None, response_deserializer=None)(b"")
    async for _ in call:
        break
    call.cancel()
    await asyncio.wait_for(servicer.closed.wait(), 5)


async def test_a_client_that_stops_reading_loses_its_call(
    served: tuple[Servicer, grpc.aio.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write blocked for WRITE_STALL_SECONDS (the client reads nothing) ends the call and closes the generator;
    the client then learns why."""
    monkeypatch.setattr(grpcguard, "WRITE_STALL_SECONDS", 0.5)
    servicer, channel = served
    call = channel.unary_stream(f"/{SERVICE}/Stream", request_serializer=None, response_deserializer=None)(b"")
    await call.read()
    await asyncio.wait_for(servicer.closed.wait(), 10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while await call.read() is not grpc.aio.EOF:
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.details() == "the client read nothing for 0.5s"


async def test_malformed_message_later_in_a_request_stream(served: tuple[Servicer, grpc.aio.Channel]) -> None:
    """A request stream whose second message does not parse: INVALID_ARGUMENT, after the first was handled."""
    servicer, channel = served
    good = peer_pb2.DownloadPiecesRequest(task_id="t1").SerializeToString()
    call = channel.stream_unary(f"/{SERVICE}/Collect", request_serializer=None, response_deserializer=None)
    code, details = await status(call(iter([good, b"\xff\xff\xff"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "DownloadPiecesRequest" in details
    assert servicer.seen == ["t1"]
    assert await call(iter([good, good])) == b"done"


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    """One line per kind per interval; the next says how many were left out; kinds are separate."""
    now = [0.0]
    quiet = RateLimitedLog(logging.getLogger("test.quiet"), interval=10, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    logged = [quiet.warning("a", "line a") for _ in range(5)] + [quiet.warning("b", "line b")]
    assert logged == [True, False, False, False, False, True]
    now[0] = 11
    assert quiet.warning("a", "line a")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["line a", "line b", "line a (4 more like it in the last 11s not logged)"]
