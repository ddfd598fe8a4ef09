"""The soak's own checks, on made-up inputs: fault selection flags, slot gauges, budgets, error clarity."""

from __future__ import annotations

import pytest

from .budget import BudgetTerms, check, direct_downloads
from .config import FAULT_KINDS, SoakConfig, config_from, parse_faults
from .invariants import slot_gauges
from .workload import Outcome, clear_error


def test_fault_selection_flags_and_environment() -> None:
    """all/none/lists/removals parse; unknown kinds are refused; flags win over the environment."""
    assert parse_faults("all") == FAULT_KINDS
    assert parse_faults("none") == ()
    assert parse_faults("kill_peer,garbage") == ("kill_peer", "garbage")
    assert "fill_disk" not in parse_faults("-fill_disk")
    with pytest.raises(ValueError, match="unknown fault kinds"):
        SoakConfig(faults=("kill_everything",))
    env = {"DANDELION_SOAK_SECONDS": "30", "DANDELION_SOAK_SEED": "5", "DANDELION_SOAK_FAULTS": "garbage"}
    config = config_from([], env)
    assert (config.seconds, config.seed, config.faults) == (30.0, 5, ("garbage",))
    assert config_from(["--minutes", "2", "--seed", "9"], env).seconds == 120.0
    assert config_from(["--fault-gap", "0.5,2", "--parallel", "6"], {}).fault_gap == (0.5, 2.0)
    assert SoakConfig().seed != 0  # a seed is always chosen and printed


def test_slot_gauges_are_usage_gauges_only() -> None:
    """Gauges named *slots*/*inflight* are picked with their labels; capacities and counters are not."""
    text = "\n".join(
        [
            "# TYPE dandelion_upload_slots_in_use gauge",
            'dandelion_upload_slots_in_use{component="seed"} 2.0',
            "# TYPE dandelion_upload_slots_capacity gauge",
            "dandelion_upload_slots_capacity 8.0",
            "# TYPE dandelion_mirror_inflight gauge",
            "dandelion_mirror_inflight 0.0",
            "# TYPE dandelion_slots_total counter",
            "dandelion_slots_total 5.0",
            "# TYPE dandelion_active_tasks gauge",
            "dandelion_active_tasks 3.0",
            "",
        ]
    )
    assert slot_gauges(text) == {
        "dandelion_upload_slots_in_use{component=seed}": 2.0,
        "dandelion_mirror_inflight{}": 0.0,
    }


def test_budget_counts_faults_and_direct_downloads() -> None:
    """The formula: 1 + P*S + O + K + F + D(f) copies; one byte more is a violation."""
    terms = BudgetTerms(peers=4, scheduler_kills=2, source_restarts=1, peer_kills=3, fills=1)
    assert terms.copies(direct_downloads=2) == 1 + 8 + 1 + 3 + 1 + 2
    sizes = {"/a": 100, "/b": 10}
    report, problems = check({"/a": 1400, "/b": 151}, sizes, terms, {"/b": 1}, "file")
    assert report["/a"]["budget"] == 14 and not [p for p in problems if "/a" in p]
    assert len(problems) == 1 and "/b" in problems[0]
    runs = [
        Outcome("dfget", "/a", "peer-1", "faults", 10.2, 1.0, "ok"),
        Outcome("dfget", "/a", "peer-2", "faults", 10.2, 1.0, "ok"),
        Outcome("skopeo", "/a", "peer-1", "faults", 10.2, 1.0, "ok"),
    ]
    assert direct_downloads(runs, [("peer-1", 9.0, 11.0)]) == {"/a": 1}


def test_clear_error_wants_one_line_without_traceback() -> None:
    """A one-line 'dfget: ...' is clear; nothing, or a traceback, is not."""
    assert clear_error("dfget: origin answered 404\n", "dfget:") == "dfget: origin answered 404"
    assert clear_error("", "dfget:") is None
    assert clear_error("Traceback (most recent call last):\n  ...\nKeyError: 1\n", "dfget:") is None
    assert clear_error("panic: runtime error\ngoroutine 1 [running]:\n", "") is None
