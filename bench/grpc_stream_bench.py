"""What gRPC alone moves here: 1 MiB messages streamed from a grpc.aio server to a grpc.aio client (prints figures).

The ceiling under the peer-to-peer transfer (bench/p2p_bench.py): the same message size as piece chunks
(dfcommon.pieces.CHUNK_SIZE), the project's server and channel options (dfcommon.grpcserver.new_server, its guard
interceptor included, and dfcommon.channels.channel), nothing read from disk, hashed or written. The server runs in
a process of its own on 127.0.0.1, as a parent does; the client opens --streams concurrent calls over --channels
connections and drops what it receives. Prints MB/s and each side's CPU milliseconds per MiB.

Usage: python bench/grpc_stream_bench.py [--mib 1024] [--streams 3] [--channels 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests")]

import grpc  # noqa: E402
import uvloop  # noqa: E402
from cpu_account import process_cpu_seconds  # noqa: E402
from fixtures.processes import free_port  # noqa: E402

from dfcommon.channels import channel  # noqa: E402
from dfcommon.grpcserver import new_server  # noqa: E402
from dfcommon.malloc import tune_malloc  # noqa: E402
from dfcommon.pieces import CHUNK_SIZE, MIB  # noqa: E402

SERVICE = "dandelion.bench.v1.Stream"
METHOD = f"/{SERVICE}/Chunks"


async def serve(port: int) -> None:
    """Answer each call with as many messages of CHUNK_SIZE bytes as it asks for (the same bytes each time)."""
    payload = os.urandom(CHUNK_SIZE)

    async def chunks_of(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        for _ in range(int(request or b"0")):
            yield payload

    server = new_server()
    handler = grpc.unary_stream_rpc_method_handler(chunks_of, request_deserializer=None, response_serializer=None)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Chunks": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def receive(port: int, mib: int, streams: int, channels: int) -> tuple[float, float]:
    """(MB/s, client CPU ms per MiB) for mib MiB spread over the streams."""
    pool = [channel(f"127.0.0.1:{port}", own_connection=True) for _ in range(channels)]
    per_stream = mib * MIB // CHUNK_SIZE // streams

    async def one(index: int, count: int) -> int:
        call = pool[index % channels].unary_stream(METHOD, request_serializer=None, response_deserializer=None)
        got = 0
        async for message in call(str(count).encode()):
            got += len(message)
        return got

    try:
        await asyncio.gather(*(one(i, 1) for i in range(channels)))  # connected before the clock starts
        began, cpu = time.monotonic(), time.process_time()
        total = sum(await asyncio.gather(*(one(i, per_stream) for i in range(streams))))
        elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
    finally:
        for ch in pool:
            await ch.close(None)
    return total / elapsed / 1e6, cpu * 1000 / (total / MIB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="MiB per run (default 1024)")
    parser.add_argument("--streams", type=int, default=3, help="concurrent calls (default 3, as a dfdaemon's task)")
    parser.add_argument("--channels", type=int, default=1, help="connections they share (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)  # the server process: its port
    args = parser.parse_args()
    tune_malloc()  # as the dfdaemon does
    if args.serve:
        uvloop.run(serve(args.serve))
        return
    if min(args.mib, args.streams, args.channels, args.repeat) < 1:
        parser.error("--mib, --streams, --channels and --repeat must be at least 1")
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        rates, client_ms, server_ms = [], [], []
        for run in range(args.repeat):
            before = process_cpu_seconds(server.pid)
            rate, ms = uvloop.run(receive(port, args.mib, args.streams, args.channels))
            server_ms.append((process_cpu_seconds(server.pid) - before) * 1000 / args.mib)
            rates.append(rate)
            client_ms.append(ms)
            print(
                f"run {run + 1}: {rate:,.0f} MB/s, CPU per MiB: client {ms:.2f} ms, server {server_ms[-1]:.2f} ms",
                flush=True,
            )
        print(
            f"{args.streams} stream(s) over {args.channels} connection(s), {CHUNK_SIZE // 1024} KiB messages, medians"
            f" of {args.repeat}: {statistics.median(rates):,.0f} MB/s, CPU per MiB client"
            f" {statistics.median(client_ms):.2f} ms, server {statistics.median(server_ms):.2f} ms"
        )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
