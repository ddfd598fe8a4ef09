"""A fluid simulation of one swarm on uplink-limited hosts, driven by the supernode's real Scheduler.

It answers "which scheduling policy gets close to the Kumar-Ross bound on slow links?" in a second instead of a
minute of network namespaces, so policy changes can be explored here and then confirmed with scale_bench.py.

Model (what the real peers do, simplified where it does not change who sends what):
- the seed peer reads the origin at --origin-mbit and offers each piece when it is whole (Scheduler.piece_authored);
- each host's uplink (--host-mbit; the seed's --seed-mbit) is shared equally by the DownloadPieces streams it
  serves at that moment (TCP flows through one tbf queue); downlinks are not limited;
- a child works as peer.conductor does: a window of assigned pieces, a FetchQueue of at most --streams streams
  of at most --group pieces each, pieces of one stream sent one after another; a parent already serving
  --upload-slots streams refuses the call (PARENT_BUSY), as PeerService's slot counter does;
- every piece result is reported at once (the real peer does so for a result that arrives alone, and sends
  results that arrive faster at most one message per 20 ms);
- with --zones Z the hosts are spread over Z zones of one region (HostInfo.location "r1|zK", the seed in z1) and
  the bytes sent between zones are counted; --parent-policy picks how the scheduler ranks parents (default,
  nearest). Links between zones are not slower here: the figure is the traffic between zones each policy causes.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import supernode.resource.host as host_module
import supernode.scheduling.scheduler as scheduler_module
from dfcommon.pieces import MIB, piece_count, piece_size_for, piece_span
from peer.piece.model import Parent, PieceSpec
from peer.piece.queue import FetchQueue
from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import Failure, PieceMeta, PieceReport
from supernode.resource.task import Task, TaskState
from supernode.scheduling.evaluator import POLICIES
from supernode.scheduling.scheduler import Assignment, Scheduler

EPS = 1e-9
RPC_S = 0.002  # a refused DownloadPieces call costs a round trip before the child reports it


@dataclass
class Stream:
    """One DownloadPieces call: pieces sent in order from parent to child."""

    child: Child
    parent_id: str
    pieces: list[PieceSpec]
    left: float  # bytes of the current piece still to send
    started: float  # when the current piece began to be sent (the child's request of it: PieceResult.duration_ms)


@dataclass
class SimHost:
    """A host's uplink and the streams it serves."""

    name: str
    uplink: float  # bytes/s
    slots: int
    location: str = ""
    streams: list[Stream] = field(default_factory=list)
    sent: float = 0.0


@dataclass
class Child:
    """A downloading peer."""

    peer: Peer
    host: SimHost
    queue: FetchQueue
    held: set[int] = field(default_factory=set)
    done_at: float = -1.0


