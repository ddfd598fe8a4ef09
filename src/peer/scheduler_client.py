"""The host's link to the supernodes: registration, heartbeats, re-registration and fail-over."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from dfcommon.backoff import Backoff, BackoffPolicy
from dfcommon.channels import channel
from dfcommon.errors import DandelionError, Unavailable
from dfcommon.grants import GrantKeys
from dfcommon.tls import TlsConfig

if TYPE_CHECKING:
    from dandelion.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

log = logging.getLogger(__name__)
T = TypeVar("T")

FAILOVER_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
CALL_TIMEOUT = 10.0
SLOW_HEARTBEAT_S = 2.0  # a heartbeat slower than this is logged (the supernode's link or the host is overloaded)
CHANNEL_GRACE = 30.0  # seconds a left supernode's channel stays open for the calls still running on it
# After every supernode failed to answer, registration is tried again only after 0.5 s, then 1, 2 ... up to 10 s
# (jittered): meanwhile downloads go back to source at once instead of each dialling every supernode again.
RECONNECT_BACKOFF = BackoffPolicy(base=0.5, cap=10.0, jitter=0.5)


def status_error(exc: grpc.aio.AioRpcError) -> DandelionError:
    """A supernode's status as a DandelionError carrying the same code and its one-line message."""
    return DandelionError(exc.details() or str(exc.code()), exc.code())


def is_host_not_found(exc: grpc.aio.AioRpcError) -> bool:
    """True when the supernode does not know our host (it restarted or dropped us)."""
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.NOT_FOUND and "host" in details and not details.startswith("origin")


def is_origin_failure(exc: grpc.aio.AioRpcError) -> bool:
    """True when the supernode answered that the origin (or its seed's fetch) failed: it is reachable, and moving
    to another supernode or registering again would only drop this host's running downloads from the swarm."""
    details = (exc.details() or "").lower()
    return details.startswith(("origin ", "seed fetch "))


