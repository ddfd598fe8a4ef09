"""Peer and task states move only through the transition table of supernode/resource/states.py."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import grpc
import pytest

from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.states import PEER_MOVES, TASK_MOVES, InvalidTransition, move_peer, move_task
from supernode.resource.task import Task, TaskState

SRC = Path(__file__).resolve().parents[3] / "src" / "supernode"


def peer_in(state: PeerState) -> Peer:
    return Peer("p" * 32, "t" * 64, Host("h", "h", "127.0.0.2", 65000, 4, "", 0.0), state=state)


def task_in(state: TaskState) -> Task:
    return Task("t" * 64, "http://o/x", "", state=state)


@pytest.mark.parametrize("start,to", list(itertools.product(PeerState, PeerState)))
def test_every_peer_move_is_in_the_table_or_refused(start: PeerState, to: PeerState) -> None:
    peer = peer_in(start)
    if (start, to) in PEER_MOVES:
        move_peer(peer, to)
        assert peer.state is to
    else:
        with pytest.raises(InvalidTransition) as raised:
            move_peer(peer, to)
        assert peer.state is start, "a refused move changes nothing"
        assert raised.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert f"from {start.name} to {to.name}" in str(raised.value)


@pytest.mark.parametrize("start,to", list(itertools.product(TaskState, TaskState)))
def test_every_task_move_is_in_the_table_or_refused(start: TaskState, to: TaskState) -> None:
    task = task_in(start)
    if (start, to) in TASK_MOVES:
        move_task(task, to)
        assert task.state is to
    else:
        with pytest.raises(InvalidTransition):
            move_task(task, to)
        assert task.state is start


@pytest.mark.parametrize(
    "start,to",
    [
        (PeerState.LEFT, PeerState.RUNNING),  # a left peer never comes back
        (PeerState.SUCCEEDED, PeerState.RUNNING),  # a finished peer is given nothing to fetch
        (PeerState.SUCCEEDED, PeerState.BACK_TO_SOURCE),  # nor the origin to read
        (PeerState.FAILED, PeerState.SUCCEEDED),  # a peer that gave up does not succeed without a new stream
        (PeerState.RUNNING, PeerState.RUNNING),
    ],
)
def test_meaningless_peer_moves_are_refused(start: PeerState, to: PeerState) -> None:
    assert (start, to) not in PEER_MOVES


def test_no_state_is_assigned_outside_the_table() -> None:
    """Every `x.state = ...` in the supernode's code is in states.py (constructors set the initial state)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "states.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = [t for target in node.targets for t in ast.walk(target)]
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            offenders += [
                f"{path.relative_to(SRC)}:{node.lineno}"
                for target in targets
                if isinstance(target, ast.Attribute) and target.attr == "state"
            ]
    assert not offenders, offenders
