"""The bound arithmetic of bench/scale_bench.py: Kumar-Ross and the bound of today's seed design."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from swarm_bounds import kumar_ross, mbit, reader_design, seed_design, seed_peer_design

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


def test_reader_design_is_limited_by_the_readers_uplink() -> None:
    # h1 reads the origin at 100 but every byte the 7 others get leaves h1's 50 Mbit/s uplink at least once (F/50);
    # their 7F come from 8 uplinks of 50 (7F/400), less.
    bound = reader_design(F, 8, mbit(100), [mbit(50)] * 8)
    assert bound.limit == "F/min(u_s,u_readers)"
    assert bound.seconds == pytest.approx(F / mbit(50))


def test_several_readers_leave_the_hosts_uplinks_as_the_limit() -> None:
    # 4 readers at 50 take the origin's 100 in full (F/100); the 7 others' 7F come from 8 uplinks of 50: 7F/400.
    bound = reader_design(F, 8, mbit(100), [mbit(50)] * 8, readers=4)
    assert bound.limit == "(N-1)*F/sum u_host"
    assert bound.seconds == pytest.approx(7 * F / mbit(400))


def test_reader_design_with_a_fast_reader_is_limited_by_the_sum_of_uplinks() -> None:
    # With equal uplinks F/u_1 always wins ((N-1)/N < 1); a reader at 200 leaves the others' 7F to 550 in all.
    bound = reader_design(F, 8, mbit(100), [mbit(200)] + [mbit(50)] * 7)
    assert bound.limit == "(N-1)*F/sum u_host"
    assert bound.seconds == pytest.approx(7 * F / mbit(550))


def test_reader_design_one_host_is_its_own_fetch() -> None:
    bound = reader_design(F, 1, mbit(100), [mbit(50)])
    assert bound.limit == "F/u_s"
    assert bound.seconds == pytest.approx(F / mbit(100))


def test_seed_peer_design_eight_hosts_is_the_uplinks_without_the_origin() -> None:
    # One seed peer and 8 hosts at 50 Mbit/s, origin 100 Mbit/s, nothing read by the hosts: 8F/(9*50 Mbit/s)
    # = 4.77 s; Kumar-Ross, which counts the origin among the uploaders, gives 3.90 s.
    bound = seed_peer_design(F, 8, mbit(100), [mbit(50)], [mbit(50)] * 8, readers=4)
    assert bound.limit == "(N*F-R)/(sum u_seed+sum u_host)"
    assert bound.seconds == pytest.approx(8 * F / mbit(450))
    assert round(bound.seconds, 2) == 4.77
    assert bound.seconds > kumar_ross(F, 8, mbit(100), [mbit(50)] * 9).seconds


def test_seed_peer_design_counts_what_hosts_read_from_the_origin() -> None:
    # Hosts that read half of the file from the origin need that half from nobody's uplink.
    bound = seed_peer_design(F, 8, mbit(100), [mbit(50)], [mbit(50)] * 8, readers=4, hosts_read=F // 2)
    assert bound.seconds == pytest.approx((8 * F - F // 2) / mbit(450))
    # More than F read counts as F (a piece read twice does not save a second copy).
    more = seed_peer_design(F, 8, mbit(100), [mbit(50)], [mbit(50)] * 8, readers=4, hosts_read=3 * F)
    assert more.seconds == pytest.approx(7 * F / mbit(450))


def test_seed_peer_design_one_reader_is_capped_by_the_seed_peer_uplink() -> None:
    # The seed peer alone reads (no host may take over): every byte leaves its 50 Mbit/s uplink at least once.
    bound = seed_peer_design(F, 2, mbit(100), [mbit(50)], [mbit(50)] * 2, readers=1)
    assert bound.limit == "F/min(u_s,u_readers)"
    assert bound.seconds == pytest.approx(F / mbit(50))
    # With hosts taking over parts, the origin's uplink is the limit of that term.
    split = seed_peer_design(F, 2, mbit(100), [mbit(50)], [mbit(50)] * 2, readers=4)
    assert split.seconds == pytest.approx(max(F / mbit(100), 2 * F / mbit(150)))


def test_seed_peer_design_needs_a_seed_peer() -> None:
    with pytest.raises(ValueError):
        seed_peer_design(F, 2, mbit(100), [], [mbit(50)] * 2)
