"""How a SyncPieces stream's queued events become messages: a heartbeat's answer and a renewed grant ride on the
batch's last message, and cost a message of their own only when nothing else goes out."""

from __future__ import annotations

from dandelion.common.v1 import common_pb2

from supernode.rpc.scheduler_service import _messages
from supernode.streams import Beat, GoToSource, RenewGrant, StreamEnd


def test_a_heartbeat_answer_rides_on_the_message_going_out() -> None:
    out = _messages([GoToSource("no parent"), Beat(1200)])
    assert len(out) == 1
    message, end = out[0]
    assert end is None and message is not None
    assert message.back_to_source.reason == "no parent" and message.heartbeat_interval_ms == 1200


def test_a_heartbeat_answer_alone_is_a_message_of_its_own() -> None:
    (message, end), *rest = _messages([Beat(1200)])
    assert not rest and end is None and message is not None
    assert message.heartbeat_interval_ms == 1200 and message.WhichOneof("event") is None


def test_a_renewed_grant_goes_out_with_the_batch() -> None:
    grant = common_pb2.AccessGrant(claims=b"c", signature=b"s")
    (message, _), *rest = _messages([RenewGrant()], grant)
    assert not rest and message is not None and message.grant == grant
    (message, _), *rest = _messages([GoToSource("x"), RenewGrant(), Beat(5)], grant)
    assert not rest and message is not None
    assert message.grant == grant and message.heartbeat_interval_ms == 5 and message.back_to_source.reason == "x"


def test_an_end_stops_the_batch() -> None:
    end = StreamEnd()
    assert _messages([Beat(1200), end, GoToSource("x")]) == [(None, end)]
