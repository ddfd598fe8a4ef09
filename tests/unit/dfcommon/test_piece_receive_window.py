"""The channels a peer fetches pieces on (peer.context.ChannelPool) bound how far a parent's streams run ahead of a
receiver that stopped reading: the dfdaemon's memory while it hashes and writes pieces slower than they arrive.

With gRPC's default window (grown by its bandwidth probe) the same three streams ran 12-48 MiB ahead here, in five
runs; with PIECE_RECEIVE_WINDOW, 3-4 MiB."""

from __future__ import annotations

import asyncio

import grpc
from fixtures.processes import free_port

from dfcommon.channels import PIECE_RECEIVE_WINDOW
from dfcommon.pieces import CHUNK_SIZE
from peer.context import ChannelPool

HOST = "127.0.0.75"
STREAMS = 3  # a download's streams to one parent (peer.context.PeerContext.max_streams)
WARM_UP = 32  # chunks each stream reads at full speed first, for gRPC's bandwidth probe to see the link


async def chunks_sent_ahead() -> int:
    """How many chunks a server got out on STREAMS streams while its client, after WARM_UP, read nothing for 1 s."""
    sent = 0

    async def flood(_request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        nonlocal sent
        for _ in range(WARM_UP + 256):
            await context.write(b"x" * CHUNK_SIZE)
            sent += 1

    async def warm_up(call: grpc.aio.UnaryStreamCall[bytes, bytes]) -> None:
        for _ in range(WARM_UP):
            await call.read()

    server = grpc.aio.server()
    handler = grpc.unary_stream_rpc_method_handler(flood)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Flood", {"Flood": handler}),))
    port = free_port(HOST)
    server.add_insecure_port(f"{HOST}:{port}")
    await server.start()
    pool = ChannelPool()
    client = pool.get(f"{HOST}:{port}")
    calls = [client.unary_stream("/test.Flood/Flood")(b"") for _ in range(STREAMS)]
    try:
        await asyncio.gather(*(warm_up(call) for call in calls))
        await asyncio.sleep(1.0)  # the receiver is busy: each stream runs on as far as its window lets it
        return sent - STREAMS * WARM_UP
    finally:
        for call in calls:
            call.cancel()
        await pool.close()
        await server.stop(None)


async def test_a_stalled_receiver_holds_about_one_window_per_stream() -> None:
    ahead = await chunks_sent_ahead()
    # One window per stream, plus the chunk each stream's sender has in hand.
    assert ahead <= STREAMS * (PIECE_RECEIVE_WINDOW // CHUNK_SIZE + 1), ahead
