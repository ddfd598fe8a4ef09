"""The bound arithmetic of bench/scale_bench.py: Kumar-Ross and the bound of today's seed design."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from swarm_bounds import first_peer_design, kumar_ross, mbit, seed_design

F = 32 << 20  # 33.55 MB


def test_mbit_is_ten_to_the_sixth_bits() -> None:
    assert mbit(100) == 12.5e6


def test_kumar_ross_eight_hosts_counts_the_seed_among_uploaders() -> None:
    # The figure: 8 hosts and the seed at 50 Mbit/s, origin 100 Mbit/s: 8F/(100+9*50 Mbit/s) = 3.90 s.
    bound = kumar_ross(F, 8, mbit(100), [mbit(50)] * 9)
    assert bound.limit == "N*F/(u_s+sum u_i)"
    assert bound.seconds == pytest.approx(8 * F / mbit(550))
    assert round(bound.seconds, 2) == 3.90


def test_kumar_ross_one_host_is_the_origin_uplink() -> None:
    bound = kumar_ross(F, 1, mbit(100), [mbit(50)] * 2)
    assert bound.limit == "F/u_s"
    assert bound.seconds == pytest.approx(F / mbit(100))


def test_kumar_ross_slow_downlink_limits() -> None:
    bound = kumar_ross(F, 1, mbit(100), [mbit(50)], down_min=mbit(10))
    assert bound.limit == "F/d_min"
    assert bound.seconds == pytest.approx(F / mbit(10))


def test_seed_design_small_swarm_is_capped_by_the_seed_uplink() -> None:
    # One reader at 50 Mbit/s: 1 host needs F/u_seed = 5.37 s where the origin alone allows 2.68 s.
    bound = seed_design(F, 1, mbit(100), mbit(50), [mbit(50)])
    assert bound.limit == "F/min(u_s,u_seed)"
    assert bound.seconds == pytest.approx(F / mbit(50))
    assert bound.seconds > kumar_ross(F, 1, mbit(100), [mbit(50)] * 2).seconds


def test_seed_design_equal_uplinks_stay_at_the_seed_uplink_at_any_n() -> None:
    # N*F/((N+1)*u) < F/u: with the seed as fast as a host, its uplink is the limit however many hosts join.
    for n in (4, 8, 16, 64):
        bound = seed_design(F, n, mbit(100), mbit(50), [mbit(50)] * n)
        assert bound.limit == "F/min(u_s,u_seed)"
        assert bound.seconds == pytest.approx(F / mbit(50))


def test_seed_design_large_swarm_leaves_out_the_origin_uplink() -> None:
    bound = seed_design(F, 16, mbit(100), mbit(200), [mbit(50)] * 16)
    assert bound.limit == "N*F/(u_seed+sum u_host)"
    assert bound.seconds == pytest.approx(16 * F / mbit(1000))


def test_seed_design_fast_hosts_meets_the_origin_term() -> None:
    bound = seed_design(F, 8, mbit(100), mbit(200), [mbit(200)] * 8)
    assert bound.limit == "F/min(u_s,u_seed)"
    assert bound.seconds == pytest.approx(kumar_ross(F, 8, mbit(100), [mbit(200)] * 9).seconds)


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        kumar_ross(F, 4, 0.0, [mbit(50)])
    with pytest.raises(ValueError, match="positive"):
        seed_design(F, 0, mbit(100), mbit(50), [])


def test_first_peer_design_adds_the_copy_and_the_spread() -> None:
    # h1 reads the origin at 100 while the seed copies it through h1's 50 Mbit/s uplink (F/50), then the seed and
    # h1 serve 7 more hosts: max(F/100, 7F/(50+8*50)) = 7F/450.
    bound = first_peer_design(F, 8, mbit(100), mbit(50), [mbit(50)] * 8)
    assert bound.limit == "F/min(u_s,u_1) + (N-1)*F/(u_seed+sum u_host)"
    assert bound.seconds == pytest.approx(F / mbit(50) + 7 * F / mbit(450))


def test_first_peer_design_two_hosts_is_limited_by_the_two_holders() -> None:
    bound = first_peer_design(F, 2, mbit(100), mbit(50), [mbit(50)] * 2)
    assert bound.limit == "F/min(u_s,u_1) + F/(u_seed+u_1)"
    assert bound.seconds == pytest.approx(F / mbit(50) + F / mbit(100))


def test_first_peer_design_one_host_is_its_own_fetch() -> None:
    bound = first_peer_design(F, 1, mbit(100), mbit(50), [mbit(50)])
    assert bound.limit == "F/u_s"
    assert bound.seconds == pytest.approx(F / mbit(100))
