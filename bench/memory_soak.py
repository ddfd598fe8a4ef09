"""Memory soak of the supernode (prints figures, not a test): N tasks registered, downloaded and finished by simulated
peers over real gRPC while the supernode's resident memory is sampled.

Usage: python bench/memory_soak.py [--tasks 100000] [--quick] [--workers 2] [--concurrency 32] [--task-ttl 5s]
                                  [--max-tasks 100000] [--pieces 4] [--every 5]

Starts `python -m supernode` (this checkout's code) on 127.0.0.1 with --no-seed-peer, --no-access-check (no origin
serves the simulated content), a small --task-ttl and /metrics, its --data-dir in a temporary directory. Worker
processes (multiprocessing, so the load does not starve the supernode's loop of this process's CPU) each register two
hosts and heart-beat them; per task a first peer registers (it is made the reader of the origin for the swarm: the
content has a digest and no seed peer is up), opens SyncPieces with the origin's answer and offers every piece with its
digest; a second peer registers, is assigned the pieces from the first, reports them fetched and its stream ends
complete; both report success and leave. Finished tasks are forgotten after --task-ttl. Every --every seconds a row:
seconds, tasks done, the supernode's VmRSS, and the tasks it knows (dandelion_active_tasks on its /metrics); then a
summary. Everything it started is stopped by PID at the end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHONPATH = [str(REPO / "src"), str(REPO / "generated")]
sys.path[:0] = PYTHONPATH

import grpc  # noqa: E402
import uvloop  # noqa: E402
from dandelion.common.v1 import common_pb2  # noqa: E402
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc  # noqa: E402

PIECE = 64 << 10  # the smallest piece a reader of the origin may cut
Request = scheduler_pb2.SyncPiecesRequest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident set size (VmRSS) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def known_tasks(metrics: str) -> int:
    """dandelion_active_tasks on the supernode's /metrics (-1 when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith("dandelion_active_tasks{"):
            return int(float(line.rsplit(" ", 1)[1]))
    return -1


class Stream:
    """One peer's SyncPieces stream: send() messages, read() events (None once it ended)."""

    def __init__(self, stub: scheduler_pb2_grpc.SchedulerServiceAsyncStub, first: Request) -> None:
        self.outgoing: asyncio.Queue[Request | None] = asyncio.Queue()
        self.outgoing.put_nowait(first)
        self.call = stub.SyncPieces(self._requests())
        self.answered = False  # set by its reader once a message came

    async def _requests(self) -> AsyncIterator[Request]:
        while (message := await self.outgoing.get()) is not None:
            yield message

    def send(self, message: Request) -> None:
        self.outgoing.put_nowait(message)

    async def read(self) -> scheduler_pb2.SyncPiecesResponse | None:
        message = await self.call.read()
        if isinstance(message, scheduler_pb2.SyncPiecesResponse):
            return message
        return None  # grpc.aio.EOF

    async def close(self) -> None:
        self.outgoing.put_nowait(None)
        try:
            while await self.read() is not None:
                pass
        except grpc.aio.AioRpcError:
            pass


def fetched(event: scheduler_pb2.SyncPiecesResponse) -> list[scheduler_pb2.PieceResult]:
    """Every piece of an assignments event, reported fetched from its parent."""
    return [
        scheduler_pb2.PieceResult(
            piece_number=a.piece.number, parent_peer_id=a.parent.peer_id, success=True, duration_ms=1
        )
        for a in event.assignments.assignments
    ]


async def offer_all(
    stub: scheduler_pb2_grpc.SchedulerServiceAsyncStub, peer_id: str, pieces: int, salt: bytes = b""
) -> Stream:
    """The peer made to read the origin for the swarm: its stream opened with the origin's answer (pieces of PIECE
    bytes), and once told to read, every piece offered with a digest (of salt and its number). The stream, open."""
    answer = scheduler_pb2.OriginAnswer(content_length=pieces * PIECE, piece_size=PIECE)
    stream = Stream(stub, Request(peer_id=peer_id, window=16, origin=answer))
    while (event := await stream.read()) is not None and event.WhichOneof("event") != "back_to_source":
        pass
    offered = [
        scheduler_pb2.PieceResult(
            piece_number=i, success=True, digest=f"sha256:{hashlib.sha256(salt + b'%d' % i).hexdigest()}"
        )
        for i in range(pieces)
    ]
    stream.send(Request(results=offered))
    return stream