class SchedulerClient:
    """Calls the current supernode; on UNAVAILABLE moves to the next; re-registers when the host is unknown."""

    def __init__(
        self,
        addresses: list[str],
        host: scheduler_pb2.HostInfo,
        tls: TlsConfig | None = None,
        grant_keys: GrantKeys | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("at least one supernode address is needed")
        self.addresses = addresses
        self.host = host
        self.tls = tls
        self.grant_keys = grant_keys  # every supernode's grant key, kept across fail-overs (its PeerService checks)
        self.host_id = ""
        self.heartbeat_interval = 5.0
        self._index = 0
        self._channel: grpc.aio.Channel | None = None
        self._channel_target = ""
        self._lock = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None
        self._reconnect = Backoff(RECONNECT_BACKOFF)
        self._closing: dict[asyncio.Task[None], grpc.aio.Channel] = {}  # left channels closing after their grace

    @property
    def address(self) -> str:
        """The supernode currently in use."""
        return self.addresses[self._index]

    def stub(self) -> SchedulerServiceAsyncStub:
        """A stub on the current supernode's channel."""
        if self._channel is None:
            self._channel = channel(self.address, own_connection=True, tls=self.tls)
            self._channel_target = self.address
        stub: SchedulerServiceAsyncStub = scheduler_pb2_grpc.SchedulerServiceStub(self._channel)  # type: ignore[assignment]
        return stub

    async def _switch(self) -> None:
        """Move to the next supernode and register again there. The channel is kept when that is the same
        address; another one's is closed only after CHANNEL_GRACE: closing cancels every call on it, and the
        downloads' piece streams run there (they register their tasks again when they see the host change)."""
        self._index = (self._index + 1) % len(self.addresses)
        self.host_id = ""
        old, target = self._channel, self.addresses[self._index]
        if old is not None and self._channel_target != target:
            self._channel = None
            closing = asyncio.create_task(old.close(CHANNEL_GRACE))
            self._closing[closing] = old
            closing.add_done_callback(lambda done: self._closing.pop(done, None))

    async def _register_here(self) -> None:
        response = await self.stub().RegisterHost(
            scheduler_pb2.RegisterHostRequest(host=self.host), timeout=CALL_TIMEOUT
        )
        self.host_id = response.host_id
        if self.grant_keys is not None and response.grant_public_key:
            self.grant_keys.learn(response.grant_key_id, response.grant_public_key)
        if response.heartbeat_interval_ms:
            self.heartbeat_interval = max(0.2, response.heartbeat_interval_ms / 1000)
        log.info("registered host=%s with supernode %s", self.host_id, self.address)

    async def ensure_registered(self) -> str:
        """Register with the first supernode that answers; Unavailable when none does."""
        async with self._lock:
            if self.host_id:
                return self.host_id
            if not self._reconnect.ready():
                raise Unavailable(
                    f"no supernode reachable ({', '.join(self.addresses)}); next try in "
                    f"{self._reconnect.remaining():.1f}s"
                )
            last: grpc.aio.AioRpcError | None = None
            for _ in self.addresses:
                try:
                    await self._register_here()
                    self._reconnect.succeed()
                    return self.host_id
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in FAILOVER_CODES:
                        raise status_error(exc) from None
                    log.warning("supernode %s unavailable: %s", self.address, exc.details())
                    last = exc
                    await self._switch()
            detail = last.details() if last is not None else ""
            self._reconnect.fail()
            raise Unavailable(f"no supernode reachable ({', '.join(self.addresses)}): {detail}")

    async def call(self, invoke: Callable[[SchedulerServiceAsyncStub, str], Awaitable[T]]) -> T:
        """Run invoke(stub, host_id) with registration, re-registration and fail-over."""
        attempts = len(self.addresses) + 1
        for attempt in range(attempts):
            host_id = await self.ensure_registered()
            try:
                return await invoke(self.stub(), host_id)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                # Not this task: the call was cut by closing a left supernode's channel.
                if attempt + 1 == attempts:
                    raise Unavailable(f"a call to supernode {self.address} was cut by its channel closing") from None
                continue
            except grpc.aio.AioRpcError as exc:
                if is_host_not_found(exc) and attempt + 1 < attempts:
                    log.info("supernode %s forgot host=%s; registering again", self.address, host_id)
                    self.host_id = ""
                    continue
                if exc.code() in FAILOVER_CODES and attempt + 1 < attempts and not is_origin_failure(exc):
                    log.warning("supernode %s unavailable: %s", self.address, exc.details())
                    async with self._lock:
                        await self._switch()
                    continue
                raise status_error(exc) from None
        raise Unavailable("no supernode reachable")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            began, address = time.monotonic(), self.address
            try:
                await self.call(
                    lambda stub, host_id: stub.HeartbeatHost(
                        scheduler_pb2.HeartbeatHostRequest(host_id=host_id), timeout=CALL_TIMEOUT
                    )
                )
            except DandelionError as exc:
                log.warning("heartbeat failed: %s", exc)
            took = time.monotonic() - began
            if took > SLOW_HEARTBEAT_S:
                log.warning("heartbeat to supernode %s took %.1fs", address, took)

    def start(self) -> None:
        """Start heart-beating (registers lazily on first use)."""
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")

    async def close(self, leave: bool = True) -> None:
        """Stop heart-beating, leave the swarm, close the channel."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if leave and self.host_id:
            try:
                await self.stub().LeaveHost(scheduler_pb2.LeaveHostRequest(host_id=self.host_id), timeout=3)
            except grpc.aio.AioRpcError as exc:
                log.info("LeaveHost failed: %s", exc.code())
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
        left = dict(self._closing)
        for old in left.values():
            await old.close(None)
        await asyncio.gather(*left, return_exceptions=True)


def host_info(ip: str, port: int, upload_slots: int, location: str = "", seed: bool = False) -> scheduler_pb2.HostInfo:
    """This host's description for RegisterHost (seed: a seed peer)."""
    return scheduler_pb2.HostInfo(
        hostname=socket.gethostname(), ip=ip, port=port, upload_slots=upload_slots, location=location, seed=seed
    )
