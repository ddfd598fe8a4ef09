"""The seed role of a dfdaemon (--seed): take every supernode's orders (SeedTasks) and read each ordered task for
the swarm into this host's cache, as a peer like any other (the supernode tells it on the task's stream what to read).

One order stream per supernode of the cluster (a task's owner orders it from its seed peers, and every supernode
knows every seed peer); an ordered task is registered with the supernode that ordered it while that one answers.
Each stream stays open while the dfdaemon runs; when it breaks, it is opened again (registering the host again when
the supernode forgot it) after a jittered, capped back-off, or as soon as a lost connection is up again. Streams
follow the membership (peer.membership).
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
from peer.scheduler_client import SupernodeLink
from peer.scheduler_cluster import SchedulerClient
from peer.supernode_answers import is_host_not_found
from peer.transferer import SwarmTransferer

log = logging.getLogger(__name__)

MAX_RUNNING = 32  # ordered downloads at once; later orders wait for one of them to end
RECONNECT = BackoffPolicy(base=0.5, cap=10.0, jitter=0.5)
FOLLOW_S = 1.0  # seconds between two looks at the membership: a new supernode's order stream opens this soon


class SeedRole:
    """Runs the order stream and the ordered downloads."""

    def __init__(self, scheduler: SchedulerClient, transferer: SwarmTransferer) -> None:
        self.scheduler = scheduler
        self.transferer = transferer
        self._slots = asyncio.Semaphore(MAX_RUNNING)
        self._loop: asyncio.Task[None] | None = None
        self._streams: dict[str, asyncio.Task[None]] = {}  # supernode address -> its order stream
        self._running: dict[str, asyncio.Task[None]] = {}  # task id ->
        # Tasks ordered again while their download still ran (it was failing, or winding down): run once more when
        # it ends, else the order would be lost and the supernode would wait for it until its order timeout.
        self._again: dict[str, tuple[scheduler_pb2.SeedTasksResponse, str]] = {}  # task id -> (order, supernode)

    def start(self) -> None:
        """Take orders in the background."""
        if self._loop is None:
            self._loop = asyncio.create_task(self._follow(), name="seed-orders")

    async def close(self) -> None:
        """Stop taking orders and stop the ordered downloads (what they stored stays in the cache)."""
        self._again.clear()
        tasks = [task for task in (self._loop, *self._streams.values(), *self._running.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
        self._streams.clear()
        self._running.clear()

    async def _follow(self) -> None:
        """An order stream to every supernode of the cluster, and none to those that left."""
        while True:
            links = self.scheduler.links
            for address in [a for a in self._streams if a not in links]:
                self._streams.pop(address).cancel()
            for address, link in links.items():
                if address not in self._streams:
                    self._streams[address] = asyncio.create_task(self._take_orders(link), name=f"seed-{address}")
            await asyncio.sleep(FOLLOW_S)

    async def _take_orders(self, link: SupernodeLink) -> None:
        backoff = Backoff(RECONNECT)
        while True:
            host_id = ""
            try:
                host_id = await link.ensure_registered()
                call = link.stub().SeedTasks(scheduler_pb2.SeedTasksRequest(host_id=host_id))
                log.info("seed peer taking orders from supernode %s", link.address)
                async for order in call:
                    backoff.succeed()
                    self._take(order, link.address)
                log.info("supernode %s ended the seed order stream", link.address)
            except grpc.aio.AioRpcError as exc:
                if is_host_not_found(exc) and host_id and link.host_id == host_id:
                    link.host_id = ""  # registers again on the next try
                log.warning("seed order stream from %s: %s %s", link.address, exc.code().name, exc.details())
            except DandelionError as exc:
                log.warning("seed order stream from %s: %s", link.address, exc)
            backoff.fail()
            # A supernode whose connection was lost (it restarted) gets its seed peers back once it accepts one again,
            # within gRPC's pause between connection attempts (dfcommon.channels), not the back-off's up to 10 s:
            # while it has none, it sends the downloads of content without a digest to the origin. A stream that
            # ends while the connection stays up waits the back-off.
            if link.connection_up() or not await link.back_within(backoff.remaining(), patient=True):
                await backoff.wait()

    def _take(self, order: scheduler_pb2.SeedTasksResponse, supernode: str) -> None:
        if order.task_id in self._running:
            # once it ends (a finished download runs again from the cache)
            self._again[order.task_id] = (order, supernode)
            return
        task = asyncio.create_task(self._run(order, supernode), name=f"seed-{order.task_id[:12]}")
        self._running[order.task_id] = task
        task.add_done_callback(lambda _done: self._ended(order.task_id))

    def _ended(self, task_id: str) -> None:
        self._running.pop(task_id, None)
        again = self._again.pop(task_id, None)
        if again is not None:
            self._take(*again)

    async def _run(self, order: scheduler_pb2.SeedTasksResponse, supernode: str) -> None:
        async with self._slots:
            request = from_url_meta(order.url_meta)
            log.info("seed order task=%s url=%s", order.task_id[:12], display_url(request.url.split("?")[0])[:200])
            try:
                await self.transferer.seed(request, supernode)
            except DandelionError as exc:
                log.warning("seed order task=%s failed: %s", order.task_id[:12], exc)