class Peers:
    """A worker's two hosts (the reader's and the fetcher's) and its tasks."""

    def __init__(self, stub: scheduler_pb2_grpc.SchedulerServiceAsyncStub, pieces: int) -> None:
        self.stub = stub
        self.pieces = pieces
        self.hosts: list[str] = []
        self.to_source = 0  # fetchers sent to the origin instead of to the reader (should stay 0)

    async def register_hosts(self, worker: int) -> None:
        for role in range(2):
            info = scheduler_pb2.HostInfo(
                hostname=f"soak{worker}-{role}", ip="127.0.0.1", port=20000 + 2 * worker + role, upload_slots=64
            )
            reply = await self.stub.RegisterHost(scheduler_pb2.RegisterHostRequest(host=info), timeout=30)
            self.hosts.append(reply.host_id)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(2)
            for host_id in self.hosts:
                await self.stub.HeartbeatHost(scheduler_pb2.HeartbeatHostRequest(host_id=host_id), timeout=30)

    async def task(self, n: int) -> None:
        """Content n: the reader offers its pieces, the fetcher fetches them from it, both finish and leave."""
        digest = "sha256:" + hashlib.sha256(b"soak-%d" % n).hexdigest()
        meta = common_pb2.UrlMeta(url=f"http://127.0.0.1:9/soak/{n}", digest=digest)
        length = self.pieces * PIECE
        reader = await self._register(self.hosts[0], meta)
        read = await offer_all(self.stub, reader, self.pieces)
        fetcher = await self._register(self.hosts[1], meta)
        fetch = Stream(self.stub, Request(peer_id=fetcher, window=16))
        while (event := await fetch.read()) is not None:
            kind = event.WhichOneof("event")
            if kind == "assignments":
                fetch.send(Request(results=fetched(event)))
            elif kind == "back_to_source":
                self.to_source += 1
                break
        await fetch.close()
        for peer_id, from_peers, from_origin in ((fetcher, length, 0), (reader, 0, length)):
            result = scheduler_pb2.ReportPeerResultRequest(
                peer_id=peer_id, success=True, bytes_from_peers=from_peers, bytes_from_origin=from_origin, duration_ms=1
            )
            await self.stub.ReportPeerResult(result, timeout=30)
            await self.stub.LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=peer_id), timeout=30)
        await read.close()

    async def _register(self, host_id: str, meta: common_pb2.UrlMeta) -> str:
        request = scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta)
        return str((await self.stub.RegisterTask(request, timeout=30)).peer_id)


async def drive(
    target: str,
    worker: int,
    numbers: range,
    concurrency: int,
    pieces: int,
    done: Synchronized[int],
    failed: Synchronized[int],
) -> None:
    async with grpc.aio.insecure_channel(target) as chan:
        await asyncio.wait_for(chan.channel_ready(), 60)
        peers = Peers(scheduler_pb2_grpc.SchedulerServiceStub(chan), pieces)  # type: ignore[no-untyped-call]
        await peers.register_hosts(worker)
        beating = asyncio.create_task(peers.heartbeat())
        queue = iter(numbers)

        async def one_at_a_time() -> None:
            for n in queue:
                try:
                    await peers.task(n)
                except grpc.aio.AioRpcError as err:
                    with failed.get_lock():
                        failed.value += 1
                        if failed.value <= 3:
                            print(f"worker {worker}: task {n} failed: {err.code().name} {err.details()}", flush=True)
                    continue
                with done.get_lock():
                    done.value += 1

        await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
        beating.cancel()
        for host_id in peers.hosts:
            await peers.stub.LeaveHost(scheduler_pb2.LeaveHostRequest(host_id=host_id), timeout=30)
        if peers.to_source:
            print(f"worker {worker}: {peers.to_source} fetchers sent to the origin", flush=True)


