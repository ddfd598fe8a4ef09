"""The one transition table of peer and task states: every state change goes through move_peer or move_task.

A move that is not in the table raises InvalidTransition (FAILED_PRECONDITION to a remote caller) and changes
nothing: a left peer never comes back, a finished peer is never given pieces or the origin to read again.
"""

from __future__ import annotations

import grpc

from dfcommon.errors import DandelionError
from supernode.resource.peer import Peer, PeerState
from supernode.resource.task import Task, TaskState

_P = PeerState
_T = TaskState

# (from, to) -> what the move means.
PEER_MOVES: dict[tuple[PeerState, PeerState], str] = {
    (_P.RUNNING, _P.BACK_TO_SOURCE): "told to fetch the origin itself, or to read it for the swarm",
    (_P.RUNNING, _P.SUCCEEDED): "holds every piece, or reported success",
    (_P.RUNNING, _P.FAILED): "reported failure",
    (_P.RUNNING, _P.LEFT): "left, or its host did",
    (_P.BACK_TO_SOURCE, _P.RUNNING): "opened a new stream: fetches from the swarm again",
    (_P.BACK_TO_SOURCE, _P.SUCCEEDED): "reported success",
    (_P.BACK_TO_SOURCE, _P.FAILED): "reported failure",
    (_P.BACK_TO_SOURCE, _P.LEFT): "left, or its host did",
    (_P.SUCCEEDED, _P.SUCCEEDED): "reported the success the supernode saw already",
    (_P.SUCCEEDED, _P.FAILED): "its content did not match the digest after all",
    (_P.SUCCEEDED, _P.LEFT): "left, or its host did",
    (_P.FAILED, _P.RUNNING): "opened a new stream: tries again",
    (_P.FAILED, _P.LEFT): "left, or its host did",
}

TASK_MOVES: dict[tuple[TaskState, TaskState], str] = {
    (_T.PENDING, _T.RUNNING): "the origin answered the task's reader",
    (_T.RUNNING, _T.RUNNING): "the origin answered again (a new reader)",
    (_T.RUNNING, _T.FAILED): "its content did not match the digest although every piece matched",
    (_T.FAILED, _T.PENDING): "starts over",
    (_T.FAILED, _T.RUNNING): "the origin answered a reader that was under way when the task failed",
    (_T.FAILED, _T.FAILED): "failed again (another consumer's content did not match the digest)",
}


class InvalidTransition(DandelionError):
    """A state change the transition table refuses."""

    code = grpc.StatusCode.FAILED_PRECONDITION


def move_peer(peer: Peer, to: PeerState) -> None:
    """Change the peer's state; InvalidTransition (nothing changed) when the table has no such move."""
    if (peer.state, to) not in PEER_MOVES:
        raise InvalidTransition(f"peer {peer.peer_id[:12]} cannot go from {peer.state.name} to {to.name}")
    peer.state = to


def move_task(task: Task, to: TaskState) -> None:
    """Change the task's state; InvalidTransition (nothing changed) when the table has no such move."""
    if (task.state, to) not in TASK_MOVES:
        raise InvalidTransition(f"task {task.task_id[:12]} cannot go from {task.state.name} to {to.name}")
    task.state = to
