"""The seed role of a dfdaemon (--seed): take the supernode's orders (SeedTasks) and read each ordered task for the
swarm into this host's cache, as a peer like any other (the supernode tells it on the task's stream what to read).

The order stream stays open while the dfdaemon runs; when it breaks, it is opened again (registering the host again
when the supernode forgot it) after a jittered, capped back-off.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon.backoff import Backoff, BackoffPolicy
from dfcommon.errors import DandelionError
from dfcommon.identity import display_url
from dfcommon.urlmeta import from_url_meta
from peer.scheduler_client import SchedulerClient, is_host_not_found
from peer.transferer import SwarmTransferer

log = logging.getLogger(__name__)

MAX_RUNNING = 32  # ordered downloads at once; later orders wait for one of them to end
RECONNECT = BackoffPolicy(base=0.5, cap=10.0, jitter=0.5)


class SeedRole:
    """Runs the order stream and the ordered downloads."""

    def __init__(self, scheduler: SchedulerClient, transferer: SwarmTransferer) -> None:
        self.scheduler = scheduler
        self.transferer = transferer
        self._slots = asyncio.Semaphore(MAX_RUNNING)
        self._loop: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}  # task id ->
        # Tasks ordered again while their download still ran (it was failing, or winding down): run once more when
        # it ends, else the order would be lost and the supernode would wait for it until its order timeout.
        self._again: dict[str, scheduler_pb2.SeedTasksResponse] = {}

    def start(self) -> None:
        """Take orders in the background."""
        if self._loop is None:
            self._loop = asyncio.create_task(self._take_orders(), name="seed-orders")

    async def close(self) -> None:
        """Stop taking orders and stop the ordered downloads (what they stored stays in the cache)."""
        self._again.clear()
        tasks = [task for task in (self._loop, *self._running.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
        self._running.clear()

    async def _take_orders(self) -> None:
        backoff = Backoff(RECONNECT)
        while True:
            host_id = ""
            try:
                host_id = await self.scheduler.ensure_registered()
                call = self.scheduler.stub().SeedTasks(scheduler_pb2.SeedTasksRequest(host_id=host_id))
                log.info("seed peer taking orders from supernode %s", self.scheduler.address)
                async for order in call:
                    backoff.succeed()
                    self._take(order)
                log.info("supernode %s ended the seed order stream", self.scheduler.address)
            except grpc.aio.AioRpcError as exc:
                if is_host_not_found(exc) and host_id and self.scheduler.host_id == host_id:
                    self.scheduler.host_id = ""  # registers again on the next try
                log.warning("seed order stream: %s %s", exc.code().name, exc.details())
            except DandelionError as exc:
                log.warning("seed order stream: %s", exc)
            backoff.fail()
            await backoff.wait()

    def _take(self, order: scheduler_pb2.SeedTasksResponse) -> None:
        if order.task_id in self._running:
            self._again[order.task_id] = order  # once it ends (a finished download runs again from the cache)
            return
        task = asyncio.create_task(self._run(order), name=f"seed-{order.task_id[:12]}")
        self._running[order.task_id] = task
        task.add_done_callback(lambda _done: self._ended(order.task_id))

    def _ended(self, task_id: str) -> None:
        self._running.pop(task_id, None)
        again = self._again.pop(task_id, None)
        if again is not None:
            self._take(again)

    async def _run(self, order: scheduler_pb2.SeedTasksResponse) -> None:
        async with self._slots:
            request = from_url_meta(order.url_meta)
            log.info("seed order task=%s url=%s", order.task_id[:12], display_url(request.url.split("?")[0])[:200])
            try:
                await self.transferer.seed(request)
            except DandelionError as exc:
                log.warning("seed order task=%s failed: %s", order.task_id[:12], exc)
