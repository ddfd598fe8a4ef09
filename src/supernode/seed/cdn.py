"""The seed's fetch jobs: one per task, from the disk cache when complete, else from the origin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Protocol

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, Unavailable
from dfcommon.piecedigest import DEFAULT_ALGORITHM
from supernode.resource.piece import PieceMeta
from supernode.seed.origin import FetchResult, OriginFetcher
from supernode.seed.store import SeedStore

log = logging.getLogger(__name__)


class SeedListener(Protocol):
    """Receives a fetch job's progress on the event loop."""

    def seed_answered(self, task_id: str, content_length: int, piece_size: int) -> None:
        """The origin (or the cache) answered with the length (-1 when unknown)."""

    def seed_piece(self, task_id: str, piece: PieceMeta) -> None:
        """A piece is written and verified."""

    def seed_done(self, task_id: str, result: FetchResult) -> None:
        """The whole content is written and verified."""

    def seed_failed(self, task_id: str, error: DandelionError) -> None:
        """The fetch failed; nothing of it is served any more."""


@dataclass(eq=False)
class FetchJob:
    """One fetch of one task's content."""

    task_id: str
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: DandelionError | None = None
    from_cache: bool = False
    runner: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Order:
    """What one job fetches (request.headers are for the origin only, kept in memory only)."""

    url: str
    digest: str
    request: ContentRequest


class Cdn:
    """Starts and tracks fetch jobs, writing through SeedStore: from the disk cache, else from the origin."""

    def __init__(
        self,
        store: SeedStore,
        fetcher: OriginFetcher,
        piece_base: int,
        listener: SeedListener,
        piece_digest: str = DEFAULT_ALGORITHM,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.piece_base = piece_base
        self.piece_digest = piece_digest
        self.listener = listener
        self.jobs: dict[str, FetchJob] = {}

    def start(self, task_id: str, url: str, digest: str, request: ContentRequest) -> FetchJob:
        """Start a fetch job (the request's headers live only in this job's memory: they are for the origin only)."""
        job = FetchJob(task_id)
        self.jobs[task_id] = job
        order = _Order(url, digest, request)
        job.runner = asyncio.create_task(self._run(job, order), name=f"seed-{task_id[:12]}")
        return job

    async def _run(self, job: FetchJob, order: _Order) -> None:
        tid = job.task_id
        try:
            entry = await asyncio.to_thread(self.store.load, tid)
            if entry is not None:
                job.from_cache = True
                log.info("seed cache hit task=%s url=%s length=%d", tid[:12], entry.url, entry.content_length)
                self.listener.seed_answered(tid, entry.content_length, entry.piece_size)
                job.answered.set()
                for piece in entry.pieces:
                    self.listener.seed_piece(tid, piece)
                result = FetchResult(entry.content_length, entry.piece_size, list(entry.pieces), entry.sha256)
                self.listener.seed_done(tid, result)
                return
            await self._fetch(job, order)
        except DandelionError as err:
            job.error = err
            await asyncio.to_thread(self.store.discard, tid)
            log.warning("seed failed task=%s error=%s", tid[:12], err)
            self.listener.seed_failed(tid, err)
        except Exception as err:
            job.error = Unavailable(f"seed fetch of {order.url} failed: {type(err).__name__}")
            await asyncio.to_thread(self.store.discard, tid)
            log.exception("seed fetch crashed task=%s", tid[:12])
            self.listener.seed_failed(tid, job.error)
        finally:
            job.answered.set()
            job.done.set()

    async def _fetch(self, job: FetchJob, order: _Order) -> None:
        tid = job.task_id
        fd = await asyncio.to_thread(self.store.create, tid)
        try:
            sink = _Sink(self.listener, job)
            log.info("seed fetch task=%s url=%s", tid[:12], order.url)
            result = await self.fetcher.fetch(order.request, fd, self.piece_base, sink, self.piece_digest)
            await asyncio.to_thread(
                self.store.write_meta,
                tid,
                order.url,
                order.digest,
                result.content_length,
                result.piece_size,
                result.pieces,
                True,
                result.sha256,
            )
        finally:
            os.close(fd)
        log.info("seed complete task=%s length=%d pieces=%d", tid[:12], result.content_length, len(result.pieces))
        self.listener.seed_done(tid, result)

    async def close(self) -> None:
        """Cancel running jobs."""
        runners = [job.runner for job in self.jobs.values() if job.runner is not None and not job.runner.done()]
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner


class _Sink:
    def __init__(self, listener: SeedListener, job: FetchJob) -> None:
        self.listener = listener
        self.job = job

    def answered(self, content_length: int, piece_size: int) -> None:
        self.listener.seed_answered(self.job.task_id, content_length, piece_size)
        self.job.answered.set()

    def piece_written(self, piece: PieceMeta) -> None:
        self.listener.seed_piece(self.job.task_id, piece)
