"""One SyncPieces stream of a download: assignments in, fetches out, results back, until every piece is held.

Pieces assigned wait in a FetchQueue for one of a bounded number of DownloadPieces calls, grouped per parent;
results are batched; parents that fail cool down (SwarmHealth). When the supernode asks this peer to read the
origin for the swarm, the session starts that read (through its owner) and passes its news on: the origin's answer
and each stored piece with its digest, sent at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from peer.context import PeerContext
from peer.download.link import Grant, SwarmLink
from peer.download.report_batch import ReportBatch
from peer.download.stream_events import Assigned, Ended, LinkEvent, TaskNews, ToSource
from peer.download.verify import ContentCheck
from peer.piece import failures
from peer.piece.fetcher import fetch_group
from peer.piece.health import SwarmHealth
from peer.piece.model import Parent, PieceOutcome, PieceSpec
from peer.piece.queue import FetchQueue
from peer.scheduler_client import SupernodeLink
from peer.storage import TaskStore
from peer.tokenbucket import TokenBucket

log = logging.getLogger(__name__)


class SwarmGaveUp(Exception):
    """The swarm cannot finish the download; the reason says why (back-to-source follows)."""


class Forgotten(Exception):
    """The piece stream ended because the supernode no longer knows this peer (the host registered again, was
    dropped, or moved to another supernode), or went away (gone): register the task again."""

    def __init__(self, reason: str, gone: bool = False) -> None:
        super().__init__(reason)
        self.gone = gone


@dataclass(frozen=True)
class Answered:
    """This peer's read for the swarm: the origin answered with this length and piece size."""

    content_length: int
    piece_size: int


@dataclass(frozen=True)
class Offered:
    """This peer's read for the swarm stored a piece."""

    number: int
    digest: str


@dataclass(frozen=True)
class ReadEnded:
    """This peer's read for the swarm ended (error None: it read what it lacked)."""

    error: BaseException | None


@dataclass(frozen=True)
class ReadApplied:
    """This peer's read for the swarm keeps to these ranges now (the supernode's read_ranges): every piece it
    stored outside them was offered before this."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Fetched:
    outcome: PieceOutcome


@dataclass(frozen=True)
class _SlotFree:
    pass


OwnRead = Answered | Offered | ReadApplied | ReadEnded
_Event = LinkEvent | OwnRead | _Fetched | _SlotFree


class SessionOwner(Protocol):
    """The download a session works for (peer.conductor.Conductor)."""

    ctx: PeerContext
    task_id: str
    store: TaskStore | None
    buckets: list[TokenBucket]
    no_back_source: bool
    check: ContentCheck
    host_id: str  # the host id the task was registered under
    supernode: SupernodeLink | None  # the supernode the task was registered with
    grant: Grant | None  # the access grant the task was registered with, or its latest renewal

    @property
    def reading(self) -> bool:
        """True while this peer reads the origin for the swarm."""

    def held(self) -> list[tuple[int, str]]:
        """Pieces held (number, digest or "") for the stream's first message."""

    def answer(self) -> tuple[int, int] | None:
        """(length, piece size) when this peer reads the origin for the swarm and knows them."""

    def task_news(self, news: TaskNews) -> None:
        """The task's metadata and state from the supernode."""

    def attach(self, notify: OwnReadSink) -> None:
        """This session runs: news of the download's read for the swarm goes to notify."""

    def detach(self, notify: OwnReadSink) -> None:
        """This session ended."""

    def read_for_swarm(self, algorithm: str, ranges: tuple[tuple[int, int], ...], piece_size: int) -> None:
        """Start (or go on with, or narrow) reading the origin for the swarm: ranges, or (none) all it lacks."""

    async def stop_reading(self) -> None:
        """Another peer reads the origin now: stop this peer's read."""

    async def read_finished(self) -> None:
        """Wait until this peer's read for the swarm, if any, has ended (its error is not raised here)."""

    def fetched(self, outcome: PieceOutcome, health: SwarmHealth) -> None:
        """A fetch's outcome: accounting, health, local faults."""


