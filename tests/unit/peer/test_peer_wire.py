"""Payload framing of DownloadPieces and Download messages without protobuf copies."""

from __future__ import annotations

import os

import pytest
from dandelion.peer.v1 import peer_pb2

from dfcommon.wire import decode_with_payload, encode_with_payload, split_payload


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 1 << 20])
def test_encoded_piece_chunk_is_the_same_message_to_protobuf(size: int) -> None:
    data = os.urandom(size)
    raw = encode_with_payload(peer_pb2.DownloadPiecesResponse(piece_number=70000, offset=1 << 20), 3, data)
    parsed = peer_pb2.DownloadPiecesResponse.FromString(raw)
    assert (parsed.piece_number, parsed.offset, parsed.data) == (70000, 1 << 20, data)


def test_download_response_with_negative_length_round_trips() -> None:
    head = peer_pb2.DownloadResponse(task_id="t" * 64, content_length=-1, completed_length=5, offset=9)
    raw = encode_with_payload(head, 5, b"payload")
    message, payload = decode_with_payload(raw, peer_pb2.DownloadResponse, 5)
    assert bytes(payload) == b"payload" and message == head and not message.data


def test_decodes_what_protobuf_serialized_with_the_payload_anywhere() -> None:
    data = os.urandom(5000)
    raw = peer_pb2.DownloadResponse(task_id="x", offset=3, data=data, done=True).SerializeToString()
    message, payload = decode_with_payload(raw, peer_pb2.DownloadResponse, 5)
    assert bytes(payload) == data and message.task_id == "x" and message.offset == 3 and message.done
    # the data field first, then other fields: the rest keeps them
    moved = encode_with_payload(peer_pb2.DownloadResponse(), 5, data) + b"\x20\x07"
    message, payload = decode_with_payload(moved, peer_pb2.DownloadResponse, 5)
    assert bytes(payload) == data and message.offset == 7


def test_last_payload_wins_like_protobuf() -> None:
    raw = encode_with_payload(peer_pb2.DownloadPiecesResponse(), 3, b"old") + encode_with_payload(
        peer_pb2.DownloadPiecesResponse(piece_number=2), 3, b"new"
    )
    message, payload = decode_with_payload(raw, peer_pb2.DownloadPiecesResponse, 3)
    assert bytes(payload) == peer_pb2.DownloadPiecesResponse.FromString(raw).data == b"new"
    assert message.piece_number == 2


def test_unknown_fields_are_skipped_and_kept() -> None:
    raw = b"\x08\x05" + b"\x79" + b"\x00" * 8 + b"\x7d" + b"\x00" * 4 + b"\x1a\x02ok"
    message, payload = decode_with_payload(raw, peer_pb2.DownloadPiecesResponse, 3)
    assert message.piece_number == 5 and bytes(payload) == b"ok"


@pytest.mark.parametrize(
    "raw",
    [b"\x1a\x05abc", b"\x08", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x0b", b"\x79\x00", b"\x12\x01"],
)
def test_malformed_input_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_with_payload(raw, peer_pb2.DownloadPiecesResponse, 3)


def test_payload_is_a_view_not_a_copy() -> None:
    raw = encode_with_payload(peer_pb2.DownloadPiecesResponse(piece_number=1), 3, b"abc")
    rest, payload = split_payload(raw, 3)
    assert payload.obj is raw and rest == b"\x08\x01"
