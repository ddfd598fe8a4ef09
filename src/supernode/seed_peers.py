"""Seed peers: dfdaemons in the seed role (HostInfo.seed), the cluster's cache, and the orders they get.

A seed peer registers (HostInfo.seed) and keeps a SeedTasks stream open, on which it is ordered to read tasks from
the origin for the swarm. A task's seed peer is chosen by rendezvous hashing on the task id among the registered
seed peers
(so every supernode, given the same seed peers, picks the same one, and losing one moves only its tasks), skipping
those already tried for the task and those distrusted for it. An order that is not followed by the seed peer's
registration of the task within ORDER_TIMEOUT_S goes to the next seed peer. Plain state and choice only: the
readers (supernode.readers) decide when a task needs a seed peer, and what it reads once it registered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dfcommon import ring
from dfcommon.content import ContentRequest
from dfcommon.metrics import SEED_ORDERS
from supernode.resource.host import Host

log = logging.getLogger(__name__)

# Seconds an ordered seed peer has to register the task before the order goes to the next one.
ORDER_TIMEOUT_S = 10.0
# Orders queued for one seed peer that has not read them yet: beyond this its stream is too slow, and it is dropped.
MAX_QUEUED_ORDERS = 10_000


@dataclass(frozen=True)
class SeedOrder:
    """One task a seed peer is to read for the swarm (SeedTasksResponse)."""

    task_id: str
    request: ContentRequest


@dataclass
class Ordering:
    """A task's orders: the request to pass on (its headers reach the origin only), the seed peer ordered last, when,
    and every seed peer (by address) tried for it."""

    request: ContentRequest
    address: str = ""
    at: float = 0.0
    registered: bool = False
    tried: set[str] = field(default_factory=set)


def rendezvous_score(task_id: str, address: str) -> int:
    """The weight of a seed peer (by its address, stable across registrations) for a task: highest wins."""
    return ring.score(task_id, address)


@dataclass(eq=False)
class SeedHost:
    """A registered seed peer, its order stream's queue while one is open, and the orders given meanwhile."""

    host: Host
    queue: asyncio.Queue[SeedOrder | None] | None = None
    backlog: list[SeedOrder] = field(default_factory=list)

    def send(self, order: SeedOrder) -> None:
        if self.queue is None:
            self.backlog.append(order)
        else:
            self.queue.put_nowait(order)

    @property
    def queued(self) -> int:
        return len(self.backlog) if self.queue is None else self.queue.qsize()


