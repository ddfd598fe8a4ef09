"""Bytes per second per host and each task's origin share, from the scheduler's state sampled once a second.

Read-only: it looks at `scheduler.tasks`, their peers' held pieces and upload counts, and changes nothing. A piece a
peer holds that it did not hold at the last sample counts as bytes its host received; where from is inferred from
what the scheduler knows at that moment: a peer told to fetch the origin itself (BACK_TO_SOURCE) and the
task's reader of the origin got it from the origin, a range reader got its read ranges from the origin, everyone
else got it from a parent. A parent's successful uploads (uploads_ok) since the last sample count as bytes its host
sent, at the task's piece size.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from supernode.resource.peer import Peer, PeerState
from supernode.resource.task import Task
from supernode.scheduling.scheduler import Scheduler

log = logging.getLogger(__name__)

TICK_S = 1.0
WINDOW_S = 3.0  # rates are averaged over the samples of this long


@dataclass
class PeerSeen:
    """What a peer held and had uploaded at the last sample."""

    held: int = 0
    uploads_ok: int = 0


@dataclass
class TaskFlow:
    """Bytes a task's peers received since the sampler began: from the origin, or from parents (seed included)."""

    origin_bytes: int = 0
    peer_bytes: int = 0

    @property
    def origin_share(self) -> float:
        """The fraction of received bytes that came from the origin (0 when nothing was received)."""
        total = self.origin_bytes + self.peer_bytes
        return self.origin_bytes / total if total else 0.0


@dataclass
class HostRate:
    """A host's received and sent bytes per sample, over the last WINDOW_S."""

    samples: collections.deque[tuple[float, int, int]] = field(default_factory=collections.deque)
    received: int = 0  # since the sampler began
    sent: int = 0

    def add(self, now: float, down: int, up: int) -> None:
        """Record one sample: bytes received and sent since the previous one."""
        self.samples.append((now, down, up))
        self.received += down
        self.sent += up
        while len(self.samples) > 2 and self.samples[1][0] <= now - WINDOW_S:
            self.samples.popleft()

    def rates(self) -> tuple[float, float]:
        """(received, sent) bytes per second between the oldest sample kept and the newest."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        span = self.samples[-1][0] - self.samples[0][0]
        if span <= 0:
            return 0.0, 0.0
        later = list(self.samples)[1:]
        return sum(s[1] for s in later) / span, sum(s[2] for s in later) / span


def piece_bytes(task: Task, mask: int) -> int:
    """The bytes of the pieces in mask (the last piece may be short)."""
    if not mask or task.piece_size <= 0:
        return 0
    total = mask.bit_count() * task.piece_size
    last = task.piece_count - 1
    if task.length_known and last >= 0 and mask >> last & 1:
        total -= task.piece_count * task.piece_size - task.content_length
    return max(0, total)


def origin_mask(task: Task, peer: Peer, new: int) -> int:
    """Of the pieces new to peer, those it read from the origin."""
    if peer.state is PeerState.BACK_TO_SOURCE or peer.peer_id == task.source_peer_id:
        return new
    return new & peer.read_mask


class Sampler:
    """Samples the scheduler every TICK_S; rates() and flows for the web view."""

    def __init__(self, scheduler: Scheduler, clock: Callable[[], float]) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self.peers: dict[str, PeerSeen] = {}
        self.tasks: dict[str, TaskFlow] = {}
        self.hosts: dict[str, HostRate] = {}

    def sample(self) -> None:
        """Take one sample: the pieces and uploads since the last one."""
        now = self.clock()
        down: dict[str, int] = collections.defaultdict(int)
        up: dict[str, int] = collections.defaultdict(int)
        live: set[str] = set()
        for task in self.scheduler.tasks.values():
            flow = self.tasks.setdefault(task.task_id, TaskFlow())
            for peer in task.peers.values():
                live.add(peer.peer_id)
                seen = self.peers.setdefault(peer.peer_id, PeerSeen())
                new = peer.held & ~seen.held
                if new:
                    from_origin = origin_mask(task, peer, new)
                    origin, total = piece_bytes(task, from_origin), piece_bytes(task, new)
                    flow.origin_bytes += origin
                    flow.peer_bytes += total - origin
                    down[peer.host.host_id] += total
                uploads = peer.uploads_ok - seen.uploads_ok
                if uploads > 0:
                    up[peer.host.host_id] += uploads * task.piece_size
                seen.held, seen.uploads_ok = peer.held, peer.uploads_ok
        for gone in self.peers.keys() - live:
            del self.peers[gone]
        for gone in self.tasks.keys() - self.scheduler.tasks.keys():
            del self.tasks[gone]
        for host_id in self.scheduler.hosts.keys() | down.keys() | up.keys():
            self.hosts.setdefault(host_id, HostRate()).add(now, down.get(host_id, 0), up.get(host_id, 0))
        for gone in self.hosts.keys() - self.scheduler.hosts.keys() - down.keys() - up.keys():
            if not any(s[1] or s[2] for s in self.hosts[gone].samples):
                del self.hosts[gone]

    def rates(self, host_id: str) -> tuple[float, float]:
        """(received, sent) bytes per second of a host."""
        rate = self.hosts.get(host_id)
        return rate.rates() if rate is not None else (0.0, 0.0)

    def flow(self, task_id: str) -> TaskFlow:
        """A task's bytes from the origin and from parents."""
        return self.tasks.get(task_id, TaskFlow())

    async def run(self) -> None:
        """Sample every TICK_S, forever."""
        while True:
            try:
                self.sample()
            except Exception:
                log.exception("web view sample failed")
            await asyncio.sleep(TICK_S)
