"""The heartbeat sweep (supernode.hosts), with the clock injected and no network: a few silent hosts go after 3
missed intervals; many at once are taken as the supernode being behind and go only after MASS_PATIENCE times as
long, until none is overdue; a small fleet is never taken so. A message on a host's stream keeps it; only a
heartbeat offers it as a parent again. A host with no peer is told to beat IDLE_FACTOR times as seldom, and given
three of those."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dfcommon.content import ContentRequest
from supernode.config import SupernodeConfig
from supernode.hosts import IDLE_CAP_S, IDLE_FACTOR, MASS_MIN_HOSTS, MASS_PATIENCE, HostSpec
from supernode.streams import Beat
from supernode.swarm import Swarm

INTERVAL = 1.0  # seconds: a host is overdue after 3
INTERVAL_MS = int(INTERVAL * 1000)


class Clock:
    """A hand-driven clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fleet(tmp_path: Path, size: int) -> tuple[Swarm, Clock, list[str]]:
    clock = Clock()
    config = SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1", heartbeat_interval_ms=int(INTERVAL * 1000))
    swarm = Swarm(config, clock)
    specs = [HostSpec(f"h{n}", f"127.0.{n // 250}.{n % 250 + 1}", 9000, 4, "") for n in range(size)]
    hosts = [swarm.register_host(spec) for spec in specs]
    return swarm, clock, hosts


def silence(swarm: Swarm, clock: Clock, hosts: list[str], seconds: float, silent: set[str]) -> None:
    """Let seconds pass in steps of half an interval, every host but the silent ones beating, sweeping each step."""
    for _ in range(int(seconds / (INTERVAL / 2))):
        clock.now += INTERVAL / 2
        for host_id in hosts:
            if host_id not in silent and host_id in swarm.scheduler.hosts:
                swarm.heartbeat(host_id)
        swarm.hosts.sweep()


def test_a_few_silent_hosts_go_after_three_intervals(tmp_path: Path) -> None:
    swarm, clock, hosts = fleet(tmp_path, 100)
    silent = set(hosts[:5])  # 5%
    silence(swarm, clock, hosts, 3 * INTERVAL, silent)
    assert silent <= set(swarm.scheduler.hosts)
    silence(swarm, clock, hosts, INTERVAL, silent)
    assert not silent & set(swarm.scheduler.hosts) and len(swarm.scheduler.hosts) == 95


def test_many_silent_at_once_are_kept_until_the_supernode_must_be_caught_up(tmp_path: Path) -> None:
    """A third of the hosts silent at once: not dropped after 3 intervals, nor 20; after 30 (MASS_PATIENCE x 3)."""
    assert MASS_PATIENCE == 10
    swarm, clock, hosts = fleet(tmp_path, 90)
    silent = set(hosts[:30])
    silence(swarm, clock, hosts, 20 * INTERVAL, silent)
    assert len(swarm.scheduler.hosts) == 90
    silence(swarm, clock, hosts, 10.5 * INTERVAL, silent)
    assert set(swarm.scheduler.hosts) == set(hosts[30:])


def test_a_late_host_of_many_late_ones_that_beats_again_stays(tmp_path: Path) -> None:
    """The supernode behind: half the hosts' heartbeats wait 10 s; once they land, those hosts simply stay."""
    swarm, clock, hosts = fleet(tmp_path, 60)
    late = set(hosts[::2])
    silence(swarm, clock, hosts, 10 * INTERVAL, late)
    silence(swarm, clock, hosts, 2 * INTERVAL, set())
    assert len(swarm.scheduler.hosts) == 60


def test_the_supernode_is_behind_until_no_host_is_overdue(tmp_path: Path) -> None:
    """100 of 400 hosts late: all kept; 97 catch up, 3 stay silent: still behind, kept until silent 30 intervals
    (MASS_PATIENCE x 3); then gone, and the supernode keeps up again."""
    swarm, clock, hosts = fleet(tmp_path, 400)
    silence(swarm, clock, hosts, 5 * INTERVAL, set(hosts[:100]))
    assert len(swarm.scheduler.hosts) == 400 and swarm.hosts.behind
    silence(swarm, clock, hosts, 20 * INTERVAL, set(hosts[:3]))
    assert len(swarm.scheduler.hosts) == 400 and swarm.hosts.behind
    silence(swarm, clock, hosts, 5.5 * INTERVAL, set(hosts[:3]))
    assert set(swarm.scheduler.hosts) == set(hosts[3:]) and not swarm.hosts.behind


