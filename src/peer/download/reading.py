"""This peer's read of the origin for the swarm (the supernode asked: BackToSource.offer_pieces)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from peer.download.origin_read import OriginRead
from peer.download.session import Answered, Offered, OwnReadSink, ReadApplied, ReadEnded
from peer.storage import TaskStore

ALGORITHMS = ("blake3", "sha256")
Ranges = tuple[tuple[int, int], ...]


class SwarmRead:
    """The task that reads, the algorithm of the piece digests it reports, and where its news goes: the running
    stream's session (none between streams: the next stream's first message lists what was stored meanwhile)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.algorithm = ""  # set once the supernode asked: the download then hashes pieces with it
        self._notify: OwnReadSink | None = None
        self._origin: OriginRead | None = None
        self.part = False  # it reads a part the supernode split off (BackToSource.read_ranges), not all it lacks

    @property
    def started(self) -> bool:
        """True once this peer was asked to read (and was not stopped since)."""
        return self.task is not None

    @property
    def running(self) -> bool:
        """True while the read runs."""
        return self.task is not None and not self.task.done()

    def attach(self, notify: OwnReadSink) -> None:
        """A session runs: news goes there."""
        self._notify = notify

    def detach(self, notify: OwnReadSink | None = None) -> None:
        """That session ended (None: whichever is attached)."""
        if notify is None or self._notify is notify:
            self._notify = None

    def start(
        self, algorithm: str, make: Callable[[str], OriginRead], store: TaskStore | None, ranges: Ranges = ()
    ) -> bool:
        """Read with make(algorithm) into store unless a read runs already (a new stream after registering again);
        True when this started one (a finished read is followed by a new one: more pieces were given to it). The
        supernode hears that ranges (the pieces make reads; none: all) apply."""
        self.algorithm = algorithm if algorithm in ALGORITHMS else ALGORITHMS[0]
        if self.running:
            return False
        self.part = bool(ranges)
        self._origin = make(self.algorithm)
        task = asyncio.ensure_future(self._origin.run(store))
        task.add_done_callback(self._ended)
        self.task = task
        self.applied(ranges)
        return True

    def narrow(self, allowed: int | None, ranges: Ranges = ()) -> None:
        """Read only the pieces in allowed (a bitmask; None: all) from now on: another peer reads the others. The
        supernode hears that ranges apply once no piece outside them can be stored any more."""
        self.part = allowed is not None
        if self._origin is not None:
            self._origin.narrow(allowed, lambda: self.applied(ranges))
        else:
            self.applied(ranges)

    def applied(self, ranges: Ranges) -> None:
        """The read keeps to ranges (the read_ranges the supernode sent; none: nothing to tell)."""
        if self._notify is not None and ranges:
            self._notify(ReadApplied(ranges))

    def _ended(self, task: asyncio.Future[None]) -> None:
        if self._notify is not None:
            self._notify(ReadEnded(None if task.cancelled() else task.exception()))

    async def stop(self) -> bool:
        """Stop the read (what it stored stays); True when one ran."""
        task, self.task = self.task, None
        if task is None:
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def finished(self) -> None:
        """Wait until the read, if any, has ended (its error is raised by whoever awaits the task)."""
        if self.task is not None:
            await asyncio.wait({self.task})

    def answered(self, store: TaskStore) -> None:
        """The origin's length is known: tell the swarm."""
        if self._notify is not None and self.algorithm:
            self._notify(Answered(store.meta.content_length, store.meta.piece_size))

    def offer(self, number: int, digest: str) -> None:
        """A piece is stored: offer it."""
        if self._notify is not None and self.algorithm:
            self._notify(Offered(number, digest))

    def cancel(self) -> None:
        """The download ends."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
