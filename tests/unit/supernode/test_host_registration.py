"""Registering hosts (supernode.hosts, resource.registry), no network: a host that registers again at its address
replaces the one there, a host that left frees its address, and a registration looks up its address instead of
comparing every host held (10,000 hosts registering at once made that O(N^2): 0.9 ms each at 10,000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfcommon.errors import NotFound
from supernode.config import SupernodeConfig
from supernode.hosts import HostSpec
from supernode.resource.host import Host
from supernode.swarm import Swarm


class CountedHosts(dict[str, Host]):
    """The registry's hosts, counting the walks over all of them."""

    walks = 0

    def values(self):  # type: ignore[no-untyped-def]
        CountedHosts.walks += 1
        return super().values()

    def items(self):  # type: ignore[no-untyped-def]
        CountedHosts.walks += 1
        return super().items()

    def __iter__(self):  # type: ignore[no-untyped-def]
        CountedHosts.walks += 1
        return super().__iter__()


def supernode(tmp_path: Path) -> Swarm:
    return Swarm(SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1"))


def spec(n: int, port: int = 9000) -> HostSpec:
    return HostSpec(f"h{n}", f"127.0.{n // 250}.{n % 250 + 1}", port, 4, "")


def test_a_host_registering_again_at_its_address_replaces_the_one_there(tmp_path: Path) -> None:
    swarm = supernode(tmp_path)
    first = swarm.register_host(spec(1))
    neighbour = swarm.register_host(spec(1, port=9001))  # same ip, another port: another host
    again = swarm.register_host(spec(1))
    assert again != first and set(swarm.scheduler.hosts) == {neighbour, again}
    assert swarm.scheduler.registry.host_at("127.0.0.2", 9000) is swarm.scheduler.hosts[again]
    with pytest.raises(NotFound):
        swarm.heartbeat(first)
    swarm.heartbeat(again)


def test_a_host_that_left_frees_its_address(tmp_path: Path) -> None:
    swarm = supernode(tmp_path)
    gone = swarm.register_host(spec(1))
    swarm.leave_host(gone)
    assert swarm.scheduler.registry.host_at("127.0.0.2", 9000) is None
    back = swarm.register_host(spec(1))
    assert set(swarm.scheduler.hosts) == {back}
    assert swarm.scheduler.registry.host_at("127.0.0.2", 9000) is swarm.scheduler.hosts[back]


def test_an_old_host_dropped_late_leaves_the_new_one_at_its_address(tmp_path: Path) -> None:
    """The index entry belongs to whichever host holds the address now: removing a host no longer there keeps it."""
    swarm = supernode(tmp_path)
    old = swarm.scheduler.hosts[swarm.register_host(spec(1))]
    new = swarm.scheduler.hosts[swarm.register_host(spec(1))]
    swarm.scheduler.remove_host(old)
    assert swarm.scheduler.registry.host_at("127.0.0.2", 9000) is new


def test_registering_does_not_walk_every_host_held(tmp_path: Path) -> None:
    swarm = supernode(tmp_path)
    counted = CountedHosts()
    swarm.scheduler.registry.hosts = swarm.scheduler.hosts = counted
    CountedHosts.walks = 0
    ids = [swarm.register_host(spec(n)) for n in range(2000)]
    ids.append(swarm.register_host(spec(7)))  # once more at an address held
    assert len(counted) == 2000 and ids[7] not in counted
    assert CountedHosts.walks == 0
