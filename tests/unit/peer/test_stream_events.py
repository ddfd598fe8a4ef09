"""SyncPieces messages become plain events (peer.download.stream_events; only it and the link touch them)."""

from __future__ import annotations

from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2

from peer.download.stream_events import Assigned, TaskNews, ToSource, event_of, task_news
from peer.piece.model import Parent, PieceSpec

DIGEST = "blake3:" + "ab" * 32


def test_a_reader_order_carries_the_digest_algorithm() -> None:
    message = scheduler_pb2.SyncPiecesResponse(
        back_to_source=scheduler_pb2.BackToSource(reason="r", offer_pieces=True, piece_digest="sha256")
    )
    assert event_of(message) == ToSource("r", True, "sha256")
    plain = scheduler_pb2.SyncPiecesResponse(back_to_source=scheduler_pb2.BackToSource(reason="gone"))
    assert event_of(plain) == ToSource("gone", False, "")


def test_assignments_become_parents_and_piece_specs_with_usable_digests_only() -> None:
    good = scheduler_pb2.PieceAssignment(
        piece=common_pb2.PieceInfo(number=1, offset=4, size=4, digest=DIGEST),
        parent=common_pb2.PeerAddress(peer_id="p", ip="127.0.0.2", port=9),
    )
    odd = scheduler_pb2.PieceAssignment(
        piece=common_pb2.PieceInfo(number=2, offset=8, size=4, digest="md5:00"),
        parent=common_pb2.PeerAddress(peer_id="p", ip="127.0.0.2", port=9),
    )
    message = scheduler_pb2.SyncPiecesResponse(assignments=scheduler_pb2.PieceAssignments(assignments=[good, odd]))
    parent = Parent("p", "127.0.0.2", 9)
    assert event_of(message) == Assigned([(parent, PieceSpec(1, 4, 4, DIGEST)), (parent, PieceSpec(2, 8, 4, ""))])


def test_task_news_says_the_shape_and_whether_the_task_failed() -> None:
    running = scheduler_pb2.TaskInfo(content_length=10, piece_size=4, state=common_pb2.TASK_STATE_RUNNING, digest="d")
    assert task_news(running) == TaskNews(10, 4, False, "") and task_news(running).shaped
    failed = scheduler_pb2.TaskInfo(content_length=-1, state=common_pb2.TASK_STATE_FAILED, error="boom")
    news = task_news(failed)
    assert news.failed and news.error == "boom" and not news.shaped