class SeedPeers:
    """The registered seed peers and their order streams, and the tasks ordered from them. A seed peer takes
    orders from its registration on: those given before its order stream opens (it opens it right after
    registering) wait for it, so a seed peer that moved here from another supernode is chosen at once."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seeds: dict[str, SeedHost] = {}  # host id ->
        self.orderings: dict[str, Ordering] = {}  # task id ->
        self.errors: dict[str, str] = {}  # task id -> why its last seed peer failed

    @property
    def up(self) -> bool:
        """True when some seed peer is registered."""
        return bool(self.seeds)

    def add(self, host: Host) -> None:
        """A seed peer registered."""
        self.seeds[host.host_id] = SeedHost(host)

    def open(self, host: Host) -> asyncio.Queue[SeedOrder | None]:
        """The seed peer opened its order stream (a second one replaces the first, which ends)."""
        seed = self.seeds.get(host.host_id)
        if seed is None:
            seed = self.seeds[host.host_id] = SeedHost(host)
        if seed.queue is not None:
            seed.queue.put_nowait(None)
        seed.queue = asyncio.Queue()
        for order in seed.backlog:
            seed.queue.put_nowait(order)
        seed.backlog.clear()
        log.info("seed peer takes orders host=%s addr=%s", host.host_id[:12], host.address)
        return seed.queue

    def close(self, host_id: str, queue: asyncio.Queue[SeedOrder | None]) -> bool:
        """That stream ended; True when it was the host's current one (the seed peer is gone then)."""
        seed = self.seeds.get(host_id)
        if seed is None or seed.queue is not queue:
            return False
        seed.queue = None
        return True

    def end(self, host_id: str) -> None:
        """The host is gone: forget it and end its order stream."""
        seed = self.seeds.pop(host_id, None)
        if seed is not None and seed.queue is not None:
            seed.queue.put_nowait(None)

    def ring(self, task_id: str, exclude: Iterable[str] = ()) -> list[Host]:
        """Seed peers that may take the task, best first (addresses in exclude, and unreachable hosts, left out)."""
        skip = set(exclude)
        hosts = [seed.host for seed in self.seeds.values() if seed.host.address not in skip]
        hosts = [host for host in hosts if not host.unreachable]
        return sorted(hosts, key=lambda host: rendezvous_score(task_id, host.address), reverse=True)

    def pending(self, task_id: str) -> bool:
        """True while an order of the task waits for its seed peer's registration (within ORDER_TIMEOUT_S)."""
        ordering = self.orderings.get(task_id)
        return (
            ordering is not None
            and bool(ordering.address)
            and not ordering.registered
            and self.clock() - ordering.at < ORDER_TIMEOUT_S
        )

    def order(self, task_id: str, request: ContentRequest | None, exclude: Iterable[str] = ()) -> Host | None:
        """Order the task from the best seed peer not tried for it yet (request: the registration that needs it, or
        None for the one kept from before); None when none is left."""
        ordering = self.orderings.get(task_id)
        if ordering is None:
            if request is None:
                return None
            ordering = self.orderings[task_id] = Ordering(request)
        ring = self.ring(task_id, [*ordering.tried, *exclude])
        if not ring:
            ordering.address, ordering.registered = "", False
            return None
        host = ring[0]
        ordering.address, ordering.at, ordering.registered = host.address, self.clock(), False
        ordering.tried.add(host.address)
        seed = self.seeds[host.host_id]
        if seed.queued >= MAX_QUEUED_ORDERS:
            log.warning("seed peer host=%s does not read its orders: no more orders for it", host.host_id[:12])
            self.end(host.host_id)
            return self.order(task_id, None, exclude)
        seed.send(SeedOrder(task_id, ordering.request))
        SEED_ORDERS.inc()
        log.info("seed order task=%s to seed peer host=%s addr=%s", task_id[:12], host.host_id[:12], host.address)
        return host

    def registered(self, task_id: str, host: Host) -> None:
        """A seed peer registered the task (ordered or not)."""
        ordering = self.orderings.get(task_id)
        if ordering is not None and ordering.address == host.address:
            ordering.registered = True

    def overdue(self) -> list[str]:
        """Tasks whose order was not followed by a registration in time."""
        now = self.clock()
        return [
            tid
            for tid, ordering in self.orderings.items()
            if ordering.address and not ordering.registered and now - ordering.at >= ORDER_TIMEOUT_S
        ]

    def withdraw(self, host: Host) -> list[str]:
        """The seed peer is gone: end its order stream, and return the tasks ordered from it that it had not
        registered yet (they go to the next seed peer)."""
        self.end(host.host_id)
        withdrawn = []
        for tid, ordering in self.orderings.items():
            if ordering.address == host.address and not ordering.registered:
                ordering.address = ""
                withdrawn.append(tid)
        return withdrawn

    def failed(self, task_id: str, error: str) -> None:
        """A seed peer's download of the task failed with error (as the seed peer shares it: see
        peer.conductor, an origin without an HTTP answer is "unreachable or not allowed")."""
        self.errors[task_id] = error[:500]

    def error(self, task_id: str) -> str:
        """Why the last seed peer that read the task failed ("" none did)."""
        return self.errors.get(task_id, "")

    def forget(self, task_id: str) -> None:
        """The task's ordering starts over (its seed peers may be ordered again; the last error stays)."""
        self.orderings.pop(task_id, None)

    def drop(self, task_id: str) -> None:
        """The task is forgotten: its ordering and its last error."""
        self.orderings.pop(task_id, None)
        self.errors.pop(task_id, None)
