"""tests/fixtures/metrics.py reads a /metrics page the way the tests that use it expect."""

from __future__ import annotations

from fixtures.metrics import samples, value

PAGE = """# HELP dandelion_heartbeats_total Heartbeats received.
# TYPE dandelion_heartbeats_total counter
dandelion_heartbeats_total{component="supernode",via="call"} 3.0
dandelion_heartbeats_total{component="supernode",via="stream"} 14.0
dandelion_limit_refusals_total{component="supernode",resource="peers_per_task"} 1.0
dandelion_limit_refusals_total{component="supernode",resource="tasks"} 2.0
dandelion_access_decisions_total{component="supernode",outcome="unreachable, \\"x\\""} 5.0

process_open_fds 12.0
"""


def test_samples_keeps_every_sample_with_its_labels() -> None:
    found = samples(PAGE)
    assert found['dandelion_heartbeats_total{component="supernode",via="stream"}'] == 14.0
    assert found["process_open_fds"] == 12.0
    assert len(found) == 6  # no comment or blank line taken for a sample


def test_value_matches_a_subset_of_the_labels() -> None:
    assert value(PAGE, "dandelion_heartbeats_total", via="stream") == 14.0
    assert value(PAGE, "dandelion_heartbeats_total") == 17.0  # every series of the name, summed
    assert value(PAGE, "dandelion_limit_refusals_total", resource="tasks", component="supernode") == 2.0
    assert value(PAGE, "dandelion_access_decisions_total", outcome='unreachable, \\"x\\"') == 5.0


def test_value_of_a_series_not_counted_yet_is_zero() -> None:
    assert value(PAGE, "dandelion_heartbeats_total", via="pigeon") == 0.0
    assert value(PAGE, "dandelion_heartbeats") == 0.0  # a prefix of a name is another name
