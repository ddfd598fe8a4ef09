"""The hosts of the swarm: registration (replacing one at the same address), heartbeats, leaving, the sweep of
silent hosts, and seed peers' order streams. A host that goes takes its peers with it: their streams end, and the
tasks they read the origin for get new readers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from dfcommon.errors import DandelionError, FailedPrecondition, NotFound
from dfcommon.metrics import HEARTBEATS
from dfcommon.ratelog import RateLimitedLog
from supernode.config import SupernodeConfig
from supernode.limits import Limits
from supernode.readers import Readers
from supernode.resource.host import Host
from supernode.scheduling.scheduler import Scheduler
from supernode.seed_peers import SeedOrder, SeedPeers
from supernode.streams import Outboxes

log = logging.getLogger(__name__)
quiet = RateLimitedLog(log)

MISSED_HEARTBEATS = 3
# Heartbeats a second the supernode asks of all its hosts at most: the interval it hands out grows with the most
# hosts it has held (never shrinks, so no host beating at an interval handed out earlier is dropped). A unary call
# costs this process about 0.3 ms, so 500 a second is some 15% of it; 10,000 hosts beat every 20 s.
HEARTBEATS_PER_SECOND = 500
# A host with no peer here (no download this supernode schedules, nothing it serves for one) is told to beat
# IDLE_FACTOR times as seldom, at most IDLE_CAP_S apart unless everyone's interval is longer: with several supernodes
# a host beats every one of them, and is idle at all but the owners of its current tasks, so their heartbeats are
# mostly of idle hosts. Its liveness matters only once it has a peer here; from then on its next answer (on its
# stream, or to its call) hands it the usual interval. Until it beats at that, it is dropped only after missing
# three of the interval it was told (sweep), whatever client it is.
IDLE_FACTOR = 6
IDLE_CAP_S = 60.0
# When more than MASS_SHARE of at least MASS_MIN_HOSTS hosts (and more than MASS_MIN_LATE) have missed a heartbeat
# at once, it is far likelier that this supernode is behind (their heartbeats wait in its queue of calls not yet
# taken up, or time out there) than that they all died at once: dropping them would end their downloads and bring
# their re-registrations on top of the backlog. Until no host is overdue, a host goes only once silent
# MASS_PATIENCE times as long. Dead hosts kept meanwhile cost little: children that fail to reach them mark them
# unreachable, and they are not chosen again.
MASS_MIN_HOSTS = 50
MASS_MIN_LATE = 5
MASS_SHARE = 0.02
MASS_PATIENCE = 10


@dataclass(frozen=True)
class HostSpec:
    """What a host tells about itself when registering."""

    hostname: str
    ip: str
    port: int
    upload_slots: int
    location: str
    seed: bool = False  # a seed peer (dfdaemon --seed)


class Hosts:
    """The host operations behind RegisterHost, HeartbeatHost, LeaveHost and SeedTasks, and the heartbeat sweep."""

    def __init__(
        self,
        config: SupernodeConfig,
        scheduler: Scheduler,
        streams: Outboxes,
        readers: Readers,
        seed_peers: SeedPeers,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.streams = streams
        self.readers = readers
        self.seed_peers = seed_peers
        self.clock = clock
        self.limits = Limits.of(config)
        self.most_hosts = 0  # the most hosts held at once since the start (the heartbeat interval follows it)
        self.behind = False  # many hosts missed a heartbeat at once: this supernode is taken to be behind (MASS_SHARE)

    def register(self, spec: HostSpec) -> str:
        """Register a host (replacing one registered at the same address) and return its id."""
        old = self.scheduler.registry.host_at(spec.ip, spec.port)
        if old is not None:
            log.info("host re-registered host=%s addr=%s:%d", old.host_id[:12], spec.ip, spec.port)
            self.drop(old, NotFound("host registered again"))
        if not spec.seed:  # seed peers are few (a --seed-cn certificate) and the swarm's source: never refused
            self.limits.check_host(len(self.scheduler.hosts))
        host = Host(uuid.uuid4().hex, spec.hostname, spec.ip, spec.port, spec.upload_slots, spec.location, self.clock())
        host.seed_peer = spec.seed
        self.scheduler.add_host(host)
        self.most_hosts = max(self.most_hosts, len(self.scheduler.hosts))
        if spec.seed:
            self.seed_peers.add(host)
        hid, addr = host.host_id[:12], f"{spec.ip}:{spec.port}"
        role = " seed peer" if spec.seed else ""
        log.info(
            "host registered host=%s name=%s addr=%s slots=%d%s", hid, spec.hostname, addr, spec.upload_slots, role
        )
        return host.host_id

    def interval_ms(self) -> int:
        """The heartbeat interval handed out: --heartbeat-interval, or longer so that the most hosts held beat at
        most HEARTBEATS_PER_SECOND times a second in all."""
        return max(self.config.heartbeat_interval_ms, -(-self.most_hosts * 1000 // HEARTBEATS_PER_SECOND))

    def idle_interval_ms(self) -> int:
        """The heartbeat interval of a host with no peer here (IDLE_FACTOR)."""
        usual = self.interval_ms()
        return max(usual, min(IDLE_FACTOR * usual, int(IDLE_CAP_S * 1000)))

    def answer(self, host: Host) -> int:
        """The heartbeat interval to hand this host now (ms): the idle one while it has no peer here and is not a
        seed peer, else everyone's. Remembered, so that the sweep gives it three of those."""
        idle = not host.peer_ids and not host.seed_peer
        interval = self.idle_interval_ms() if idle else self.interval_ms()
        host.beat_every = interval / 1000 if idle else 0.0
        return interval

    def heartbeat(self, host_id: str) -> int:
        """A host's HeartbeatHost: the interval to answer with (ms)."""
        host = self.get(host_id)
        self.beat(host, "call")
        return self.answer(host)

    def beat(self, host: Host, via: str) -> None:
        """The host beat (a call, or on a stream): it is alive, and choosable again as a parent if children could
        not reach it."""
        HEARTBEATS.labels(via).inc()
        self.seen(host)
        self.streams.deliver(self.scheduler.host_alive(host))

    def seen(self, host: Host) -> None:
        """The host sent something: it is alive (a message on a stream does not make it choosable again as a parent
        children could not reach: its heartbeat does, once an interval)."""
        host.last_seen = self.clock()

    def leave(self, host_id: str) -> None:
        """Remove a host and its peers."""
        host = self.get(host_id)
        log.info("host left host=%s", host_id[:12])
        self.drop(host, NotFound("host left"))

    def sweep(self) -> None:
        """Drop hosts that missed their heartbeats, with their peers. A message on a SyncPieces stream counts as a
        heartbeat (a frozen host sends none), a stream merely open does not: gRPC's keepalive did not end the stream
        of a SIGSTOPped client within 50 s here, so a frozen host with a stream would never be dropped. Many hosts
        late at once are taken as this supernode being behind, and given longer (MASS_SHARE)."""
        usual = self.interval_ms() / 1000
        now = self.clock()
        hosts = list(self.scheduler.hosts.values())
        # each host's silence in its own intervals: the usual one, or the idle one it was told last (answer)
        missed = {host: (now - host.last_seen) / max(usual, host.beat_every) for host in hosts}
        late = sum(1 for m in missed.values() if m > MISSED_HEARTBEATS - 1)
        overdue = [host for host in hosts if missed[host] > MISSED_HEARTBEATS]
        many = self._many_late(late, len(hosts), MISSED_HEARTBEATS * usual)
        if self.behind:
            patience = MASS_PATIENCE * MISSED_HEARTBEATS
            spared = sum(1 for host in overdue if missed[host] <= patience)
            overdue = [host for host in overdue if missed[host] > patience]
            if not (many or spared):
                log.warning("few hosts late, none overdue spared: this supernode keeps up with heartbeats again")
                self.behind = False
        for host in overdue:
            log.warning("host dropped host=%s missed=%d heartbeats", host.host_id[:12], MISSED_HEARTBEATS)
            self.drop(host, NotFound("host missed its heartbeats"))

    def _many_late(self, late: int, hosts: int, limit: float) -> bool:
        """Many hosts missed a heartbeat at once (late: one interval before they are overdue): this supernode is
        behind from now, until few are late and no overdue host is spared (sweep)."""
        if hosts < MASS_MIN_HOSTS or late <= max(MASS_MIN_LATE, MASS_SHARE * hosts):
            return False
        quiet.warning(
            "mass-late",
            f"{late} of {hosts} hosts missed a heartbeat at once: taken as this supernode being behind, not as them "
            f"all gone; until none is overdue, a host goes after {MASS_PATIENCE * limit:.0f}s of silence",
        )
        self.behind = True
        return True

    def pardon(self) -> None:
        """The supernode itself did not run for a while (paused, starved of CPU): the heartbeats it missed meanwhile
        are its own fault, so every host starts a fresh heartbeat window (the in-process seed peer, which paused with
        it, above all)."""
        now = self.clock()
        for host in self.scheduler.hosts.values():
            host.last_seen = max(host.last_seen, now)

    def drop(self, host: Host, why: DandelionError) -> None:
        """Remove the host and its peers (their streams end with why); new readers for what they read."""
        sources = self.seed_peers.withdraw(host) if host.seed_peer else []
        for peer_id in list(host.peer_ids):
            self.streams.end(peer_id, why)
            peer = self.scheduler.peers.get(peer_id)
            if peer is not None and self.readers.forget(peer):
                sources.append(peer.task_id)
        self.streams.deliver(self.scheduler.remove_host(host))
        for tid in sources:
            self.readers.replace(tid)

    def open_orders(self, host_id: str) -> asyncio.Queue[SeedOrder | None]:
        """A seed peer opened its order stream (SeedTasks): the queue of the orders to send it."""
        host = self.get(host_id)
        if not host.seed_peer:
            raise FailedPrecondition(f"host {host_id[:12]} did not register as a seed peer (HostInfo.seed)")
        return self.seed_peers.open(host)

    def close_orders(self, host_id: str, queue: asyncio.Queue[SeedOrder | None]) -> None:
        """A seed peer's order stream ended: the seed peer is gone (it registers again if it is not), and its
        tasks go to the next seed peers at once rather than after its missed heartbeats."""
        if not self.seed_peers.close(host_id, queue):
            return
        host = self.scheduler.hosts.get(host_id)
        if host is not None:
            log.warning("seed peer's order stream ended host=%s addr=%s: dropping it", host_id[:12], host.address)
            self.drop(host, NotFound("the seed peer's order stream ended"))

    def _host(self, host_id: str) -> Host:
        host = self.scheduler.hosts.get(host_id)
        if host is None:
            raise NotFound(f"unknown host {host_id[:80]}")
        return host

    def get(self, host_id: str) -> Host:
        """A registered host; NotFound otherwise."""
        host = self.scheduler.hosts.get(host_id)
        if host is None:
            raise NotFound(f"unknown host {host_id[:80]}")
        return host
