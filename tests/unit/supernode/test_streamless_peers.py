"""Peers without a stream: one whose stream never opens (its registration's answer was lost) no longer reads for
the swarm after a while and is forgotten in the end; a reader whose stream closed and stays closed no longer reads
either. Driven by hand (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_supernode_source_peer import (
    LENGTH,
    PIECE,
    REQUEST,
    Clock,
    assigned,
    drain,
    host,
    new_swarm,
    offered,
    piece_digest,
    reads_for_swarm,
)

from dfcommon.errors import NotFound
from supernode.readers import OriginAnswer
from supernode.resource.peer import PeerState
from supernode.resource.piece import PieceReport
from supernode.streamless import PEER_UNOPENED_S, READER_STREAMLESS_S
from supernode.streams import GoToSource


async def test_a_reader_whose_stream_never_opens_is_replaced_by_a_connected_peer(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, lost = await swarm.register_task(host(swarm, 2), REQUEST)  # its answer never reached its host
    assert task.source_peer_id == lost.peer_id
    _, waiting = await swarm.register_task(host(swarm, 3), REQUEST)
    box = swarm.open_stream(waiting.peer_id, 16, [])
    drain(box)

    clock.now += READER_STREAMLESS_S - 1
    swarm.streamless.sweep(clock())
    assert task.source_peer_id == lost.peer_id and not drain(box), "a stream may still be on its way"

    clock.now += 1
    swarm.streamless.sweep(clock())
    assert task.source_peer_id == waiting.peer_id
    two_hosts = 512 << 10  # no reader answered yet: the base for a fleet of two hosts (base_for_fleet)
    assert drain(box) == [reads_for_swarm((), two_hosts)], "the connected peer reads the origin for the swarm"
    swarm.stream_update(waiting.peer_id, box, 0, [offered(0)], OriginAnswer(LENGTH, PIECE))

    # The lost peer's stream opens after all: a plain peer, given the piece the new reader stored.
    late = swarm.open_stream(lost.peer_id, 16, [])
    events = drain(late)
    assert lost.state is PeerState.RUNNING and not any(isinstance(e, GoToSource) for e in events)
    assert assigned(events) == [(0, waiting.peer_id, piece_digest(0))]


async def test_a_reader_without_a_stream_is_read_for_by_the_next_peer_when_none_is_connected(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, _ = await swarm.register_task(host(swarm, 2), REQUEST)
    clock.now += READER_STREAMLESS_S
    swarm.streamless.sweep(clock())
    assert not task.source_peer_id
    _, next_peer = await swarm.register_task(host(swarm, 3), REQUEST)
    assert task.source_peer_id == next_peer.peer_id and next_peer.state is PeerState.BACK_TO_SOURCE


async def test_a_peer_whose_stream_never_opens_is_forgotten_and_one_that_opened_is_kept(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    swarm.open_stream(reader.peer_id, 16, [])
    _, lost = await swarm.register_task(host(swarm, 3), REQUEST)
    clock.now += PEER_UNOPENED_S - 1
    swarm.streamless.sweep(clock())
    assert lost.peer_id in task.peers and task.source_peer_id == reader.peer_id, "a reader with a stream stays"

    clock.now += 1
    swarm.streamless.sweep(clock())
    assert lost.peer_id not in task.peers and reader.peer_id in task.peers
    assert not swarm.streamless.unopened
    with pytest.raises(NotFound):  # a stream hopelessly late: its host registers the task again
        swarm.open_stream(lost.peer_id, 16, [])


async def test_peers_that_left_before_opening_are_no_longer_awaited(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    _, peer = await swarm.register_task(host(swarm, 2), REQUEST)
    swarm.leave_task(peer.peer_id)
    clock.now += READER_STREAMLESS_S
    swarm.streamless.sweep(clock())
    assert not swarm.streamless.unopened


async def test_a_reader_whose_stream_closed_hands_what_is_unread_to_a_connected_peer(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(0)], OriginAnswer(LENGTH, PIECE))
    _, waiting = await swarm.register_task(host(swarm, 3), REQUEST)
    box = swarm.open_stream(waiting.peer_id, 16, [])
    swarm.stream_update(waiting.peer_id, box, 0, [PieceReport(0, reader.peer_id, True)])
    drain(box)

    swarm.close_stream(reader.peer_id, reader_box)  # its host lives on
    clock.now += READER_STREAMLESS_S - 1
    swarm.streamless.sweep(clock())
    assert task.source_peer_id == reader.peer_id, "a stream may be opened again at once"
    clock.now += 1
    swarm.streamless.sweep(clock())
    assert not task.source_peer_id and task.range_readers == {waiting.peer_id: ((1, 2),)}
    assert reads_for_swarm(((1, 2),)) in drain(box)
    assert reader.peer_id in task.peers, "it still serves the piece it holds"


async def test_a_reader_that_opens_its_stream_again_or_finished_keeps_its_part(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.close_stream(reader.peer_id, box)
    box = swarm.open_stream(reader.peer_id, 16, [])  # the stream was opened again in time
    clock.now += READER_STREAMLESS_S
    swarm.streamless.sweep(clock())
    assert task.source_peer_id == reader.peer_id

    swarm.stream_update(reader.peer_id, box, 0, [offered(0), offered(1), offered(2)], OriginAnswer(LENGTH, PIECE))
    swarm.report_result(reader.peer_id, True, "", 0, LENGTH, 1)
    swarm.close_stream(reader.peer_id, box)
    clock.now += READER_STREAMLESS_S
    swarm.streamless.sweep(clock())
    assert task.source_peer_id == reader.peer_id and reader.state is PeerState.SUCCEEDED
    assert not swarm.streamless.closed
