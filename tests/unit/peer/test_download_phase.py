"""The download's phases move only as the transition table allows."""

from __future__ import annotations

import pytest

from peer.download.phase import TRANSITIONS, DownloadPhase, InvalidMove, Phase

PATHS = [
    ("cache hit", [Phase.CACHED, Phase.DONE]),
    ("from peers", [Phase.SWARM, Phase.VERIFYING, Phase.DONE]),
    ("no supernode", [Phase.SOURCING, Phase.VERIFYING, Phase.DONE]),
    ("reader for the swarm", [Phase.SWARM, Phase.READING, Phase.VERIFYING, Phase.DONE]),
    ("reader whose stream broke", [Phase.SWARM, Phase.READING, Phase.SOURCING, Phase.VERIFYING, Phase.DONE]),
    ("reader replaced after registering again", [Phase.SWARM, Phase.READING, Phase.READING, Phase.SWARM]),
    ("swarm gave up", [Phase.SWARM, Phase.SWARM, Phase.SOURCING, Phase.VERIFYING, Phase.FAILED]),
    ("resumed whole, no supernode", [Phase.VERIFYING, Phase.DONE]),
]


@pytest.mark.parametrize(("name", "path"), PATHS, ids=[name for name, _ in PATHS])
def test_the_paths_a_download_takes_are_allowed(name: str, path: list[Phase]) -> None:
    phase = DownloadPhase("t" * 64)
    for step in path:
        phase.move(step)
    assert phase.current is path[-1]


REFUSED = [
    (Phase.STARTING, Phase.DONE),  # never done without verifying
    (Phase.SWARM, Phase.DONE),
    (Phase.SOURCING, Phase.SWARM),  # once on its own, never back in the swarm
    (Phase.VERIFYING, Phase.SWARM),
    (Phase.DONE, Phase.FAILED),
    (Phase.FAILED, Phase.SOURCING),
    (Phase.CACHED, Phase.SWARM),
]


@pytest.mark.parametrize(("start", "to"), REFUSED, ids=[f"{a.value}->{b.value}" for a, b in REFUSED])
def test_other_moves_are_refused(start: Phase, to: Phase) -> None:
    phase = DownloadPhase("t" * 64)
    phase.current = start
    with pytest.raises(InvalidMove, match=f"from {start.value} to {to.value}"):
        phase.move(to)
    assert phase.current is start


def test_every_phase_has_a_row_and_only_the_ends_are_final() -> None:
    assert set(TRANSITIONS) == set(Phase)
    assert {p for p, targets in TRANSITIONS.items() if not targets} == {Phase.DONE, Phase.FAILED}
    assert all(Phase.FAILED in TRANSITIONS[p] for p in Phase if p not in (Phase.DONE, Phase.FAILED))
