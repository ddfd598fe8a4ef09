"""Load benchmark (not a test): simulated peers drive a real supernode process through SyncPieces.

    python tests/component/supernode/bench_syncpieces.py [PEERS] [PIECES]

Starts an origin and `supernode` on 127.0.0.1, preheats one task of PIECES pieces, then PEERS
peers (one stream each, window 16) report every assignment as fetched at once. Prints the piece
reports per second the supernode absorbed and how much of the load fell on the seed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import uvloop
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from origin_server import Origin

from dfcommon.channels import channel

PIECE = 64 << 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def peer(stub: scheduler_pb2_grpc.SchedulerServiceAsyncStub, index: int, url: str, counts: list[int]) -> None:
    host = scheduler_pb2.HostInfo(hostname=f"p{index}", ip="127.0.0.1", port=10000 + index, upload_slots=8)
    host_id = (await stub.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))).host_id
    meta = common_pb2.UrlMeta(url=url)
    reply = await stub.RegisterTask(scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta))
    outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
    outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=reply.peer_id, window=16))

    async def requests() -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
        while (message := await outgoing.get()) is not None:
            yield message

    async for message in stub.SyncPieces(requests()):
        if message.WhichOneof("event") == "assignments":
            results = [
                scheduler_pb2.PieceResult(piece_number=a.piece.number, parent_peer_id=a.parent.peer_id, success=True)
                for a in message.assignments.assignments
            ]
            counts[0] += len(results)
            outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(results=results))
    outgoing.put_nowait(None)


async def run(peers: int, pieces: int, target: str, url: str) -> None:
    chan = channel(target)
    await asyncio.wait_for(chan.channel_ready(), 60)
    stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
    meta = common_pb2.UrlMeta(url=url)
    task = (await stub.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta))).task
    counts = [0]
    start = time.perf_counter()
    await asyncio.gather(*(peer(stub, i, url, counts) for i in range(peers)))
    elapsed = time.perf_counter() - start
    got = await stub.GetTask(scheduler_pb2.GetTaskRequest(task_id=task.task_id))
    seed = next(p for p in got.peers if p.is_seed)
    total_ok = sum(p.uploads_ok for p in got.peers)
    print(
        f"{peers} peers x {pieces} pieces: {counts[0]} reports in {elapsed:.1f}s = {counts[0] / elapsed:,.0f}/s "
        f"(incl. registration); seed served {seed.uploads_ok / max(1, total_ok):.1%}"
    )
    await chan.close(None)


def main() -> None:
    peers = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pieces = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    origin = Origin().start()
    origin.blobs["/blob"] = os.urandom(pieces * PIECE)
    data_dir = tempfile.mkdtemp(prefix="sn-bench-")
    port = free_port()
    args = [
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        data_dir,
        "--advertise-ip",
        "127.0.0.1",
        "--piece-size",
        "64KiB",
        "--log-level",
        "warning",
        "--seed-upload-slots",
        "256",
    ]
    proc = subprocess.Popen([shutil.which("supernode") or "supernode", *args])
    try:
        uvloop.run(run(peers, pieces, f"127.0.0.1:{port}", f"{origin.base}/blob"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        origin.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
