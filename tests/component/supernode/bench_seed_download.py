"""Throughput benchmark (not a test): origin → seed (preheat) and seed → one client via DownloadPieces.

python tests/component/supernode/bench_seed_download.py [MIB]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import uvloop
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from origin_server import Origin

from dfcommon.channels import channel
from dfcommon.malloc import tune_malloc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(target: str, url: str, size: int) -> None:
    chan = channel(target)
    await asyncio.wait_for(chan.channel_ready(), 60)
    scheduler = scheduler_pb2_grpc.SchedulerServiceStub(chan)
    start = time.perf_counter()
    meta = common_pb2.UrlMeta(url=url)
    task = (await scheduler.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta))).task
    preheat = time.perf_counter() - start
    pieces = (await scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=task.task_id))).task.piece_count
    stub = peer_pb2_grpc.PeerServiceStub(chan)
    start = time.perf_counter()
    got = 0
    hasher = hashlib.sha256()
    # The access grant, the honest way: a host registers, then registers the task.
    host = scheduler_pb2.HostInfo(hostname="bench", ip="127.0.0.1", port=1, upload_slots=1)
    host_id = (await scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))).host_id
    registered = await scheduler.RegisterTask(scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta))
    request = peer_pb2.DownloadPiecesRequest(
        task_id=task.task_id, piece_numbers=list(range(pieces)), requester_host_id=host_id, grant=registered.grant
    )
    async for chunk in stub.DownloadPieces(request):
        got += len(chunk.data)
        hasher.update(chunk.data)
    serve = time.perf_counter() - start
    assert got == size
    print(
        f"{size >> 20} MiB: origin->seed {size / preheat / 1e6:,.0f} MB/s; seed->client (sha256 inline) "
        f"{size / serve / 1e6:,.0f} MB/s"
    )
    await chan.close(None)


def main() -> None:
    tune_malloc()
    size = (int(sys.argv[1]) if len(sys.argv) > 1 else 256) << 20
    origin = Origin().start()
    origin.blobs["/blob"] = os.urandom(size)
    data_dir = tempfile.mkdtemp(prefix="sn-bench-")
    port = free_port()
    args = [
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        data_dir,
        "--advertise-ip",
        "127.0.0.1",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen([shutil.which("supernode") or "supernode", *args])
    try:
        uvloop.run(run(f"127.0.0.1:{port}", f"{origin.base}/blob", size))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        origin.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
