"""What piece failures mean for a download: parents' cool-downs, giving up on the swarm, local faults, the
cache's room and dfget's deadline (injected clocks, no network)."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from dfcommon.backoff import BackoffPolicy
from peer.deadline import BASE_S, FLOOR_RATE, Deadline, DeadlineExceeded
from peer.piece import failures
from peer.piece.health import LOCAL_FAILURE_LIMIT, UNREACHABLE_GIVE_UP_S, SwarmHealth, local_fault
from peer.piece.model import PieceOutcome
from peer.storage import Storage
from peer.storage import store as store_module
from peer.storage.space import CacheDiskError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failed(parent: str, failure: int) -> PieceOutcome:
    return PieceOutcome(0, parent, False, failure)


def health(clock: Clock) -> SwarmHealth:
    return SwarmHealth(BackoffPolicy(base=1.0, cap=4.0, jitter=0.0), clock=clock, rand=lambda: 0.0)


def test_a_failing_parent_cools_down_longer_each_time_and_a_success_forgives_it() -> None:
    clock = Clock()
    h = health(clock)
    waits = []
    for _ in range(4):
        h.record(failed("p", failures.PARENT_BUSY))
        h.record(failed("p", failures.PARENT_BUSY))  # the same call's other pieces: counted once
        assert not h.ready("p") and h.ready("other")
        waits.append(h.next_ready_in())
        clock.now += waits[-1] or 0
        assert h.ready("p")
    assert waits == [1.0, 2.0, 4.0, 4.0]
    assert h.parent_failures == 4
    h.record(PieceOutcome(1, "p", True, size=10))
    h.record(failed("p", failures.PARENT_BUSY))
    assert h.next_ready_in() == 1.0


@pytest.mark.parametrize(
    ("failure", "after", "gives_up"),
    [
        (failures.PARENT_UNAVAILABLE, UNREACHABLE_GIVE_UP_S, "no parent could be reached"),
        (failures.TIMEOUT, UNREACHABLE_GIVE_UP_S, "no parent could be reached"),
        (failures.PARENT_UNAVAILABLE, UNREACHABLE_GIVE_UP_S - 0.1, ""),
        (failures.PARENT_BUSY, UNREACHABLE_GIVE_UP_S, ""),  # busy is not gone: wait for the stall timeout
        (failures.PARENT_BUSY, 30.1, "no piece arrived from the swarm for 30s"),
        (failures.LOCAL, 10.0, ""),
    ],
)
def test_when_the_swarm_is_given_up(failure: int, after: float, gives_up: str) -> None:
    clock = Clock()
    h = health(clock)
    h.record(failed("p", failure))
    clock.now += after
    assert h.give_up_reason(stall_timeout=30.0).startswith(gives_up)
    if gives_up == "":
        assert h.give_up_reason(stall_timeout=30.0) == ""


def test_a_piece_that_arrives_resets_the_clocks() -> None:
    clock = Clock()
    h = health(clock)
    h.record(failed("p", failures.PARENT_UNAVAILABLE))
    clock.now += UNREACHABLE_GIVE_UP_S - 1
    h.record(PieceOutcome(1, "q", True, size=1))
    clock.now += 2
    assert h.give_up_reason(stall_timeout=30.0) == ""


def test_local_faults_fail_the_download_naming_the_directory(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    store = storage.create("t", "u", "", 4096, 1024)
    h = health(Clock())
    eio = PieceOutcome(0, "p", False, failures.LOCAL, local_errno=errno.EIO)
    for _ in range(LOCAL_FAILURE_LIMIT - 1):
        h.record(eio)
        local_fault(storage, store, eio, h)
    h.record(PieceOutcome(1, "p", False, failures.LOCAL))  # the rest of a call that failed: not counted
    local_fault(storage, store, PieceOutcome(1, "p", False, failures.LOCAL), h)
    h.record(eio)
    with pytest.raises(CacheDiskError, match=f"cannot write to the cache directory {tmp_path}: Input/output error"):
        local_fault(storage, store, eio, h)


def test_a_full_disk_evicts_least_recently_used_then_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = 4096
    storage = Storage(tmp_path)
    capacity = 4 * block  # a disk of four blocks, free = capacity - what the entries take
    monkeypatch.setattr(
        store_module, "free_bytes", lambda _p: capacity - sum(e.disk_usage() for e in storage.entries())
    )
    entries = []
    for index, used in enumerate((30.0, 10.0, 20.0)):
        entry = storage.create(f"old{index}", "u", "", block, block)
        entry.write_piece(0, [b"x" * block])
        entry.mark_complete()
        entry.meta.last_used = used
        entries.append(entry)
    entries[2].pins = 1  # being served: never evicted
    storage.create("new", "u", "", 2 * block, block)  # one block free: the least recently used entry goes
    assert sorted(s.task_id for s in storage.entries()) == ["new", "old0", "old2"]
    with pytest.raises(CacheDiskError, match=r"no space left on device in the cache directory .* \(needed 36864 bytes"):
        storage.create("huge", "u", "", 9 * block, block)  # the two blocks promised to "new" count as taken
    assert sorted(s.task_id for s in storage.entries()) == ["new", "old2"]  # old0 was evicted trying


@pytest.mark.parametrize(
    ("fixed", "length", "limit"),
    [
        (None, -1, BASE_S),
        (None, 100 * FLOOR_RATE, BASE_S + 100),
        (2.0, 100 * FLOOR_RATE, 2.0),
        (0.0, 100, 0.0),
    ],
)
def test_deadline_limit(fixed: float | None, length: int, limit: float) -> None:
    deadline = Deadline(fixed, clock=Clock())
    deadline.saw_length(length)
    assert deadline.limit() == limit
    assert deadline.remaining() == (None if limit == 0 else limit)


def test_deadline_cancels_the_work() -> None:
    cancelled = []

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        with pytest.raises(DeadlineExceeded, match=r"timed out after 0s \(--timeout\)"):
            await Deadline(0.05).run(forever(), lambda: -1)

    asyncio.run(main())
    assert cancelled == [True]


def test_news_from_the_supernode_restarts_the_stall_timeout_only() -> None:
    clock = Clock()
    h = health(clock)
    clock.now += 29
    h.news()  # e.g. the seed still copies the content from its first peer
    clock.now += 29
    assert h.give_up_reason(stall_timeout=30.0) == ""
    h.record(failed("p", failures.PARENT_UNAVAILABLE))
    clock.now += UNREACHABLE_GIVE_UP_S
    h.news()
    assert h.give_up_reason(stall_timeout=30.0).startswith("no parent could be reached")
