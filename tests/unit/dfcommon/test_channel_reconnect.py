"""gRPC's own pause between reconnects never outlasts the project's back-offs that decide when a peer is tried again
(a call on a channel in that pause fails at once, so the longer of the two decides when a restarted supernode or
parent is used again)."""

from __future__ import annotations

import pytest

from dfcommon.backoff import BackoffPolicy
from dfcommon.channels import CHANNEL_OPTIONS, RECONNECT_MAX_MS
from peer.piece.health import PARENT_BACKOFF
from peer.scheduler_client import RECONNECT_BACKOFF
from peer.seed_role import RECONNECT

GRPC_JITTER = 0.2  # gRPC core's reconnect back-off jitter


def test_every_channel_caps_grpcs_reconnect_pause() -> None:
    assert dict(CHANNEL_OPTIONS)["grpc.max_reconnect_backoff_ms"] == RECONNECT_MAX_MS


@pytest.mark.parametrize(
    "policy", [RECONNECT_BACKOFF, RECONNECT, PARENT_BACKOFF], ids=["supernode link", "seed role", "parent"]
)
def test_grpcs_longest_pause_is_within_the_projects_back_off(policy: BackoffPolicy) -> None:
    assert policy.cap >= RECONNECT_MAX_MS / 1000 * (1 + GRPC_JITTER)