class Sim:
    """The swarm: scheduler, hosts, streams, time."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.now = 0.0
        self.size = int(args.mib * MIB)
        self.piece_size = int(args.piece_mib * MIB) or piece_size_for(self.size)
        self.count = piece_count(self.size, self.piece_size)
        self.scheduler = Scheduler(args.assignment_timeout, lambda: self.now, POLICIES[args.parent_policy])
        self.hosts: dict[str, SimHost] = {}
        self.peer_host: dict[str, SimHost] = {}
        self.children: dict[str, Child] = {}
        self.cross_zone = 0.0  # bytes sent to a child in another zone
        seed_host = self._host("seed", args.seed_mbit, args.seed_slots, seed_peer=True, location=self._zone(0))
        self.task = Task("t" * 64, "http://origin/f", "", state=TaskState.RUNNING)
        self.task.content_length, self.task.piece_size, self.task.piece_count = self.size, self.piece_size, self.count
        self.seed = Peer("seed-peer", self.task.task_id, self.scheduler.hosts["seed"], state=PeerState.BACK_TO_SOURCE)
        self.task.source_peer_id = self.seed.peer_id  # it reads all of the origin for the swarm
        self.scheduler.add_task(self.task)
        self.scheduler.add_peer(self.task, self.seed)
        self.peer_host["seed-peer"] = seed_host
        self.origin_rate = args.origin_mbit * 1e6 / 8
        self.written = 0
        self.pending: list[Assignment] = []
        self.later: list[tuple[float, int, Child, list[PieceReport]]] = []
        self.seq = itertools.count()
        self.refusals = 0
        for n in range(args.hosts):
            host = self._host(f"h{n + 1}", args.host_mbit, args.upload_slots, location=self._zone(n))
            peer = Peer(f"p{n + 1}", self.task.task_id, self.scheduler.hosts[host.name])
            self.scheduler.add_peer(self.task, peer)
            self.peer_host[peer.peer_id] = host
            self.children[peer.peer_id] = Child(peer, host, FetchQueue(args.streams, args.group))
        for child in self.children.values():
            self.pending.extend(self.scheduler.connect(child.peer, args.window))

    def _zone(self, n: int) -> str:
        return f"r1|z{n % self.args.zones + 1}" if self.args.zones else ""

    def _host(self, name: str, mbit: float, slots: int, seed_peer: bool = False, location: str = "") -> SimHost:
        self.scheduler.add_host(Host(name, name, name, 1, slots, location, 0.0, seed_peer=seed_peer))
        host = SimHost(name, mbit * 1e6 / 8, slots, location)
        self.hosts[name] = host
        return host

    # ----- events
    def deliver(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            for a in batch:
                child = self.children[a.child_id]
                offset, size = piece_span(a.piece.number, self.size, self.piece_size)
                child.queue.add(Parent(a.parent.peer_id, "", 0), PieceSpec(a.piece.number, offset, size, ""))
            for child in {self.children[a.child_id].peer.peer_id: self.children[a.child_id] for a in batch}.values():
                self.dispatch(child)

    def dispatch(self, child: Child) -> None:
        while (group := child.queue.next_group()) is not None:
            parent, pieces = group
            host = self.peer_host[parent.peer_id]
            if len(host.streams) >= host.slots:
                child.queue.release()
                self.refusals += 1
                busy = [PieceReport(p.number, parent.peer_id, False, Failure.PARENT_BUSY) for p in pieces]
                heapq.heappush(self.later, (self.now + RPC_S, next(self.seq), child, busy))
                continue
            host.streams.append(Stream(child, parent.peer_id, list(pieces), pieces[0].size, self.now))

    def report(self, child: Child, reports: list[PieceReport]) -> None:
        self.pending.extend(self.scheduler.report(child.peer, reports))

    def step(self) -> bool:
        """Advance to the next event; False when every child is done."""
        if all(c.done_at >= 0 for c in self.children.values()):
            return False
        rates: dict[int, float] = {}
        horizon = math.inf
        for host in self.hosts.values():
            if host.streams:
                rate = host.uplink / len(host.streams)
                for s in host.streams:
                    rates[id(s)] = rate
                    horizon = min(horizon, s.left / rate)
        if self.written < self.count:
            next_piece_at = piece_span(self.written, self.size, self.piece_size)
            due = (next_piece_at[0] + next_piece_at[1]) / self.origin_rate
            horizon = min(horizon, max(0.0, due - self.now))
        if self.later:
            horizon = min(horizon, max(0.0, self.later[0][0] - self.now))
        horizon = min(horizon, 0.25)  # let timeouts fire
        self.now += horizon
        finished: list[tuple[SimHost, Stream]] = []
        for host in self.hosts.values():
            for s in host.streams:
                sent = rates[id(s)] * horizon
                s.left -= sent
                host.sent += sent
                if host.location != s.child.host.location:
                    self.cross_zone += sent
                if s.left <= EPS * host.uplink:
                    finished.append((host, s))
        for host, s in finished:
            piece = s.pieces.pop(0)
            s.child.held.add(piece.number)
            self.report(s.child, [PieceReport(piece.number, s.parent_id, True, sending_s=self.now - s.started)])
            if len(s.child.held) == self.count and s.child.done_at < 0:
                s.child.done_at = self.now
            if s.pieces:
                s.left = s.pieces[0].size
                s.started = self.now
            else:
                host.streams.remove(s)
                s.child.queue.release()
                self.dispatch(s.child)
        while self.written < self.count:
            offset, size = piece_span(self.written, self.size, self.piece_size)
            if (offset + size) / self.origin_rate > self.now + EPS:
                break
            digest = f"blake3:{self.written:064x}"
            piece = PieceMeta(self.written, offset, size, digest)
            self.pending.extend(self.scheduler.piece_authored(self.task, self.seed, piece))
            self.seed.count_read(1, self.piece_size, self.now)  # as Readers.take_authored does
            self.written += 1
            if self.written == self.count:  # its read is done, as its SyncPieces stream says
                self.pending.extend(self.scheduler.set_state(self.seed, PeerState.SUCCEEDED))
        while self.later and self.later[0][0] <= self.now + EPS:
            _, _, child, reports = heapq.heappop(self.later)
            self.report(child, reports)
        self.pending.extend(self.scheduler.expire(self.now))
        self.deliver()
        return self.now <= self.args.give_up


def bound(args: argparse.Namespace) -> float:
    """Kumar-Ross: max(F/u_s, F/d_min, N*F/(u_s + sum u_i)); downlinks unlimited, the seed counted as an uploader.
    u_s here is what reaches the swarm from the origin: the seed's read, at most the origin's uplink."""
    size = args.mib * MIB
    u_s = args.origin_mbit * 1e6 / 8
    uploaders = args.seed_mbit * 1e6 / 8 + args.hosts * args.host_mbit * 1e6 / 8
    return max(size / u_s, args.hosts * size / (u_s + uploaders))


def main(argv: list[str] | None = None) -> None:
    """Run the simulation and print makespan, percentiles and bytes each host sent."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=8)
    p.add_argument("--mib", type=float, default=32)
    p.add_argument("--piece-mib", type=float, default=0, help="default: what dfcommon.pieces.piece_size_for gives")
    p.add_argument("--host-mbit", type=float, default=50)
    p.add_argument("--seed-mbit", type=float, default=50)
    p.add_argument("--origin-mbit", type=float, default=100)
    p.add_argument("--upload-slots", type=int, default=8)
    p.add_argument("--seed-slots", type=int, default=32)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--streams", type=int, default=3)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--assignment-timeout", type=float, default=30.0)
    p.add_argument("--give-up", type=float, default=600.0)
    p.add_argument("--pieces-per-slot", type=int, default=0, help="override resource.host.PIECES_PER_SLOT")
    p.add_argument("--initial-pieces", type=int, default=0, help="override resource.host.INITIAL_PIECES")
    p.add_argument("--seed-fanout", type=int, default=0, help="override scheduler.SEED_FANOUT")
    p.add_argument("--zones", type=int, default=0, help="spread the hosts over this many zones (0: no locations)")
    p.add_argument("--parent-policy", choices=sorted(POLICIES), default="default")
    args = p.parse_args(argv)
    if args.pieces_per_slot:
        host_module.PIECES_PER_SLOT = args.pieces_per_slot
    if args.initial_pieces:
        host_module.INITIAL_PIECES = args.initial_pieces
    if args.seed_fanout:
        scheduler_module.SEED_FANOUT = args.seed_fanout
    sim = Sim(args)
    while sim.step():
        pass
    done = sorted(c.done_at for c in sim.children.values() if c.done_at >= 0)
    size = args.mib * MIB
    b = bound(args)
    # Today one reader (the seed) reads the origin, so every byte crosses the seed's uplink at least once.
    design = max(b, size / (min(args.seed_mbit, args.origin_mbit) * 1e6 / 8))
    if len(done) < args.hosts:
        print(f"{args.hosts - len(done)} hosts unfinished at {sim.now:.1f}s")
    makespan = max(done) if done else math.inf
    print(
        f"N={args.hosts} F={args.mib:g}MiB piece={sim.piece_size / MIB:g}MiB makespan={makespan:.2f}s "
        f"p50={statistics.median(done):.2f}s bound={b:.2f}s ratio={makespan / b:.2f}x "
        f"single-reader bound={design:.2f}s ratio={makespan / design:.2f}x"
    )
    sent = " ".join(f"{h.name}={h.sent / size:.2f}" for h in sim.hosts.values())
    print(f"sent/F: {sent}  refusals={sim.refusals}")
    if args.zones:
        policy = f"--parent-policy {args.parent_policy}"
        print(f"between zones / F: {sim.cross_zone / size:.2f} ({args.zones} zones, {policy})")


if __name__ == "__main__":
    main()
