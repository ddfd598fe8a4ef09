"""The host's link to one supernode: registration, heartbeats, re-registration, and whether it answers."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from dfcommon.backoff import Backoff, BackoffPolicy
from dfcommon.channels import channel
from dfcommon.errors import DandelionError
from dfcommon.grants import GrantKeys
from dfcommon.ratelog import RateLimitedLog
from dfcommon.tls import TlsConfig
from peer.heartbeat_schedule import HeartbeatSchedule
from peer.reaching import REACHING, accepts_tcp, channel_state, connects_within, while_reaching
from peer.supernode_answers import (
    FAILOVER_CODES,
    SupernodeBehind,
    SupernodeDown,
    is_host_not_found,
    is_origin_failure,
    status_error,
)

if TYPE_CHECKING:
    from dandelion.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

log = logging.getLogger(__name__)
quiet = RateLimitedLog(log)
T = TypeVar("T")

CALL_TIMEOUT = 10.0
SLOW_HEARTBEAT_S = 2.0  # a heartbeat slower than this is logged (the supernode's link or the host is overloaded)
CHANNEL_GRACE = 30.0  # seconds a left supernode's channel stays open for the calls still running on it
# After a supernode failed to answer, registering there is tried again only after 0.5 s, then 1, 2 ... up to 10 s
# (jittered): meanwhile tasks go to the next supernode on their ring (or, when none answers, back to source at
# once) instead of each download dialling it again.
RECONNECT_BACKOFF = BackoffPolicy(base=0.5, cap=10.0, jitter=0.5)
# A supernode that is behind is not a supernode that is gone. At fleet scale its heartbeat calls wait in its queue
# of calls not yet taken up (grpc.aio takes up one call of a method at a time; 10,000 hosts opening their streams at
# once kept HeartbeatHost calls waiting over 30 s while other methods answered in milliseconds), and marking it down
# then sends every download there to the next supernode or to the origin. gRPC's keepalive pings are answered by
# the transport whatever the event loop does: a process that froze or a link that broke stops answering them, and
# the connection closes within LINK_KEEPALIVE_MS's sum (dfcommon.channels). So a heartbeat that timed out on a
# connection that is still up (READY) is late, as long as the supernode answered this host within BEHIND_INTERVALS
# heartbeat intervals (at least BEHIND_MIN_S): as long as a supernode that is behind keeps its hosts
# (supernode.hosts.MASS_PATIENCE). A supernode whose event loop hangs with its transport alive is left after that.
LINK_KEEPALIVE_MS = (10_000, 10_000)  # ping every 10 s (the supernodes allow 5 s), close unanswered after 10 s
BEHIND_INTERVALS = 10
BEHIND_MIN_S = 60.0
# A registration that timed out, or that the supernode refused because its queue of calls not yet taken up was
# full (CANCELLED, "Too many pending requests"), on such a connection is asked again; a refused one after a pause
# (full jitter, so that hosts refused together do not come back together).
BEHIND_CODES = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
REFUSED_BACKOFF = BackoffPolicy(base=1.0, cap=8.0, jitter=1.0)


def is_behind(connected: bool, heard: float, now: float, interval: float) -> bool:
    """A call to a supernode timed out: True when it is behind rather than gone (its connection is up and it
    answered this host within BEHIND_INTERVALS heartbeat intervals, at least BEHIND_MIN_S; heard 0: never)."""
    return connected and heard > 0 and now - heard < max(BEHIND_MIN_S, BEHIND_INTERVALS * interval)


class HeartbeatCarrier(Protocol):
    """An open SyncPieces stream with the supernode, which can carry the host's heartbeat
    (peer.download.link.SwarmLink)."""

    async def beat(self) -> int | None:
        """Send the host's heartbeat on the stream: the interval the supernode answered (ms), or None when the
        stream ended first."""

    @property
    def heard(self) -> float:
        """When (event loop time) the supernode last sent a message on the stream."""


class SupernodeLink:
    """This host's link to one supernode: registration, re-registration when it forgot the host, heartbeats, and
    whether it answers (`up`). A failed call marks it down; a heartbeat or registration that succeeds marks it up
    again. Which supernode a call goes to is the ring's choice (peer.scheduler_cluster).

    While the host holds a SyncPieces stream with a supernode that takes them (RegisterHostResponse.
    stream_heartbeats), it beats on that stream rather than calling HeartbeatHost: a message on a stream the
    supernode already serves costs it a fraction of a new call, which at fleet scale is what keeps heartbeats from
    waiting behind the swarm's work. No answer in time marks the supernode down, as a failed HeartbeatHost does."""

    def __init__(
        self,
        address: str,
        host: scheduler_pb2.HostInfo,
        tls: TlsConfig | None = None,
        grant_keys: GrantKeys | None = None,
    ) -> None:
        self.address = address
        self.host = host
        self.tls = tls
        self.grant_keys = grant_keys  # every supernode's grant key, kept across fail-overs (its PeerService checks)
        self.host_id = ""
        self.beats = HeartbeatSchedule()
        self.stream_heartbeats = False  # the supernode takes heartbeats on SyncPieces streams
        self._carriers: dict[HeartbeatCarrier, str] = {}  # open streams here, with the host id they were opened under
        self.up = True  # until a call fails: a supernode never tried is worth trying (routing tries it first)
        self.heard = 0.0  # event loop time of its last answer to a call or a heartbeat (0: none yet)
        self.down_since = 0.0
        self._channel: grpc.aio.Channel | None = None
        self._lock = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None
        self._reconnect = Backoff(RECONNECT_BACKOFF)
        self._closing: asyncio.Task[None] | None = None

    def stub(self) -> SchedulerServiceAsyncStub:
        """A stub on this supernode's channel."""
        if self._channel is None:
            self._channel = channel(self.address, own_connection=True, tls=self.tls, keepalive_ms=LINK_KEEPALIVE_MS)
        stub: SchedulerServiceAsyncStub = scheduler_pb2_grpc.SchedulerServiceStub(self._channel)  # type: ignore[assignment]
        return stub

    def mark_down(self, why: str) -> None:
        """The supernode did not answer: tasks go to the next owner until it answers again. This host registers
        there again first (it may have restarted, or dropped this host for its missed heartbeats): the downloads
        still registered there see the new host id and register their tasks again."""
        self.host_id = ""
        if self.up:
            log.warning("supernode %s unavailable: %s", self.address, why)
            self.up, self.down_since = False, time.monotonic()
            self.beats.replan()

    def _mark_up(self) -> None:
        self.heard = asyncio.get_running_loop().time()
        if not self.up:
            log.info("supernode %s answers again (down %.1fs)", self.address, time.monotonic() - self.down_since)
            self.up = True

    async def _register_here(self) -> None:
        request = scheduler_pb2.RegisterHostRequest(host=self.host)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + BEHIND_MIN_S
        refused = Backoff(REFUSED_BACKOFF)
        call: Awaitable[scheduler_pb2.RegisterHostResponse] = self.stub().RegisterHost(request, timeout=CALL_TIMEOUT)
        while True:
            try:
                response = await call
                break
            except grpc.aio.AioRpcError as exc:
                # A fleet that starts at once registers at once, and a host that took a supernode slow to answer for
                # a dead one would send its downloads to the origin: 16,000 hosts, one connection each, registering
                # with one supernode at once (bench/README.md): 2,111 were answered within 10 s. A call that timed
                # out, or that the supernode refused because its queue of calls not yet taken up was full, while the
                # connection is up or still being set up, met a supernode that is behind: it is asked again (a
                # refused one after a jittered pause), until BEHIND_MIN_S from the first try, as long as the
                # connection neither fails nor closes.
                left = give_up - loop.time()
                if exc.code() not in BEHIND_CODES or self._state() not in REACHING or left <= 1.0:
                    raise
                quiet.warning(
                    f"register-behind:{self.address}",
                    f"supernode {self.address} is behind: registering {exc.code().name} on a connection that is up or "
                    f"being set up; asking again for up to {BEHIND_MIN_S:.0f}s",
                )
                if exc.code() is grpc.StatusCode.CANCELLED:
                    await asyncio.sleep(min(refused.fail(), left / 2))
                again = self.stub().RegisterHost(request, timeout=give_up - loop.time())
                call = while_reaching(self._channel, again, exc)
        self.host_id = response.host_id
        if self.grant_keys is not None and response.grant_public_key:
            self.grant_keys.learn(response.grant_key_id, response.grant_public_key)
        self.beats.answered(response.heartbeat_interval_ms, usual=True)
        self.stream_heartbeats = response.stream_heartbeats
        log.info("registered host=%s with supernode %s", self.host_id, self.address)

    def _state(self) -> grpc.ChannelConnectivity:
        """The state of the connection to the supernode."""
        return channel_state(self._channel)

    def connection_up(self) -> bool:
        """The connection to the supernode is up (READY): grpc's core answers its keepalive pings whatever the
        supernode's event loop does, and a frozen or unreachable supernode's connection closes within
        LINK_KEEPALIVE_MS's sum."""
        return self._state() is grpc.ChannelConnectivity.READY

    async def connection_lost(self, within: float) -> bool:
        """True when the connection to the supernode is not up, or goes down within `within` seconds."""
        channel = self._channel
        if channel is None or not self.connection_up():
            return True
        try:
            async with asyncio.timeout(within):
                await channel.wait_for_state_change(grpc.ChannelConnectivity.READY)
        except TimeoutError:
            return False
        return not self.connection_up()

    def retry_in(self) -> float:
        """Seconds until this host may try to register here again (0 when it is registered, or may try now)."""
        return 0.0 if self.host_id else self._reconnect.remaining()

    async def back_within(self, within: float, patient: bool = False) -> bool:
        """A call here just failed: True, with the reconnect back-off ended, when a connection to the supernode is
        up or comes up within `within` seconds (it is back: a download registers now instead of reading the
        origin); False when it does not (unless patient, as soon as an attempt to connect failed)."""
        self.stub()  # the channel
        assert self._channel is not None
        # After a failed attempt gRPC tells of no other until one succeeds: while the supernode still refuses
        # connections, a download does not wait for gRPC's next attempt (up to 2 s) to learn it.
        failed = self._state() is grpc.ChannelConnectivity.TRANSIENT_FAILURE
        if failed and not patient and not await accepts_tcp(self.address, within):
            return False
        if not await connects_within(self._channel, within, patient):
            return False
        log.info("supernode %s accepts connections again; registering now", self.address)
        self._reconnect.try_now()
        return True

    async def ensure_registered(self) -> str:
        """This host's id at the supernode, registering first when it has none; SupernodeDown when it does not
        answer (registration is tried again after a jittered back-off, not on every call)."""
        async with self._lock:
            if self.host_id:
                return self.host_id
            if not self._reconnect.ready():
                raise SupernodeDown(
                    f"supernode {self.address} unreachable; next try in {self._reconnect.remaining():.1f}s"
                )
            try:
                await self._register_here()
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in FAILOVER_CODES:
                    raise status_error(exc) from None
                self._reconnect.fail()
                self.mark_down(exc.details() or exc.code().name)
                raise SupernodeDown(f"supernode {self.address} unreachable: {exc.details()}") from None
            self._reconnect.succeed()
            self._mark_up()
            return self.host_id

    def behind(self) -> bool:
        """A call here timed out: True when the supernode is behind rather than gone (is_behind), counting what it
        last sent on this host's piece streams as an answer too."""
        heard = max([self.heard, *(carrier.heard for carrier in self._carriers)])
        return is_behind(self.connection_up(), heard, asyncio.get_running_loop().time(), self.beats.usual)

    async def call(self, invoke: Callable[[SchedulerServiceAsyncStub, str], Awaitable[T]], patient: bool = False) -> T:
        """Run invoke(stub, host_id) here, registering again once when the supernode forgot this host;
        SupernodeDown when it does not answer. patient: a call that timed out at a supernode that is behind
        (`behind`) raises SupernodeBehind and leaves it up."""
        for attempt in range(2):
            host_id = await self.ensure_registered()
            try:
                result = await invoke(self.stub(), host_id)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                # Not this task: the call was cut by closing this supernode's channel (it left the cluster).
                raise SupernodeDown(f"a call to supernode {self.address} was cut by its channel closing") from None
            except grpc.aio.AioRpcError as exc:
                if is_host_not_found(exc) and attempt == 0:
                    log.info("supernode %s forgot host=%s; registering again", self.address, host_id)
                    if self.host_id == host_id:
                        self.host_id = ""
                    continue
                if exc.code() in FAILOVER_CODES and not is_origin_failure(exc):
                    if patient and exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and self.behind():
                        raise SupernodeBehind(f"supernode {self.address} is behind: {exc.details()}") from None
                    self.mark_down(exc.details() or exc.code().name)
                    raise SupernodeDown(f"supernode {self.address}: {exc.details()}") from None
                raise status_error(exc) from None
            self._mark_up()
            return result
        raise SupernodeDown(f"supernode {self.address} forgot this host twice")

    def carry(self, stream: HeartbeatCarrier) -> None:
        """A SyncPieces stream with this supernode is open (the supernode answered on it): it may carry heartbeats."""
        self._carriers[stream] = self.host_id
        self.beats.stream_opened()

    def uncarry(self, stream: HeartbeatCarrier) -> None:
        """The stream ended."""
        self._carriers.pop(stream, None)

    def _carrier(self) -> HeartbeatCarrier | None:
        """An open stream, opened under the host id this host has here now, when the supernode takes heartbeats on
        streams."""
        if not (self.stream_heartbeats and self.host_id):
            return None
        return next((stream for stream, host_id in self._carriers.items() if host_id == self.host_id), None)

    async def _beat_on_stream(self) -> bool:
        """Beat on an open stream; False when there is none, or it ended before the answer (beat with a call)."""
        if (carrier := self._carrier()) is None:
            return False
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                interval_ms = await carrier.beat()
        except TimeoutError:
            # Messages on a stream are read in order: a supernode behind its peers' reports answers late, but one
            # that still sends on the stream is up (one that froze or died sends nothing), as is one behind whose
            # connection is up (`behind`).
            if asyncio.get_running_loop().time() - carrier.heard < CALL_TIMEOUT or self.behind():
                quiet.warning(
                    f"late-beat:{self.address}",
                    f"supernode {self.address} is behind: a heartbeat on a piece stream unanswered for "
                    f"{CALL_TIMEOUT:.0f}s while it still sends on the stream",
                )
                return True
            self.mark_down(f"no answer to a heartbeat on a piece stream within {CALL_TIMEOUT:.0f}s")
            return True
        if interval_ms is None:
            return False
        self.beats.answered(interval_ms, usual=True)  # on a stream: the host has a peer there
        self._mark_up()
        return True

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.beats.wait(loop.time(), lambda: self.up)
            began = time.monotonic()
            if await self._beat_on_stream():
                self._log_slow(began)
                continue
            try:
                reply = await self.call(
                    lambda stub, host_id: stub.HeartbeatHost(
                        scheduler_pb2.HeartbeatHostRequest(host_id=host_id), timeout=CALL_TIMEOUT
                    ),
                    patient=True,
                )
                self.beats.answered(reply.heartbeat_interval_ms, usual=False)  # longer while this host is idle there
            except SupernodeBehind:
                quiet.warning(
                    f"behind:{self.address}",
                    f"supernode {self.address} is behind: a heartbeat unanswered for {CALL_TIMEOUT:.0f}s on a "
                    "connection that is up; kept",
                )
            except DandelionError as exc:
                if self.up:
                    log.warning("heartbeat to supernode %s failed: %s", self.address, exc)
            self._log_slow(began)

    def _log_slow(self, began: float) -> None:
        took = time.monotonic() - began
        if took > SLOW_HEARTBEAT_S:
            log.warning("heartbeat to supernode %s took %.1fs", self.address, took)

    def start(self) -> None:
        """Start heart-beating (registers on the first beat unless registered before)."""
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"heartbeat-{self.address}")

    def retire(self) -> None:
        """The supernode left the cluster: stop heart-beating; its channel closes after CHANNEL_GRACE (closing
        cancels every call on it: the downloads still running there register their tasks again elsewhere)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._channel is not None and self._closing is None:
            self._closing = asyncio.create_task(self._channel.close(CHANNEL_GRACE))
        self.up = False

    async def close(self, leave: bool = True) -> None:
        """Stop heart-beating, leave the supernode, close the channel."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if leave and self.host_id and self.up:
            try:
                await self.stub().LeaveHost(scheduler_pb2.LeaveHostRequest(host_id=self.host_id), timeout=3)
            except grpc.aio.AioRpcError as exc:
                log.info("LeaveHost at %s failed: %s", self.address, exc.code())
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
        if self._closing is not None:
            await asyncio.gather(self._closing, return_exceptions=True)


def host_info(ip: str, port: int, upload_slots: int, location: str = "", seed: bool = False) -> scheduler_pb2.HostInfo:
    """This host's description for RegisterHost (seed: a seed peer)."""
    return scheduler_pb2.HostInfo(
        hostname=socket.gethostname(), ip=ip, port=port, upload_slots=upload_slots, location=location, seed=seed
    )
