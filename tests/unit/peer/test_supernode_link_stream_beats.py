"""A heartbeat sent on a piece stream and not answered in time: the supernode is down only when it also sent
nothing else on that stream meanwhile (one that is behind its peers' reports answers late but still sends)."""

from __future__ import annotations

import asyncio

import pytest
from dandelion.scheduler.v1 import scheduler_pb2

from peer import scheduler_client
from peer.scheduler_client import SupernodeLink


class SilentCarrier:
    """A stream whose heartbeats are never answered; `talking` makes it send other messages meanwhile."""

    def __init__(self, talking: bool) -> None:
        self.talking = talking
        self.heard = 0.0

    async def beat(self) -> int | None:
        loop = asyncio.get_running_loop()
        while True:
            if self.talking:
                self.heard = loop.time()
            await asyncio.sleep(0.02)


def link_with(carrier: SilentCarrier) -> SupernodeLink:
    link = SupernodeLink("127.0.0.1:1", scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1))
    link.host_id, link.stream_heartbeats = "host-1", True
    link.carry(carrier)
    return link


@pytest.mark.parametrize(("talking", "up"), [(True, True), (False, False)])
async def test_an_unanswered_stream_heartbeat(monkeypatch: pytest.MonkeyPatch, talking: bool, up: bool) -> None:
    monkeypatch.setattr(scheduler_client, "CALL_TIMEOUT", 0.3)
    link = link_with(SilentCarrier(talking))
    assert await link._beat_on_stream()
    assert link.up is up
    assert (link.host_id == "host-1") is up  # marked down: it registers there again first