def worker_main(
    target: str,
    worker: int,
    numbers: range,
    concurrency: int,
    pieces: int,
    done: Synchronized[int],
    failed: Synchronized[int],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers by PID
    uvloop.run(drive(target, worker, numbers, concurrency, pieces, done, failed))


def stop_all(children: list[multiprocessing.process.BaseProcess], procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the load processes, then the supernodes, by PID (SIGTERM; SIGKILL after 20 s)."""
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
        child.join(10)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_supernode(work: Path, port: int, *flags: str, log_level: str = "warning") -> subprocess.Popen[bytes]:
    """This checkout's supernode for simulated peers on 127.0.0.1:port (no seed peer, no access check: they
    register content no origin serves), with flags, logging to WORK/supernode-PORT.log (the benches of simulated
    load share it: memory_soak, hot_task_bench, mass_register_bench)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(PYTHONPATH)}
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(work / f"data-{port}"), "--no-seed-peer"]
    args += ["--no-access-check", "--log-level", log_level, *flags]
    log = (work / f"supernode-{port}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "supernode", *args], env=env, stdout=log, stderr=log)


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"supernode exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("supernode did not listen within 60s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to drive through (default 100000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 tasks")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=32, help="tasks in flight per worker (default 32)")
    parser.add_argument("--pieces", type=int, default=4, help="pieces per task (default 4, of 64 KiB)")
    parser.add_argument("--task-ttl", default="5s", help="the supernode's --task-ttl (default 5s)")
    parser.add_argument(
        "--max-tasks", type=int, default=100_000, help="the supernode's --max-tasks (default 100000, its default)"
    )
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples (default 5)")
    args = parser.parse_args()
    tasks = 2000 if args.quick else args.tasks
    work = Path(tempfile.mkdtemp(prefix="memory-soak-"))
    port, metrics = free_port(), f"127.0.0.1:{free_port()}"
    flags = ("--task-ttl", args.task_ttl, "--metrics", metrics, "--max-tasks", str(args.max_tasks))
    proc = start_supernode(work, port, *flags)
    workers: list[multiprocessing.process.BaseProcess] = []
    try:
        wait_ready(port, proc)
        context = multiprocessing.get_context("spawn")
        done, failed = context.Value("q", 0), context.Value("q", 0)
        share = -(-tasks // args.workers)
        for index in range(args.workers):
            numbers = range(index * share, min(tasks, (index + 1) * share))
            target = f"127.0.0.1:{port}"
            workers.append(
                context.Process(
                    target=worker_main, args=(target, index, numbers, args.concurrency, args.pieces, done, failed)
                )
            )
            workers[-1].start()
        print(
            f"supernode pid {proc.pid}: {tasks:,} tasks, {args.workers} workers x {args.concurrency} in flight, "
            f"{args.pieces} pieces each, --task-ttl {args.task_ttl} --max-tasks {args.max_tasks}",
            flush=True,
        )
        print(f"{'s':>6} {'tasks done':>11} {'RSS MB':>8} {'tasks known':>12}", flush=True)
        began = time.monotonic()
        rows: list[tuple[float, int, float, int]] = []

        def sample() -> None:
            rows.append((time.monotonic() - began, done.value, rss_mib(proc.pid), known_tasks(metrics)))
            print(f"{rows[-1][0]:6.0f} {rows[-1][1]:11,} {rows[-1][2]:8.1f} {rows[-1][3]:12,}", flush=True)

        sample()
        while any(w.is_alive() for w in workers):
            time.sleep(args.every)
            if proc.poll() is not None:
                raise SystemExit(f"supernode exited with {proc.returncode} (log: {work / f'supernode-{port}.log'})")
            sample()
        elapsed = time.monotonic() - began
        drained = time.monotonic() + 60
        while rows[-1][3] != 0 and time.monotonic() < drained:  # finished tasks forgotten after --task-ttl
            time.sleep(args.every)
            sample()
        peak = max(r[2] for r in rows)
        print(
            f"summary: {done.value:,} tasks in {elapsed:.0f}s = {done.value / elapsed:,.0f} tasks/s; supernode RSS "
            f"peak {peak:.1f} MB, at the start {rows[0][2]:.1f} MB, final {rows[-1][2]:.1f} MB; tasks known at the "
            f"end {rows[-1][3]:,}; {failed.value:,} tasks failed",
            flush=True,
        )
    finally:
        stop_all(workers, [proc])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
