"""Builds small swarms on a Scheduler for table-driven tests (no network)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import PieceMeta, PieceReport
from supernode.resource.task import Task, TaskState
from supernode.scheduling.evaluator import ParentPolicy
from supernode.scheduling.scheduler import Assignment, Scheduler

PIECE = 1024
# Upload rate (bytes/s) the hosts of these tables have shown: fast enough that only their slots limit how many
# pieces they send at once. Tests of the upload budget set slower rates, or none (not measured yet).
FAST = 1e12


class Clock:
    """A hand-driven clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Swarm:
    """One task on a Scheduler with a seed peer ("seed", the task's reader of the origin) and named peers."""

    def __init__(
        self,
        pieces: int,
        seed_pieces: int | None = None,
        seed_slots: int = 64,
        rate: float = FAST,
        policy: ParentPolicy | None = None,
    ) -> None:
        self.clock = Clock()
        self.scheduler = Scheduler(assignment_timeout=30.0, clock=self.clock, policy=policy)
        self.task = Task(
            "t" * 64,
            "http://o/x",
            "",
            state=TaskState.RUNNING,
            content_length=pieces * PIECE,
            piece_size=PIECE,
            piece_count=pieces,
        )
        self.seed_host = Host("seed-host", "seed", "127.0.0.1", 8002, seed_slots, "", 0.0, seed_peer=True, rate=rate)
        self.scheduler.add_host(self.seed_host)
        self.scheduler.add_task(self.task)
        self.seed = Peer("seed", self.task.task_id, self.seed_host, state=PeerState.BACK_TO_SOURCE)
        self.scheduler.add_peer(self.task, self.seed)
        self.peers: dict[str, Peer] = {"seed": self.seed}
        for n in range(pieces if seed_pieces is None else seed_pieces):
            self.write(n)

    def write(self, n: int) -> list[Assignment]:
        meta = PieceMeta(n, n * PIECE, PIECE, "sha256:" + hashlib.sha256(str(n).encode()).hexdigest())
        return self.scheduler.piece_authored(self.task, self.seed, meta)

    def add(
        self,
        name: str,
        held: Sequence[int] = (),
        slots: int = 4,
        location: str = "",
        connect: bool = False,
        window: int = 16,
        rate: float = FAST,
    ) -> Peer:
        host = Host(f"host-{name}", name, "127.0.0.2", 65000, slots, location, 0.0, rate=rate)
        self.scheduler.add_host(host)
        peer = Peer(name, self.task.task_id, host)
        self.scheduler.add_peer(self.task, peer)
        self.peers[name] = peer
        self.scheduler.report(peer, [PieceReport(n, "", True) for n in held])
        if connect:
            self.scheduler.connect(peer, window)
        return peer


def pairs(assignments: list[Assignment]) -> list[tuple[int, str]]:
    """(piece, parent name) of each assignment."""
    return [(a.piece.number, a.parent.peer_id) for a in assignments]