class OwnReadSink(Protocol):
    """Where this peer's read for the swarm sends its news."""

    def __call__(self, event: OwnRead) -> None: ...


class SwarmSession:
    """Runs one stream until every piece is held; SwarmGaveUp or Forgotten otherwise."""

    def __init__(self, owner: SessionOwner, peer_id: str) -> None:
        self.owner = owner
        self.peer_id = peer_id
        ctx = owner.ctx
        assert owner.supernode is not None
        self._supernode = owner.supernode
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._queue = FetchQueue(ctx.max_streams, ctx.group_size)
        self._fetches: set[asyncio.Task[None]] = set()
        self.health = SwarmHealth()
        self._results = ReportBatch()
        self._offering = False  # the supernode asked this peer to read the origin for the swarm, on this stream
        self._link = SwarmLink(self._supernode, peer_id, self._events.put_nowait, self._renewed)

    def _renewed(self, grant: Grant) -> None:
        """A renewed access grant: later fetches present it."""
        self.owner.grant = grant

    def notify(self, event: OwnRead) -> None:
        """News of this peer's read for the swarm (from the owner)."""
        self._events.put_nowait(event)

    def _all_held(self) -> bool:
        store = self.owner.store
        return store is not None and store.all_held()

    async def run(self) -> None:
        """The stream's life."""
        if self._all_held():
            return
        owner = self.owner
        owner.attach(self.notify)
        self._link.open(owner.ctx.window, owner.held(), owner.answer())
        try:
            while not self._all_held():
                if self._supernode.host_id != owner.host_id:  # the supernode forgot this host: registered again
                    raise Forgotten("this host registered with the supernode again")
                if not self._supernode.up:  # it stopped answering: the task goes to the next owner on its ring
                    raise Forgotten(f"supernode {self._supernode.address} stopped answering", gone=True)
                if not owner.reading and (reason := self.health.give_up_reason(owner.ctx.stall_timeout)):
                    raise SwarmGaveUp(reason)
                try:
                    now = asyncio.get_running_loop().time()
                    wait = self._results.due_in(now) if self._results else min(1.0, self.health.next_ready_in() or 1.0)
                    async with asyncio.timeout(wait):
                        event = await self._events.get()
                except TimeoutError:
                    self._flush()
                    self._dispatch()  # a parent's cool-down may have ended
                    continue
                if not await self._handle(event):
                    break  # this peer's read failed: its error is the download's
            await self._wind_down()
        finally:
            owner.detach(self.notify)
            for task in list(self._fetches):
                task.cancel()
            await asyncio.gather(*self._fetches, return_exceptions=True)
            await self._link.close()

    async def _handle(self, event: _Event) -> bool:
        """One event; False when this peer's read for the swarm failed."""
        if isinstance(event, _SlotFree):
            self._dispatch()
        elif isinstance(event, _Fetched):
            due = self._results.add(event.outcome, asyncio.get_running_loop().time())
            self.owner.fetched(event.outcome, self.health)
            if due:
                self._flush()
        elif isinstance(event, OwnRead):
            return self._own_read(event)
        elif isinstance(event, Ended):
            if event.forgotten or self._supernode.host_id != self.owner.host_id:
                raise Forgotten(event.reason, event.gone)
            raise SwarmGaveUp(event.reason)
        elif isinstance(event, TaskNews):
            self.health.news()
            if event.failed:
                raise SwarmGaveUp(f"the supernode says the task failed: {event.error or 'no reason given'}")
            self.owner.task_news(event)
        elif isinstance(event, ToSource):
            self._to_source(event)
        elif isinstance(event, Assigned):
            if self.owner.reading and not self._offering:  # another peer reads the origin now
                await self.owner.stop_reading()
            self._assigned(event)
        return True

    def _to_source(self, order: ToSource) -> None:
        if not order.offer:
            raise SwarmGaveUp(f"supernode sent back-to-source: {order.reason}")
        if self.owner.no_back_source:
            raise SwarmGaveUp(f"the supernode asked this peer to read the origin ({order.reason})")
        self._offering = True
        store = self.owner.store
        if store is not None and store.meta.content_length >= 0 and not self.owner.reading:
            # Made the reader while holding pieces (it moved here from another supernode, or kept a partial task
            # across a restart): the content's shape and those pieces with their digests, so they are offered now.
            self._link.answer(store.meta.content_length, store.meta.piece_size)
            self._link.report_held([(number, digest) for number, digest in self.owner.held() if digest])
        if not order.ranges:  # it reads all it lacks: nothing from parents
            self._queue.clear()
            for task in list(self._fetches):
                task.cancel()
        self.owner.read_for_swarm(order.algorithm, order.ranges, order.piece_size)

    def _own_read(self, event: OwnRead) -> bool:
        if isinstance(event, Answered):
            self._flush()
            self._link.answer(event.content_length, event.piece_size)
        elif isinstance(event, Offered):
            self._flush()
            self._link.offer(event.number, event.digest)  # at once: other peers wait for it
        elif isinstance(event, ReadApplied):
            self._flush()
            self._link.read_applied(event.ranges)  # after every piece it stored: the supernode hands the rest on
        else:
            return event.error is None
        return True

    def _assigned(self, event: Assigned) -> None:
        store = self.owner.store
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "task=%s assigned %s", self.owner.task_id[:12], [(p.number, a.peer_id[:8]) for a, p in event.pieces]
            )
        for parent, piece in event.pieces:
            self.owner.check.assigned(piece.number, piece.digest)
            if store is None or store.has(piece.number) or piece.number >= store.meta.piece_count:
                continue
            if (piece.offset, piece.size) != store.span(piece.number):
                log.warning("ignoring assignment of piece %d with a wrong span", piece.number)
                continue
            self._queue.add(parent, piece)
        self._dispatch()

    def _dispatch(self) -> None:
        while (group := self._queue.next_group(lambda p: self.health.ready(p.peer_id))) is not None:
            parent, pieces = group
            task = asyncio.create_task(self._fetch(parent, pieces))
            self._fetches.add(task)
            task.add_done_callback(self._stream_done)

    def _stream_done(self, task: asyncio.Task[None]) -> None:
        self._fetches.discard(task)
        self._queue.release()
        self._events.put_nowait(_SlotFree())

    async def _fetch(self, parent: Parent, pieces: list[PieceSpec]) -> None:
        store = self.owner.store
        assert store is not None
        reported: set[int] = set()

        def report(outcome: PieceOutcome) -> None:
            reported.add(outcome.number)
            self._events.put_nowait(_Fetched(outcome))

        ctx = self.owner.ctx
        try:
            await fetch_group(
                ctx.channels.get(parent.target),
                self.owner.task_id,
                (self.peer_id, self.owner.host_id, self.owner.grant),
                parent,
                pieces,
                store,
                report,
                self.owner.buckets,
            )
        except Exception as exc:
            log.warning("fetch from parent=%s at %s failed: %s", parent.peer_id[:12], parent.target, exc)
            for piece in pieces:
                if piece.number not in reported:
                    report(PieceOutcome(piece.number, parent.peer_id, False, failures.PARENT_UNAVAILABLE))

    def _flush(self) -> None:
        self._link.report(self._results.take(asyncio.get_running_loop().time()))

    async def _wind_down(self) -> None:
        """Every piece is held (or this peer's read failed): report the last outcomes."""
        if self._fetches:  # the last pieces' outcomes are reported just after their bits are set
            await asyncio.wait(set(self._fetches), timeout=5.0)
        await self.owner.read_finished()  # so is the last piece this peer read from the origin
        while not self._events.empty():  # outcomes (and news) that landed with the last piece
            self._after_last_piece(self._events.get_nowait())
        self._flush()

    def _after_last_piece(self, event: _Event) -> None:
        """Handle an event that arrives once every piece is held."""
        if isinstance(event, _Fetched):
            self._results.add(event.outcome, asyncio.get_running_loop().time())
            self.owner.fetched(event.outcome, self.health)
        elif isinstance(event, OwnRead):
            self._own_read(event)
        elif isinstance(event, TaskNews):
            self.owner.task_news(event)