@pytest.mark.parametrize("size", [2, MASS_MIN_HOSTS - 1])
def test_a_small_fleet_loses_its_silent_hosts_after_three_intervals_however_many(tmp_path: Path, size: int) -> None:
    swarm, clock, hosts = fleet(tmp_path, size)
    silent = set(hosts[: size // 2 + 1])
    silence(swarm, clock, hosts, 3.5 * INTERVAL, silent)
    assert set(swarm.scheduler.hosts) == set(hosts) - silent


async def test_a_stream_message_keeps_a_host_alive_but_only_a_heartbeat_makes_it_a_parent_again(tmp_path: Path) -> None:
    """Children could not reach the host (unreachable): its reports on its stream keep it from being dropped, but
    only its heartbeat (here on the stream, answered with the interval) offers it as a parent again."""
    swarm, clock, (host_id,) = fleet(tmp_path, 1)
    digest = "sha256:" + hashlib.sha256(b"layer").hexdigest()
    _, peer = await swarm.register_task(host_id, ContentRequest(url=f"http://o/v2/a/blobs/{digest}", digest=digest))
    outbox = swarm.open_stream(peer.peer_id, 4, [])
    host = swarm.scheduler.hosts[host_id]
    host.unreachable = True
    clock.now += 2.5 * INTERVAL
    swarm.stream_update(peer.peer_id, outbox, 4, [])
    assert host.last_seen == clock.now and host.unreachable
    clock.now += 2.5 * INTERVAL
    swarm.hosts.sweep()
    assert host_id in swarm.scheduler.hosts  # 2.5 intervals since its last message
    swarm.stream_update(peer.peer_id, outbox, 0, [], heartbeat=True)
    assert not host.unreachable
    answers = [outbox.get_nowait() for _ in range(outbox.qsize())]
    assert Beat(INTERVAL_MS) in answers


def test_an_idle_host_is_told_to_beat_seldom_and_given_three_of_its_intervals(tmp_path: Path) -> None:
    """Its heartbeat is answered with IDLE_FACTOR intervals; silent after that, it stays for three of them (not three
    usual intervals) and then goes."""
    swarm, clock, (host_id,) = fleet(tmp_path, 1)
    assert swarm.heartbeat(host_id) == IDLE_FACTOR * INTERVAL_MS
    idle = IDLE_FACTOR * INTERVAL
    clock.now += 3 * idle - INTERVAL / 2
    swarm.hosts.sweep()
    assert host_id in swarm.scheduler.hosts
    clock.now += INTERVAL
    swarm.hosts.sweep()
    assert host_id not in swarm.scheduler.hosts


async def test_a_host_with_a_peer_is_told_the_usual_interval_once_it_beats(tmp_path: Path) -> None:
    """Told the idle interval, then a download here: it keeps the three idle intervals it was told until it beats;
    its heartbeat (on its stream) is answered with the usual interval, and from then three of those are what it has."""
    swarm, clock, (host_id,) = fleet(tmp_path, 1)
    assert swarm.heartbeat(host_id) == IDLE_FACTOR * INTERVAL_MS
    digest = "sha256:" + hashlib.sha256(b"layer").hexdigest()
    _, peer = await swarm.register_task(host_id, ContentRequest(url=f"http://o/v2/a/blobs/{digest}", digest=digest))
    outbox = swarm.open_stream(peer.peer_id, 4, [])
    clock.now += 3 * IDLE_FACTOR * INTERVAL - INTERVAL / 2
    swarm.hosts.sweep()
    assert host_id in swarm.scheduler.hosts
    swarm.stream_update(peer.peer_id, outbox, 0, [], heartbeat=True)
    assert Beat(INTERVAL_MS) in [outbox.get_nowait() for _ in range(outbox.qsize())]
    assert swarm.heartbeat(host_id) == INTERVAL_MS  # a call as well: it has a peer here
    clock.now += 3.5 * INTERVAL
    swarm.hosts.sweep()
    assert host_id not in swarm.scheduler.hosts


@pytest.mark.parametrize(("usual_s", "idle_s"), [(1.0, IDLE_FACTOR * 1.0), (20.0, IDLE_CAP_S), (100.0, 100.0)])
def test_the_idle_interval_is_capped_but_never_below_the_usual_one(
    tmp_path: Path, usual_s: float, idle_s: float
) -> None:
    config = SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1", heartbeat_interval_ms=int(usual_s * 1000))
    assert Swarm(config, Clock()).hosts.idle_interval_ms() == int(idle_s * 1000)


def test_many_idle_hosts_silent_for_three_usual_intervals_are_not_late(tmp_path: Path) -> None:
    """Idle hosts beat seldom by design: their silence between beats does not make the supernode think itself
    behind, and none is dropped."""
    swarm, clock, hosts = fleet(tmp_path, 100)
    for host_id in hosts:
        swarm.heartbeat(host_id)
    clock.now += 2 * IDLE_FACTOR * INTERVAL
    swarm.hosts.sweep()
    assert len(swarm.scheduler.hosts) == 100 and not swarm.hosts.behind
