"""One hot task at fleet scale (prints figures, not a test): N simulated hosts, every one a peer of the same task,
over real gRPC against real supernode processes; piece reports per second, and whether any host was dropped while
it was alive. With --supernodes 3 and --tasks T the same load is spread over a cluster of supernodes by rendezvous
hashing on the task id, for reports per second with three supernodes against one.

Usage: python bench/hot_task_bench.py [--hosts 10000] [--tasks 1] [--supernodes 1] [--pieces 32] [--window 8]
                                      [--workers 2] [--hosts-per-channel 100] [--piece-ms MS] [--quick]

Starts `python -m supernode` (this checkout's code, --no-seed-peer, --no-access-check: no origin serves the
simulated content, the default 5 s heartbeat interval) on 127.0.0.1, as many as --supernodes. The simulated hosts
live in worker processes of their own (multiprocessing), so the load does not share the supernodes' event loops.
Each host does what a dfdaemon does: RegisterHost with every supernode, RegisterTask at its task's owner
(dfcommon.ring), a SyncPieces stream there that reports every assigned piece fetched, and a heartbeat to each supernode
from its registration on, every interval that supernode handed this host last (it grows with the hosts the supernode
holds, and is longer where the host has no peer): on its open stream where it has one, HeartbeatHost otherwise; a stream
lost before the supernode's first message is opened again. A heartbeat counts as failed where a dfdaemon would mark the
supernode down: a call that failed, or timed out (10 s) unless the supernode is behind (peer.scheduler_client.is_behind:
the host's connection, with a dfdaemon's keepalive, is up and the supernode answered the host within 10 heartbeat
intervals; counted as kept), a heartbeat on a stream with neither its answer nor any other message on that stream within
10 s and not behind (answered later, with other messages in time: counted late; the supernode is behind, not gone). A
heartbeat call refused with another status (CANCELLED when the supernode's queue of calls not yet taken up is full) is
counted apart: a dfdaemon logs it and keeps the supernode. A reader process registers one more host that offers every
piece of every task with its digest, as the peer reading the origin for the swarm does, and keeps its streams open.

Reports: by default a host reports the pieces of each assignments message fetched at once, in one message: each
message carries several results, and so does each answer. With --piece-ms MS each assigned piece arrives MS after it
was assigned, and the results go as a dfdaemon's do (peer.download.report_batch: a lone result at once, else at most
one message per 20 ms or when 8 wait): a fleet whose pieces take MS each to arrive, with about as many messages as
results.

Phases: all hosts register (their heartbeats start); then every stream opens (50 per 10 ms per worker) and the clock
runs until every peer holds every piece (each report is one piece a peer fetched); then 3 heartbeat intervals more,
after which every supernode must still list every host. Printed: registration rate, reports/s, the supernodes' CPU
seconds and RSS, peers sent to the origin, hosts dropped (NOT_FOUND seen by a host, hosts missing from ListHosts).
Everything started is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field, fields
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import uvloop
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from memory_soak import (
    Request,
    Stream,
    fetched,
    free_port,
    offer_all,
    rss_mib,
    start_supernode,
    stop_all,
    wait_ready,
)

from dfcommon import ring
from dfcommon.channels import channel
from dfcommon.identity import task_id
from peer.download import link
from peer.download.link import LOST_AT_START, START_RETRIES
from peer.download.report_batch import ReportBatch
from peer.piece.model import PieceOutcome
from peer.scheduler_client import CALL_TIMEOUT, FAILOVER_CODES, LINK_KEEPALIVE_MS, is_behind

if TYPE_CHECKING:
    from dandelion.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub as Stub
CONCURRENCY = 64  # unary calls in flight per worker
DEFAULT_INTERVAL_S = 5.0  # a heartbeat interval until a supernode hands one out (a dfdaemon's too)
OPEN_BATCH = int(os.environ.get("HOT_TASK_OPEN_BATCH", "50"))  # streams a worker opens per 10 ms


@dataclass(frozen=True)
class Load:
    """What every process of the run knows."""

    targets: tuple[str, ...]
    tasks: int
    pieces: int
    window: int
    hosts_per_channel: int
    piece_ms: int = 0  # each assigned piece arrives this long after it was assigned (0: reported at once)

    def meta(self, task: int) -> common_pb2.UrlMeta:
        digest = "sha256:" + hashlib.sha256(b"hot-%d" % task).hexdigest()
        return common_pb2.UrlMeta(url=f"http://127.0.0.1:9/v2/hot/blobs/{digest}", digest=digest)

    def owner(self, task: int) -> int:
        """Index in targets of the supernode that owns the task (rendezvous hashing, as every dfdaemon computes)."""
        meta = self.meta(task)
        chosen = ring.owner(task_id(meta.url, meta.digest), self.targets)
        assert chosen is not None
        return self.targets.index(chosen)


@dataclass(frozen=True)
class Counters:
    """Shared between the processes."""

    registered: Synchronized[int]
    complete: Synchronized[int]
    # of them, streams whose OK end grpc.aio reported as INTERNAL "Internal error from Core": the host had reported
    # every piece (the supernode then ends the stream) and was writing when it ended (grpc/grpc#36066)
    complete_hidden: Synchronized[int]
    reports: Synchronized[int]
    messages: Synchronized[int]  # messages the supernodes sent on the hosts' streams
    result_messages: Synchronized[int]  # messages of results the hosts sent
    dropped: Synchronized[int]
    to_source: Synchronized[int]
    failed: Synchronized[int]  # streams that ended with another error
    beats_failed: Synchronized[int]  # heartbeats that failed otherwise (timed out): a dfdaemon marks it down
    beats_failed_registering: Synchronized[int]  # of those, sent while the hosts were still registering
    beats: Synchronized[int]  # heartbeats answered in time
    beats_late: Synchronized[int]  # on a stream, answered late while the stream carried other messages in time
    beats_behind: Synchronized[int]  # timed out at a supernode behind (peer.scheduler_client.is_behind): kept
    beats_refused: Synchronized[int]  # ended with another status (not FAILOVER_CODES): a dfdaemon keeps the supernode
    restarts: Synchronized[int]  # streams lost at their start and opened again
    worst_lag_ms: Synchronized[int]  # the longest a load process's event loop was late (it is then saturated)

    def add(self, name: str, n: int = 1) -> None:
        counter: Synchronized[int] = getattr(self, name)
        with counter.get_lock():
            counter.value += n

    def most(self, name: str, n: int) -> None:
        counter: Synchronized[int] = getattr(self, name)
        with counter.get_lock():
            counter.value = max(counter.value, n)


async def watch_lag(counters: Counters) -> None:
    """How late this process's event loop wakes from a 100 ms sleep: the load generator's own saturation, which
    delays its hosts' heartbeats and reports as it would never delay a real dfdaemon's."""
    while True:
        began = time.monotonic()
        await asyncio.sleep(0.1)
        counters.most("worst_lag_ms", int((time.monotonic() - began - 0.1) * 1000))


@dataclass(frozen=True)
class Events:
    """The run's phases, set by the reader (offered) and the parent (go, stop)."""

    offered: Event
    go: Event
    stop: Event


