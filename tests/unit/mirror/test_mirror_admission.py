"""The download gate: big blobs one at a time in arrival order while the admitted one runs fast, never idling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mirror.admission import START_GRACE_S, DownloadGate, GatedBody

MIB = 1 << 20
INTERVAL = 0.02  # real seconds between the first waiter's looks


class Clock:
    """The gate's notion of time, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_gate(clock: Clock) -> DownloadGate:
    return DownloadGate(busy_rate=10 * MIB, interval=INTERVAL, min_size=8 * MIB, clock=clock)


async def settle() -> None:
    await asyncio.sleep(INTERVAL * 5)


async def test_small_blobs_never_wait() -> None:
    gate = new_gate(Clock())
    first = await gate.admit(64 * MIB)
    assert first is not None
    assert await asyncio.wait_for(gate.admit(MIB), 0.5) is None  # an image config, while a layer runs
    assert gate.active == [first]


async def test_big_blobs_go_one_at_a_time_in_arrival_order_while_the_first_is_fast() -> None:
    clock = Clock()
    gate = new_gate(clock)
    first = await gate.admit(64 * MIB)
    assert first is not None
    order: list[str] = []

    async def download(name: str) -> None:
        ticket = await gate.admit(64 * MIB)
        order.append(name)
        await asyncio.sleep(INTERVAL)
        gate.release(ticket)

    second = asyncio.create_task(download("second"))
    await asyncio.sleep(0)
    third = asyncio.create_task(download("third"))
    for _ in range(10):  # the first keeps moving at 50 MiB/s of gate time: nobody else gets in
        clock.now += 0.1
        first.advance(5 * MIB)
        await asyncio.sleep(INTERVAL)
    assert order == []
    assert gate.waiting == 2
    gate.release(first)
    await asyncio.wait_for(asyncio.gather(second, third), 2)
    assert order == ["second", "third"]
    assert gate.active == []


async def test_the_next_goes_in_when_the_admitted_one_is_slow() -> None:
    """A download limited by the origin, the network or its client does not hold the host's others back."""
    clock = Clock()
    gate = new_gate(clock)
    first = await gate.admit(64 * MIB)
    assert first is not None
    clock.now += START_GRACE_S + 1  # past its start, moving 1 MiB/s
    first.advance(MIB)
    waiting = asyncio.create_task(gate.admit(64 * MIB))
    await settle()
    clock.now += 1
    first.advance(MIB)
    second = await asyncio.wait_for(waiting, 2)
    assert second is not None
    assert gate.active == [first, second]


async def test_a_download_just_admitted_counts_as_fast() -> None:
    clock = Clock()
    gate = new_gate(clock)
    await gate.admit(64 * MIB)  # no byte yet: it is still asking the swarm
    waiting = asyncio.create_task(gate.admit(64 * MIB))
    await settle()
    assert not waiting.done()
    clock.now += START_GRACE_S + 0.1  # still no byte: slow
    second = await asyncio.wait_for(waiting, 2)
    assert second is not None


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    clock = Clock()
    gate = new_gate(clock)
    first = await gate.admit(64 * MIB)
    quitter = asyncio.create_task(gate.admit(64 * MIB))
    await asyncio.sleep(0)
    patient = asyncio.create_task(gate.admit(64 * MIB))
    await settle()
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert gate.waiting == 1
    gate.release(first)
    assert await asyncio.wait_for(patient, 2) is not None


async def test_a_body_releases_its_ticket_at_its_end_and_when_closed_unstarted() -> None:
    gate = new_gate(Clock())

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 10
        yield b"y" * 5

    ticket = await gate.admit(64 * MIB)
    body = GatedBody(chunks(), lambda: False, gate, ticket)
    assert [chunk async for chunk in body] == [b"x" * 10, b"y" * 5]
    assert ticket is not None and ticket.moved == 15
    assert gate.active == []

    ticket = await gate.admit(64 * MIB)
    unstarted = GatedBody(chunks(), lambda: False, gate, ticket)
    await unstarted.aclose()  # the client went away before the body started
    assert gate.active == []


async def test_a_failing_body_releases_its_ticket() -> None:
    gate = new_gate(Clock())

    async def broken() -> AsyncIterator[bytes]:
        yield b"x"
        raise OSError("cut")

    body = GatedBody(broken(), lambda: False, gate, await gate.admit(64 * MIB))
    with pytest.raises(OSError, match="cut"):
        async for _ in body:
            pass
    assert gate.active == []


async def test_layers_a_manifest_named_go_in_its_order_whatever_order_they_are_asked_in() -> None:
    """docker asks for three layers at once in any order, and unpacks them in manifest order."""
    gate = new_gate(Clock())
    gate.expect(["sha256:l1", "sha256:l2", "sha256:l3"])
    first = await gate.admit(64 * MIB, "sha256:l1")
    order: list[str] = []

    async def download(digest: str) -> None:
        ticket = await gate.admit(64 * MIB, digest)
        order.append(digest)
        await asyncio.sleep(0)
        gate.release(ticket)

    third = asyncio.create_task(download("sha256:l3"))
    await asyncio.sleep(0)
    second = asyncio.create_task(download("sha256:l2"))
    await settle()
    gate.release(first)
    await asyncio.wait_for(asyncio.gather(second, third), 2)
    assert order == ["sha256:l2", "sha256:l3"]


async def test_the_next_goes_in_once_the_admitted_blob_is_downloaded() -> None:
    """What is left of a downloaded blob is read from disk at the client's pace: that is no reason to wait."""
    gate = new_gate(Clock())
    held = {"done": False}

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        held["done"] = True
        yield b"b"
        await asyncio.Event().wait()  # the client reads the rest slowly

    body = GatedBody(chunks(), lambda: held["done"], gate, await gate.admit(64 * MIB))
    waiting = asyncio.create_task(gate.admit(64 * MIB))
    assert await body.__anext__() == b"a"
    await settle()
    assert not waiting.done()
    assert await body.__anext__() == b"b"
    assert await asyncio.wait_for(waiting, 2) is not None
    await body.aclose()
    assert len(gate.active) == 1


async def test_a_turn_given_counts_as_active_at_once() -> None:
    """The waiter let in is active before its coroutine runs again, so another waiter's look cannot find the gate
    empty in between and go in too (a race that once let the third layer in before the second)."""
    gate = new_gate(Clock())
    first = await gate.admit(64 * MIB, "a")
    waiter = asyncio.create_task(gate.admit(64 * MIB, "b"))
    await settle()
    gate.release(first)
    assert len(gate.active) == 1 and gate.waiting == 0
    ticket = await asyncio.wait_for(waiter, 2)
    assert gate.active == [ticket]
