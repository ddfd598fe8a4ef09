"""The web view without a network: what the sampler derives from the scheduler (bytes/s per host, origin share),
the JSON the page polls, and who the guard lets in (the Starlette app through its test client)."""

from __future__ import annotations

import httpx
import pytest
from swarm_builder import PIECE, Swarm

from dfcommon.inspection import InspectionPolicy
from supernode.resource.peer import PeerState
from supernode.resource.piece import PieceReport
from supernode.resource.task import Task
from supernode.web.access import common_names
from supernode.web.app import build_app
from supernode.web.sampler import Sampler, piece_bytes
from supernode.web.snapshot import swarm_view


def fetched(swarm: Swarm, name: str, numbers: range, parent: str = "seed") -> None:
    """The peer fetched these pieces from parent: assigned, then reported."""
    peer = swarm.peers[name]
    swarm.scheduler.connect(peer, len(numbers))
    swarm.scheduler.report(peer, [PieceReport(n, parent, True) for n in numbers])


def test_rates_and_origin_share_follow_the_pieces() -> None:
    swarm = Swarm(8)  # the seed read all 8 pieces from the origin
    swarm.add("a")
    sampler = Sampler(swarm.scheduler, swarm.clock)
    sampler.sample()
    assert sampler.flow(swarm.task.task_id).origin_bytes == 8 * PIECE
    assert sampler.rates("host-a") == (0.0, 0.0)

    swarm.clock.now += 1
    fetched(swarm, "a", range(4))
    sampler.sample()
    assert sampler.rates("host-a") == (4 * PIECE, 0.0)
    assert sampler.rates("seed-host") == (0.0, 4 * PIECE)
    flow = sampler.flow(swarm.task.task_id)
    assert (flow.origin_bytes, flow.peer_bytes) == (8 * PIECE, 4 * PIECE)

    swarm.clock.now += 1
    sampler.sample()  # nothing new: the average over the last two seconds halves
    assert sampler.rates("host-a") == (2 * PIECE, 0.0)

    # a peer sent back to the origin: what it gets next counts as read from the origin
    swarm.add("b")
    sampler.sample()
    swarm.scheduler.set_state(swarm.peers["b"], PeerState.BACK_TO_SOURCE)
    swarm.scheduler.report(swarm.peers["b"], [PieceReport(n, "", True) for n in range(8)])
    swarm.clock.now += 1
    sampler.sample()
    flow = sampler.flow(swarm.task.task_id)
    assert (flow.origin_bytes, flow.peer_bytes) == (16 * PIECE, 4 * PIECE)
    assert flow.origin_share == pytest.approx(0.8)

    view = swarm_view(swarm.scheduler, sampler)
    (task,) = view["tasks"]
    assert task["origin_share"] == 0.8
    peers = {p["peer_id"]: p for p in task["peers"]}
    assert task["peers"][0]["is_seed"]
    assert (peers["a"]["strip"], peers["a"]["pieces"], peers["a"]["percent"]) == ("####....", 4, 50.0)
    assert peers["b"]["strip"] == "#" * 8 and peers["b"]["state"] == "BACK_TO_SOURCE"
    hosts = {h["host_id"]: h for h in view["hosts"]}
    assert hosts["seed-host"]["is_seed"] and hosts["host-a"]["peers"] == 1


def test_piece_bytes_counts_a_short_last_piece() -> None:
    task = Task("t", "u", "", content_length=2 * PIECE + 100, piece_size=PIECE, piece_count=3)
    assert piece_bytes(task, 0b011) == 2 * PIECE
    assert piece_bytes(task, 0b111) == 2 * PIECE + 100
    assert piece_bytes(task, 0) == 0


def test_common_names_from_a_peer_certificate() -> None:
    cert = {"subject": ((("organizationName", "d"),), (("commonName", "dandelion-admin"),))}
    assert common_names(cert) == ["dandelion-admin"]
    assert common_names(None) == []


@pytest.mark.parametrize(
    ("policy", "client", "names", "status"),
    [
        pytest.param(InspectionPolicy(), ("127.0.0.1", 4000), [], 200, id="loopback"),
        pytest.param(InspectionPolicy(), ("::1", 4000), [], 200, id="loopback-v6"),
        pytest.param(InspectionPolicy(), ("10.1.2.3", 4000), [], 403, id="remote"),
        pytest.param(InspectionPolicy(open=True), ("10.1.2.3", 4000), [], 200, id="remote-open"),
        pytest.param(InspectionPolicy(tls=True), ("10.1.2.3", 4000), ["dandelion-admin"], 200, id="tls-admin"),
        pytest.param(InspectionPolicy(tls=True), ("127.0.0.1", 4000), ["node"], 403, id="tls-member-even-local"),
        pytest.param(InspectionPolicy(tls=True, open=True), ("10.1.2.3", 4000), ["node"], 200, id="tls-open"),
    ],
)
async def test_guard(policy: InspectionPolicy, client: tuple[str, int], names: list[str], status: int) -> None:
    app = build_app(lambda: {"tasks": [], "tasks_total": 0, "hosts": []}, policy, {client: names})
    transport = httpx.ASGITransport(app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://supernode") as http:
        for path in ("/", "/api/swarm"):
            reply = await http.get(path)
            assert reply.status_code == status, reply.text
    if status == 403:
        assert reply.text.startswith("inspection ")
    else:
        assert reply.json()["tasks"] == []