@dataclass
class SimHost:
    """One simulated host: its id at each supernode, its peer, and where its stream is open."""

    index: int
    task: int
    owner: int
    host_ids: list[str] = field(default_factory=list)
    peer_id: str = ""
    # Per supernode, as a dfdaemon's link to each: when it beats next, and the interval that supernode handed it
    # last (a supernode where the host has no peer hands it a longer one: supernode.hosts.IDLE_FACTOR).
    next_beats: list[float] = field(default_factory=list)
    intervals: list[float] = field(default_factory=list)
    heard: float = 0.0  # when a supernode last answered this host (a call, or a message on its stream)
    stream: Stream | None = None  # its SyncPieces stream, while open
    reported: int = 0  # pieces reported fetched on its stream
    # Each heartbeat sent on the stream and not answered yet: when it went out, when the stream's next message came
    # (0: none yet), and when the supernode had last answered the host then. A dfdaemon marks the supernode down
    # only when neither the answer nor another message came within CALL_TIMEOUT and the supernode is not behind.
    beats_sent: deque[list[float]] = field(default_factory=deque)
    batch: ReportBatch = field(default_factory=ReportBatch)  # with Load.piece_ms: results arrived, not yet sent
    flush_at: asyncio.TimerHandle | None = None  # when they go


class Fleet:
    """A worker's simulated hosts over a few channels per supernode."""

    def __init__(self, load: Load, hosts: range, counters: Counters) -> None:
        self.load = load
        self.counters = counters
        channels = max(1, -(-len(hosts) // load.hosts_per_channel))
        # Each channel its own TCP connection (no subchannel sharing) with the keepalive of a dfdaemon's link to a
        # supernode, as each dfdaemon has its own.
        self.channels = [
            [channel(target, own_connection=True, keepalive_ms=LINK_KEEPALIVE_MS) for _ in range(channels)]
            for target in load.targets
        ]
        self.hosts = [SimHost(i, i % load.tasks, load.owner(i % load.tasks)) for i in hosts]
        self.sem = asyncio.Semaphore(CONCURRENCY)
        self.stream_beats = False  # the supernodes take heartbeats on streams (RegisterHostResponse)
        self.errors = 0  # the first few are printed
        self.registering = True  # until every host of the run registered (then the streams open)

    def channel(self, supernode: int, host: SimHost) -> grpc.aio.Channel:
        chans = self.channels[supernode]
        return chans[host.index % len(chans)]

    def stub(self, supernode: int, host: SimHost) -> Stub:
        stub: Stub = scheduler_pb2_grpc.SchedulerServiceStub(self.channel(supernode, host))  # type: ignore[assignment]
        return stub

    async def register(self, host: SimHost) -> None:
        async with self.sem:
            for supernode in range(len(self.load.targets)):
                info = scheduler_pb2.HostInfo(
                    hostname=f"sim-{host.index}",
                    ip=f"127.{1 + host.index // 62500}.{host.index // 250 % 250}.{host.index % 250 + 1}",
                    port=40000 + host.index % 20000,
                    upload_slots=8,
                )
                reply = await self.stub(supernode, host).RegisterHost(
                    scheduler_pb2.RegisterHostRequest(host=info), timeout=60
                )
                host.host_ids.append(reply.host_id)
                host.intervals.append(reply.heartbeat_interval_ms / 1000 or DEFAULT_INTERVAL_S)
                self.stream_beats = reply.stream_heartbeats
            request = scheduler_pb2.RegisterTaskRequest(
                host_id=host.host_ids[host.owner], url_meta=self.load.meta(host.task)
            )
            host.peer_id = (await self.stub(host.owner, host).RegisterTask(request, timeout=60)).peer_id
        host.heard = time.monotonic()
        host.next_beats = [host.heard + interval for interval in host.intervals]
        self.counters.add("registered")

    async def heartbeat_forever(self) -> None:
        """Each host as a dfdaemon's SupernodeLink does: to each supernode every interval that supernode handed it,
        from its registration on."""
        running: set[asyncio.Task[None]] = set()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for host in self.hosts:
                beats = host.next_beats
                for supernode, host_id in enumerate(host.host_ids if beats else ()):
                    if not host_id or beats[supernode] > now:
                        continue
                    beats[supernode] = now + host.intervals[supernode]
                    task = asyncio.create_task(self._beat(supernode, host))
                    running.add(task)
                    task.add_done_callback(running.discard)

    async def _beat(self, supernode: int, host: SimHost) -> None:
        stream = host.stream
        if supernode == host.owner and self.stream_beats and stream is not None and stream.answered:
            host.beats_sent.append([time.monotonic(), 0.0, host.heard])  # on the open stream, as SupernodeLink does
            stream.send(Request(heartbeat=True))
            return
        # Not behind the worker's semaphore: each host beats on its own, whatever the other hosts' calls.
        registering = self.registering
        try:
            request = scheduler_pb2.HeartbeatHostRequest(host_id=host.host_ids[supernode])
            reply = await self.stub(supernode, host).HeartbeatHost(request, timeout=CALL_TIMEOUT)
            host.heard = time.monotonic()
            self.counters.add("beats")
            # it grows with the hosts, and is longer where this host has no peer
            host.intervals[supernode] = reply.heartbeat_interval_ms / 1000 or host.intervals[supernode]
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                self.counters.add("dropped")
                host.host_ids[supernode] = ""  # counted once; a real dfdaemon registers again
            elif err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and self.behind(supernode, host, host.heard):
                self.counters.add("beats_behind")  # a dfdaemon keeps the supernode (SupernodeLink.behind)
            elif err.code() not in FAILOVER_CODES:  # refused (CANCELLED: its queue of calls is full): a dfdaemon
                self.counters.add("beats_refused")  # logs it and keeps the supernode (SupernodeLink.call)
            else:
                self.counters.add("beats_failed")
                if registering:
                    self.counters.add("beats_failed_registering")

    def behind(self, supernode: int, host: SimHost, heard: float, at: float | None = None) -> bool:
        """As SupernodeLink.behind, for a call that timed out at `at` (now when None): the host's connection is up
        and the supernode had answered it (last at `heard`) lately."""
        state = self.channel(supernode, host).get_state(try_to_connect=False)
        at = time.monotonic() if at is None else at
        return is_behind(state is grpc.ChannelConnectivity.READY, heard, at, host.intervals[supernode])

    async def sync(self, host: SimHost) -> None:
        """The host's stream: report every assigned piece fetched, until the supernode ends it (complete). A stream
        lost before the supernode's first message is opened again, as peer.download.link.SwarmLink does."""
        for attempt in range(START_RETRIES + 1):
            stream = Stream(self.stub(host.owner, host), Request(peer_id=host.peer_id, window=self.load.window))
            host.stream = stream
            try:
                await self._follow(host, stream)
                return
            except grpc.aio.AioRpcError as err:
                if err.code() in LOST_AT_START and not stream.answered and attempt < START_RETRIES:
                    self.counters.add("restarts")
                    self.errors += 1
                    if self.errors <= 3:
                        print(f"host {host.index}: stream lost at its start: {err.code().name} {err.details()}")
                    await asyncio.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
                    continue
                if err.code() == grpc.StatusCode.INTERNAL and host.reported >= self.load.pieces:
                    self.counters.add("complete")
                    self.counters.add("complete_hidden")
                    return
                kind = "dropped" if err.code() == grpc.StatusCode.NOT_FOUND else "failed"
                self.counters.add(kind)
                self.errors += 1
                if self.errors <= 3:
                    print(f"host {host.index}: stream {kind}: {err.code().name} {err.details()}", flush=True)
                return
            finally:
                host.stream = None
                host.beats_sent.clear()
                await stream.close()

    async def _follow(self, host: SimHost, stream: Stream) -> None:
        while (event := await stream.read()) is not None:
            stream.answered = True
            self.counters.add("messages")
            now = host.heard = time.monotonic()
            for beat in host.beats_sent:
                beat[1] = beat[1] or now
            if event.heartbeat_interval_ms:  # a heartbeat's answer (alone, or on another message)
                host.intervals[host.owner] = event.heartbeat_interval_ms / 1000
                sent, heard, before = host.beats_sent.popleft() if host.beats_sent else (now, now, now)
                if now - sent <= CALL_TIMEOUT:
                    self.counters.add("beats")
                elif heard - sent <= CALL_TIMEOUT:  # late: as SupernodeLink, the stream carried other messages
                    self.counters.add("beats_late")
                else:  # nothing on the stream in time: late only at a supernode behind (SupernodeLink.behind)
                    kept = self.behind(host.owner, host, before, sent + CALL_TIMEOUT)
                    self.counters.add("beats_behind" if kept else "beats_failed")
            kind = event.WhichOneof("event")
            if kind is None:
                continue
            if kind == "assignments" and self.load.piece_ms:
                loop = asyncio.get_running_loop()
                for result in fetched(event):
                    loop.call_later(self.load.piece_ms / 1000, self._fetched, host, stream, result)
            elif kind == "assignments":
                self._send(host, stream, fetched(event))
            elif kind == "back_to_source":
                self.counters.add("to_source")
                return
        self.counters.add("complete")

    def _fetched(self, host: SimHost, stream: Stream, result: scheduler_pb2.PieceResult) -> None:
        """A piece arrived (Load.piece_ms): its result goes as a dfdaemon's would."""
        if host.stream is not stream:
            return
        now = asyncio.get_running_loop().time()
        outcome = PieceOutcome(result.piece_number, result.parent_peer_id, True, duration_ms=self.load.piece_ms)
        if host.batch.add(outcome, now):
            self._flush(host, stream)
        elif host.flush_at is None:
            due = max(0.0, host.batch.due_in(now))
            host.flush_at = asyncio.get_running_loop().call_later(due, self._flush, host, stream)

    def _flush(self, host: SimHost, stream: Stream) -> None:
        if host.flush_at is not None:
            host.flush_at.cancel()
            host.flush_at = None
        outcomes = host.batch.take(asyncio.get_running_loop().time())
        if outcomes and host.stream is stream:
            self._send(host, stream, [link.piece_result(o) for o in outcomes])

    def _send(self, host: SimHost, stream: Stream, results: list[scheduler_pb2.PieceResult]) -> None:
        stream.send(Request(results=results))
        host.reported += len(results)
        self.counters.add("reports", len(results))
        self.counters.add("result_messages")


async def run_worker(load: Load, hosts: range, counters: Counters, events: Events) -> None:
    await asyncio.to_thread(events.offered.wait)  # the reader's peer first: it is the one made to read the origin
    fleet = Fleet(load, hosts, counters)
    lag = asyncio.create_task(watch_lag(counters))
    beating = asyncio.create_task(fleet.heartbeat_forever())  # each host from its registration on, as a dfdaemon
    await asyncio.gather(*(fleet.register(h) for h in fleet.hosts))
    await asyncio.to_thread(events.go.wait)
    fleet.registering = False
    syncing = []
    for n, host in enumerate(fleet.hosts):  # opened in batches, as a fleet's downloads start within moments
        syncing.append(asyncio.create_task(fleet.sync(host)))
        if n % OPEN_BATCH == OPEN_BATCH - 1:
            await asyncio.sleep(0.01)
    await asyncio.gather(*syncing)
    await asyncio.to_thread(events.stop.wait)
    beating.cancel()
    lag.cancel()


async def run_reader(load: Load, counters: Counters, events: Events) -> None:
    """One host that offers every piece of every task (as the peer reading the origin for the swarm) and keeps its
    streams open, heart-beating every supernode."""
    fleet = Fleet(load, range(0), counters)
    reader = SimHost(-1, 0, 0)
    streams: list[Stream] = []
    for supernode in range(len(load.targets)):
        info = scheduler_pb2.HostInfo(hostname="reader", ip="127.0.0.2", port=39999, upload_slots=64)
        reply = await fleet.stub(supernode, reader).RegisterHost(scheduler_pb2.RegisterHostRequest(host=info))
        reader.host_ids.append(reply.host_id)
        reader.intervals.append(reply.heartbeat_interval_ms / 1000 or DEFAULT_INTERVAL_S)
    reader.next_beats = [time.monotonic() + interval for interval in reader.intervals]
    for task in range(load.tasks):
        owner = load.owner(task)
        request = scheduler_pb2.RegisterTaskRequest(host_id=reader.host_ids[owner], url_meta=load.meta(task))
        peer_id = (await fleet.stub(owner, reader).RegisterTask(request)).peer_id
        streams.append(await offer_all(fleet.stub(owner, reader), peer_id, load.pieces, b"%d-" % task))
    events.offered.set()
    fleet.hosts = [reader]  # heart-beating every supernode, as any host
    beating = asyncio.create_task(fleet.heartbeat_forever())
    await asyncio.to_thread(events.stop.wait)
    beating.cancel()
    for stream in streams:
        await stream.close()


def process_main(kind: str, load: Load, hosts: range, counters: Counters, events: Events) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its children by PID
    if kind == "reader":
        uvloop.run(run_reader(load, counters, events))
    else:
        uvloop.run(run_worker(load, hosts, counters, events))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listed_hosts(target: str) -> int:
    """Hosts the supernode lists (ListHosts, every page)."""
    count, token = 0, ""
    with grpc.insecure_channel(target) as chan:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)  # type: ignore[no-untyped-call]
        while True:
            reply = stub.ListHosts(scheduler_pb2.ListHostsRequest(page_size=1000, page_token=token), timeout=60)
            count += len(reply.hosts)
            if not (token := reply.next_page_token):
                return count


def start_supernode_for(work: Path, port: int, hosts: int) -> subprocess.Popen[bytes]:
    limit = str(max(hosts + 10, 10_000))
    level = os.environ.get("HOT_TASK_LOG_LEVEL", "warning")  # info: a line per stream
    return start_supernode(work, port, "--max-hosts", limit, "--max-peers-per-task", limit, log_level=level)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000, help="simulated hosts (default 10000)")
    parser.add_argument("--tasks", type=int, default=1, help="tasks the hosts are spread over (default 1: hot)")
    parser.add_argument("--supernodes", type=int, default=1, help="supernode processes (default 1)")
    parser.add_argument("--pieces", type=int, default=32, help="pieces per task (default 32)")
    parser.add_argument("--window", type=int, default=8, help="each peer's window of unreported pieces (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--hosts-per-channel", type=int, default=100, help="hosts sharing one TCP connection")
    parser.add_argument("--piece-ms", type=int, default=0, help="each piece arrives this long after it was assigned")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 hosts, 8 pieces")
    parser.add_argument("--keep-logs", action="store_true", help="keep the supernodes' logs (their path is printed)")
    args = parser.parse_args()
    hosts, pieces = (500, 8) if args.quick else (args.hosts, args.pieces)
    work = Path(tempfile.mkdtemp(prefix="hot-task-"))
    ports = [free_port() for _ in range(args.supernodes)]
    procs = [start_supernode_for(work, port, hosts) for port in ports]
    children: list[multiprocessing.process.BaseProcess] = []
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(port, proc)
        targets = tuple(f"127.0.0.1:{p}" for p in ports)
        load = Load(targets, args.tasks, pieces, args.window, args.hosts_per_channel, args.piece_ms)
        ctx = multiprocessing.get_context("spawn")
        counters = Counters(*(ctx.Value("q", 0) for _ in range(len(fields(Counters)))))
        events = Events(ctx.Event(), ctx.Event(), ctx.Event())
        children.append(ctx.Process(target=process_main, args=("reader", load, range(0), counters, events)))
        share = -(-hosts // args.workers)
        for w in range(args.workers):
            part = range(w * share, min(hosts, (w + 1) * share))
            children.append(ctx.Process(target=process_main, args=("worker", load, part, counters, events)))
        timing = f", pieces arrive {args.piece_ms} ms after assigned" if args.piece_ms else ""
        print(
            f"{hosts:,} hosts on {args.tasks} task(s) of {pieces} pieces, {args.supernodes} supernode(s), "
            f"{args.workers} worker processes, window {args.window}, {args.hosts_per_channel} hosts per connection"
            f"{timing}",
            flush=True,
        )
        began = time.monotonic()
        for child in children:
            child.start()
        while counters.registered.value < hosts:
            time.sleep(0.5)
            if not all(c.is_alive() for c in children):
                raise SystemExit("a load process exited early")
        registration = time.monotonic() - began
        cpu_before = [cpu_seconds(p.pid) for p in procs]
        load_before = sum(cpu_seconds(c.pid or 0) for c in children)
        rate = (args.supernodes + 1) * hosts / registration
        print(f"registered in {registration:.1f} s ({rate:,.0f} calls/s); syncing", flush=True)
        began = time.monotonic()
        events.go.set()
        last, last_at = -1, began
        while counters.complete.value + counters.to_source.value + counters.failed.value < hosts:
            time.sleep(0.2)
            if counters.reports.value != last:
                last, last_at = counters.reports.value, time.monotonic()
            elif time.monotonic() - last_at > 60:
                print("no report for 60 s: giving up", flush=True)
                break
            if not all(p.poll() is None for p in procs):
                raise SystemExit("a supernode exited")
        elapsed = time.monotonic() - began
        cpu = [cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before, strict=True)]
        load_cpu = sum(cpu_seconds(c.pid or 0) for c in children) - load_before
        reports = counters.reports.value
        print(f"synced in {elapsed:.1f} s; 3 heartbeat intervals more before counting hosts", flush=True)
        time.sleep(15.5)
        listed = [listed_hosts(t) for t in load.targets]
        rss = [rss_mib(p.pid) for p in procs]
        events.stop.set()
        for child in children:
            child.join(10)
        print()
        print("| measure | value |")
        print("|---|---|")
        print(f"| piece reports/s ({reports:,} reports in {elapsed:.1f} s) | {reports / elapsed:,.0f}/s |")
        print(
            f"| peers complete (of them, their stream's OK end reported as INTERNAL by grpc.aio) / sent to the "
            f"origin / failed | {counters.complete.value:,} ({counters.complete_hidden.value:,}) / "
            f"{counters.to_source.value:,} / {counters.failed.value:,} |"
        )
        print(
            f"| stream messages from the supernodes, per report | {counters.messages.value:,} "
            f"({counters.messages.value / max(1, reports):.2f}) |"
        )
        print(
            f"| messages of results from the hosts, per report | "
            f"{counters.result_messages.value:,} ({counters.result_messages.value / max(1, reports):.2f}) |"
        )
        print(f"| hosts dropped while alive (NOT_FOUND seen) | {counters.dropped.value:,} |")
        print(f"| streams lost at their start and opened again | {counters.restarts.value:,} |")
        print(
            f"| heartbeats answered / late on a stream still sending / timed out at a supernode behind (kept) / "
            f"refused, as CANCELLED (kept) / failed: the supernode marked down (of them while the hosts registered) | "
            f"{counters.beats.value:,} / {counters.beats_late.value:,} / {counters.beats_behind.value:,} / "
            f"{counters.beats_refused.value:,} / {counters.beats_failed.value:,} "
            f"({counters.beats_failed_registering.value:,}) |"
        )
        print(
            f"| load processes: CPU while syncing / worst event-loop lag | {load_cpu:.1f} s / "
            f"{counters.worst_lag_ms.value / 1000:.1f} s |"
        )
        counts = ", ".join(f"{n:,}" for n in listed)
        print(f"| hosts listed by each supernode at the end (of {hosts + 1:,}) | {counts} |")
        print(
            f"| supernode CPU while syncing | {', '.join(f'{c:.1f} s' for c in cpu)} "
            f"({sum(cpu) / max(1, reports) * 1e6:,.0f} µs per report) |"
        )
        print(f"| supernode RSS at the end | {', '.join(f'{r:.0f} MiB' for r in rss)} |")
        print(f"| registration (RegisterHost x {args.supernodes} + RegisterTask per host) | {registration:.1f} s |")
    finally:
        stop_all(children, procs)
        if args.keep_logs:
            print(f"logs: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
