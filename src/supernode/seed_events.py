"""The seed's side of the swarm: its fetch jobs' progress (the SeedListener events), and pieces peers blame it for.

A piece the seed wrote is offered at once; when the seed is done, the peers that hold every piece get its word that
the content matches the digest. A piece a peer blames on the seed (bad digest, missing) is read back from its disk
cache: a corrupted copy fails the seed, and its peers fetch the origin themselves.
"""

from __future__ import annotations

import asyncio
import logging

from dfcommon.errors import DandelionError, DigestMismatch, Unavailable
from dfcommon.pieces import piece_count
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import Failure, PieceMeta, PieceReport
from supernode.resource.states import move_task
from supernode.resource.task import Task, TaskState
from supernode.scheduling.scheduler import Scheduler
from supernode.seed.cdn import Cdn
from supernode.seed.origin import FetchResult
from supernode.streams import Outboxes

log = logging.getLogger(__name__)

# Failures blamed on the seed that make it re-read the piece from its disk cache.
_SEED_SUSPECT = frozenset({Failure.BAD_DIGEST, Failure.PARENT_MISSING_PIECE})


class SeedEvents:
    """Applies the seed's fetch events to its tasks and re-reads pieces peers blame it for."""

    def __init__(self, scheduler: Scheduler, cdn: Cdn, streams: Outboxes) -> None:
        self.scheduler = scheduler
        self.cdn = cdn
        self.streams = streams
        self._rechecks: dict[tuple[str, int], asyncio.Task[None]] = {}

    def answered(self, tid: str, content_length: int, piece_size: int) -> None:
        """The origin answered."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
        move_task(task, TaskState.RUNNING)
        task.content_length = content_length
        task.piece_size = piece_size
        task.piece_count = piece_count(content_length, piece_size) if content_length >= 0 else 0
        log.info("seed answered task=%s length=%d piece_size=%d", tid[:12], content_length, piece_size)
        self.streams.broadcast(task)

    def piece(self, tid: str, piece: PieceMeta) -> None:
        """A piece is ready: offer it."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
        self.streams.deliver(self.scheduler.piece_written(task, piece))

    def done(self, tid: str, result: FetchResult) -> None:
        """The seed holds all of the content."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
        move_task(task, TaskState.SUCCEEDED)
        task.content_length = result.content_length
        task.piece_size = result.piece_size
        task.piece_count = len(result.pieces)
        self.streams.broadcast(task)
        for peer in list(task.peers.values()):
            if peer.peer_id in self.streams:
                self.streams.complete(task, peer)

    def failed(self, tid: str, error: DandelionError) -> None:
        """The seed's fetch failed: peers fetch the origin themselves, or stop on a digest mismatch."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
        move_task(task, TaskState.FAILED)
        task.error = str(error)
        self.scheduler.reset_seed(task)
        self.streams.broadcast(task)
        for peer in list(task.peers.values()):
            if not peer.is_seed and peer.state is PeerState.RUNNING:
                self.fail_peer(task, peer)

    def fail_peer(self, task: Task, peer: Peer) -> None:
        """The task failed at the seed: the peer fetches the origin itself, or stops on a digest mismatch."""
        job = self.cdn.jobs.get(task.task_id)
        error = job.error if job is not None else None
        if isinstance(error, DigestMismatch):
            self.streams.end(peer.peer_id, error)
            return
        self.streams.to_source(task, peer, task.error or "the seed cannot fetch the content")

    def suspect(self, task: Task, report: PieceReport) -> None:
        """Re-read the piece if the report blames it on the seed."""
        if report.failure in _SEED_SUSPECT and report.parent_id == task.seed_peer_id:
            self._recheck_seed(task, report.number)

    def rechecking(self, tid: str) -> bool:
        """True while a piece of the task is being read back."""
        return any(key[0] == tid for key in self._rechecks)

    def _recheck_seed(self, task: Task, number: int) -> None:
        """A peer blames the seed for a piece: read it back; fail the seed if it is gone or corrupted."""
        key = (task.task_id, number)
        if key in self._rechecks or number not in task.pieces:
            return
        self._rechecks[key] = asyncio.get_running_loop().create_task(self._recheck(task, task.pieces[number]))

    async def _recheck(self, task: Task, piece: PieceMeta) -> None:
        try:
            intact = await asyncio.to_thread(self.cdn.store.verify_piece, task.task_id, piece)
        finally:
            self._rechecks.pop((task.task_id, piece.number), None)
        if intact or task.pieces.get(piece.number) != piece:
            return
        log.error("seed piece corrupted task=%s piece=%d", task.task_id[:12], piece.number)
        await asyncio.to_thread(self.cdn.store.discard, task.task_id)
        if task.state is not TaskState.FAILED:
            self.failed(task.task_id, Unavailable(f"the seed's copy of {task.url} is corrupted"))

    def shutdown(self) -> None:
        """Stop reading pieces back."""
        for recheck in self._rechecks.values():
            recheck.cancel()
