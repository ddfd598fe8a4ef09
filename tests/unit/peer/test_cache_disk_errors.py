"""OSErrors of the cache disk outside piece writes (metadata, task creation, completion) and unexpected
exceptions: one line naming the cause and the cache directory, never a Python class name; nothing marked
complete that is not on disk as complete, nothing of a failed task left."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import LocalDiskError, LocalDiskFull
from peer.conductor import INTERNAL_ERROR, Conductor
from peer.context import PeerContext
from peer.storage import Storage, TaskStore

PIECE = 1024
_real_write_text = Path.write_text


def refuse_metadata(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Writes of meta.json.tmp get half written, then fail with code (as on a disk filling up meanwhile)."""

    def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if self.name.endswith(".tmp"):
            _real_write_text(self, data[: len(data) // 2])
            raise OSError(code, "refused")
        return _real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def on_disk(store: TaskStore) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((store.directory / "meta.json").read_text())
    return parsed


@pytest.mark.parametrize("prepared", [True, False], ids=["prepare_complete", "mark_complete"])
def test_full_disk_at_completion_leaves_the_content_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prepared: bool
) -> None:
    storage = Storage(tmp_path)
    store = storage.create("t", "u", "", 2 * PIECE, PIECE)
    for number in range(2):
        store.write_piece(number, [b"x" * PIECE])
    refuse_metadata(monkeypatch, errno.ENOSPC)
    with pytest.raises(LocalDiskFull) as caught:
        store.prepare_complete() if prepared else store.mark_complete()
    assert str(caught.value) == f"no space left on device in the cache directory {tmp_path.absolute()}"
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not store.complete and store.meta.data_mtime_ns == 0
    assert storage.get_complete("t") is None
    assert sorted(p.name for p in store.directory.iterdir()) == ["data", "meta.json", "pieces"]  # no .tmp
    assert on_disk(store)["complete"] is False
    monkeypatch.undo()
    store.prepare_complete()  # room again: the same store completes
    assert not store.complete and on_disk(store)["complete"] is False  # written, not in effect before the flush
    store.mark_complete()
    assert storage.get_complete("t") is store and on_disk(store)["complete"] is True
    assert on_disk(store)["data_mtime_ns"] == store.meta.data_mtime_ns != 0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.EDQUOT, "no space left on device in the cache directory {root} (needed 2048 bytes)"),
        (errno.EROFS, "the cache directory {root} is on a read-only file system"),
        (errno.EIO, "cannot write to the cache directory {root}: refused"),
    ],
)
def test_a_refused_task_creation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, message: str
) -> None:
    storage = Storage(tmp_path)
    refuse_metadata(monkeypatch, code)
    with pytest.raises(LocalDiskError) as caught:
        storage.create("t", "u", "", 2 * PIECE, PIECE)
    assert str(caught.value) == message.format(root=tmp_path.absolute())
    assert isinstance(caught.value, LocalDiskFull) == (code == errno.EDQUOT)
    assert storage.entries() == [] and list((tmp_path / "tasks").iterdir()) == []


def test_refused_length_and_shape_writes_name_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Storage(tmp_path)
    store = storage.create("t", "u", "", 4 * PIECE, PIECE)
    refuse_metadata(monkeypatch, errno.ENOSPC)
    with pytest.raises(LocalDiskFull, match="in the cache directory"):
        store.reshape(4 * PIECE, 2 * PIECE)
    assert (store.meta.content_length, store.meta.piece_size) == (4 * PIECE, PIECE)  # unchanged
    with pytest.raises(LocalDiskFull, match="in the cache directory"):
        store.set_length(3 * PIECE)
    storage.close()  # saving last-use times on a full disk is logged, not raised


async def test_an_unexpected_exception_is_one_line_without_a_class_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = PeerContext(Storage(tmp_path), None, cast(Any, None))
    conductor = Conductor(ctx, ContentRequest("http://127.0.0.1:9/f"), "t", False)

    async def broken() -> None:
        ctx.storage.create("t", "u", "", PIECE, PIECE)
        conductor.store = ctx.storage.get("t")
        assert conductor.store is not None
        conductor.store.pins += 1
        raise KeyError("piece_size")

    conductor._download = broken  # type: ignore[method-assign]
    await conductor.start()
    assert conductor.error is not None and str(conductor.error) == INTERNAL_ERROR
    assert "KeyError" not in str(conductor.error)
    assert ctx.storage.entries() == []  # the partial task is gone
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "KeyError" in caplog.text  # the class and traceback are logged, once
