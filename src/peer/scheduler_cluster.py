"""The host's view of the supernode cluster: one SupernodeLink per member (registered and heart-beating with every
one), the members from peer.membership, and each task routed to its owner by rendezvous hashing on the task id
(dfcommon.ring) over the members that answer.

A task's calls go to its owner; when the owner does not answer, to the next member on the task's ring, and so on.
A download keeps the supernode it registered with (its peer id lives there) until that one fails: when a member
comes back, tasks running elsewhere finish where they are, and only new registrations follow the ring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon import ring
from dfcommon.errors import Unavailable
from dfcommon.grants import GrantKeys
from dfcommon.tls import TlsConfig
from peer.membership import REFRESH_S, Membership, Resolver, resolve
from peer.scheduler_client import SupernodeLink
from peer.supernode_answers import SupernodeDown

if TYPE_CHECKING:
    from dandelion.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

log = logging.getLogger(__name__)
T = TypeVar("T")

# A download whose supernodes all failed to answer (or are in their reconnect back-off) asks gRPC for a connection
# to each (no call: gRPC paces its connection attempts, dfcommon.channels) and, when one accepts within this long,
# ends that one's back-off and registers there, instead of reading the origin itself: a supernode that restarts (an
# upgrade) is back within seconds, but the back-off its hosts built up while it was gone can run for seconds more
# (up to 10 s): a host whose supernode was gone for 6 s read the origin for a download started after it was back.
# A supernode that stays unreachable is called no more often; a download waits at most this long more before it
# reads the origin when no supernode answers.
RETRY_WAIT_S = 2.0


class SchedulerClient:
    """Routes each task's calls to its supernode, fails over along the task's ring, keeps the links in step with
    the membership."""

    def __init__(
        self,
        entries: Sequence[str],
        host: scheduler_pb2.HostInfo,
        tls: TlsConfig | None = None,
        resolver: Resolver = resolve,
        grant_keys: GrantKeys | None = None,
    ) -> None:
        if not entries:
            raise ValueError("at least one supernode address is needed")
        self.host = host
        self.tls = tls
        self.grant_keys = grant_keys  # every member's grant key, learned at registration (this host's PeerService)
        self.membership = Membership(entries, resolver)
        self.links: dict[str, SupernodeLink] = {}
        self._started = False
        self._refresher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._retired: list[SupernodeLink] = []  # their channels close after a grace
        self._sync()

    def _sync(self) -> None:
        """Links for new members (started when this client runs); members gone are retired."""
        members = self.membership.members()
        for address in members:
            if address not in self.links:
                link = self.links[address] = SupernodeLink(address, self.host, self.tls, self.grant_keys)
                if self._started:
                    link.start()
        for address in [a for a in self.links if a not in members]:
            log.info("supernode %s left the cluster", address)
            link = self.links.pop(address)
            link.retire()
            self._retired.append(link)

    def link(self, address: str) -> SupernodeLink | None:
        """The link to the member at address (None when it is not a member now)."""
        return self.links.get(address)

    def route(self, task_id: str, prefer: str = "") -> list[SupernodeLink]:
        """Where the task's calls go, in order: prefer (when it answers), then the task's ring over the members
        that answer, then those marked down (they are tried last: maybe they are back)."""
        ranked = [self.links[address] for address in ring.ranked(task_id, self.links)]
        preferred = [link for link in ranked if link.address == prefer and link.up]
        return [
            *preferred,
            *(link for link in ranked if link.up and link not in preferred),
            *(link for link in ranked if not link.up),
        ]

    async def call(
        self,
        task_id: str,
        invoke: Callable[[SchedulerServiceAsyncStub, str], Awaitable[T]],
        prefer: str = "",
    ) -> tuple[T, SupernodeLink]:
        """Run invoke(stub, host_id) at the task's owner, failing over along its ring; the answer and the
        supernode that gave it. Unavailable when none answers (after waiting up to RETRY_WAIT_S for one to accept a
        connection again)."""
        failures: list[str] = []
        for attempt in range(2):
            for link in self.route(task_id, prefer):
                try:
                    return await link.call(invoke), link
                except SupernodeDown as exc:
                    failures.append(str(exc))
                    self._refresh_soon()
            if not self.links:
                self._refresh_soon()
                raise Unavailable(f"no supernode known yet ({', '.join(self.membership.entries)})")
            if attempt or not await self._one_back(RETRY_WAIT_S):
                break
        raise Unavailable(f"no supernode reachable: {'; '.join(failures)[:400]}")

    async def _one_back(self, within: float) -> bool:
        """Every supernode just failed to answer: True as soon as one whose connection was down accepts one within
        `within` seconds (its reconnect back-off then ends); False when none does. One whose connection is up did
        not answer on it (frozen, or behind): it is not asked again."""
        links = [link for link in self.links.values() if not link.connection_up()]
        probes = [asyncio.ensure_future(link.back_within(within)) for link in links]
        try:
            for probe in asyncio.as_completed(probes):
                if await probe:
                    return True
            return False
        finally:
            for probe in probes:
                probe.cancel()

    async def ensure_registered(self) -> None:
        """Resolve the members and register with each (at once); Unavailable when none answered."""
        if self.membership.dynamic:
            await self.membership.refresh()
            self._sync()
        results = await asyncio.gather(
            *(link.ensure_registered() for link in self.links.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == len(results):
            raise Unavailable(f"no supernode reachable ({', '.join(self.membership.entries)}): {errors[:1]}")

    def _refresh_soon(self) -> None:
        if self.membership.dynamic and self._started:
            task = asyncio.get_running_loop().create_task(self._refresh(soon=True))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _refresh(self, soon: bool = False) -> None:
        changed = await (self.membership.refresh_soon() if soon else self.membership.refresh())
        if changed:
            self._sync()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self._refresh()

    def start(self) -> None:
        """Heart-beat every member (registering lazily), and follow the membership."""
        if self._started:
            return
        self._started = True
        for link in self.links.values():
            link.start()
        if self.membership.dynamic:
            self._refresher = asyncio.create_task(self._refresh_loop(), name="supernode-membership")

    async def close(self, leave: bool = True) -> None:
        """Stop following the membership, leave every supernode, close the channels."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        for task in list(self._background):
            task.cancel()
        links = [*self.links.values(), *self._retired]
        await asyncio.gather(*self._background, *(link.close(leave) for link in links), return_exceptions=True)


__all__ = ["SchedulerClient"]
