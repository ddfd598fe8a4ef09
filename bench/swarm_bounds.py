"""Lower bounds on the time to give N hosts one file: the Kumar-Ross bound and the bound today's design allows.

All rates are bytes/s, sizes bytes, results seconds. A downlink of None is unshaped (its term is 0).

Kumar-Ross (P2P file distribution, one server holding the file, helpers allowed):
    max(F/u_s, F/d_min, N*F/(u_s + sum u_i))
u_s is the origin's uplink; the sum runs over every host that can upload, seed peers (today the supernode's
seed) included: they add upload capacity without asking for a copy themselves.

With the seed reading the origin (`--origin-fetch seed`, and content without a digest) ("seed design"):
the origin has one reader, the seed, and every host gets every piece from the seed or from another host. So
- the origin uploads to the seed alone: its bandwidth counts only through the seed, and every byte enters the
  swarm through the seed's uplink at least once: F/min(u_s, u_seed);
- the hosts' N*F bytes come from the seed and the hosts, not the origin: N*F/(u_seed + sum u_hosts);
- F/d_min as above.
With a seed uplink below the origin's, the first term caps small swarms (1 host: F/u_seed, not F/u_s).

With peers reading the origin (`--origin-fetch peer`, the default for content with a digest) ("reader design"):
up to k hosts (supernode.read_split.MAX_READERS = 4) read disjoint parts of the origin, each piece once, and offer
each piece as they write it; the seed holds nothing. Every byte enters through the origin's uplink once and leaves
some reader's uplink at least once, and the other (N-1)*F bytes the hosts need come from the hosts' uplinks:
    max(F/min(u_s, u_1 + ... + u_k), (N-1)*F/sum u_hosts, F/d_min)
with N = 1 it is the host's own fetch, F/u_s (and F/d_min). The origin sending each byte once is what sets it
above Kumar-Ross, which lets the origin serve many hosts.

With seed peers (`dfdaemon --seed`, `--origin-fetch auto` or `seed`) ("seed-peer design"): one seed peer is ordered
to read the task, and up to k-1 hosts may take over half of what is left of a long read (k readers in all, each
piece read once). Every byte enters through the origin's uplink once and leaves some reader's uplink at least once;
the hosts need N*F bytes less what they read from the origin themselves (R, from the origin's log), and those come
from the seed peers' and the hosts' uplinks:
    max(F/min(u_s, u_seed + u_1 + ... + u_(k-1)), (N*F - R)/(sum u_seed + sum u_hosts), F/d_min)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    """A lower bound in seconds and the name of the term that sets it."""

    seconds: float
    limit: str


def _largest(terms: dict[str, float]) -> Bound:
    name = max(terms, key=lambda key: terms[key])
    return Bound(terms[name], name)


def kumar_ross(
    size: int, n_hosts: int, origin_up: float, uploaders_up: Sequence[float], down_min: float | None = None
) -> Bound:
    """max(F/u_s, F/d_min, N*F/(u_s + sum u_i)) over the uploaders (hosts and seed peers)."""
    _check(size, n_hosts, [origin_up, *uploaders_up], down_min)
    return _largest(
        {
            "F/u_s": size / origin_up,
            "F/d_min": size / down_min if down_min else 0.0,
            "N*F/(u_s+sum u_i)": n_hosts * size / (origin_up + sum(uploaders_up)),
        }
    )


def seed_design(
    size: int,
    n_hosts: int,
    origin_up: float,
    seed_up: float,
    hosts_up: Sequence[float],
    down_min: float | None = None,
) -> Bound:
    """The bound of one origin reader (the seed) through whose uplink every piece enters the swarm."""
    _check(size, n_hosts, [origin_up, seed_up, *hosts_up], down_min)
    return _largest(
        {
            "F/min(u_s,u_seed)": size / min(origin_up, seed_up),
            "F/d_min": size / down_min if down_min else 0.0,
            "N*F/(u_seed+sum u_host)": n_hosts * size / (seed_up + sum(hosts_up)),
        }
    )


def reader_design(
    size: int,
    n_hosts: int,
    origin_up: float,
    hosts_up: Sequence[float],
    down_min: float | None = None,
    readers: int = 1,
) -> Bound:
    """The bound when up to `readers` hosts read disjoint parts of the origin and offer each piece to the others as
    they write it."""
    _check(size, n_hosts, [origin_up, *hosts_up], down_min)
    if not hosts_up:
        raise ValueError("the reader needs an uplink")
    down = size / down_min if down_min else 0.0
    if n_hosts == 1:
        return _largest({"F/u_s": size / origin_up, "F/d_min": down})
    reading = sum(hosts_up[: max(1, min(readers, n_hosts))])
    return _largest(
        {
            "F/min(u_s,u_readers)": size / min(origin_up, reading),
            "F/d_min": down,
            "(N-1)*F/sum u_host": (n_hosts - 1) * size / sum(hosts_up),
        }
    )


def seed_peer_design(
    size: int,
    n_hosts: int,
    origin_up: float,
    seeds_up: Sequence[float],
    hosts_up: Sequence[float],
    down_min: float | None = None,
    readers: int = 1,
    hosts_read: int = 0,
) -> Bound:
    """The bound when the first seed peer reads the origin, up to readers-1 hosts take over parts of it, and the
    hosts read hosts_read bytes from the origin themselves (the rest of the N*F they need comes from the uplinks of
    the seed peers and the hosts)."""
    _check(size, n_hosts, [origin_up, *seeds_up, *hosts_up], down_min)
    if not seeds_up:
        raise ValueError("the seed-peer design needs a seed peer")
    reading = seeds_up[0] + sum(hosts_up[: max(0, min(readers - 1, n_hosts))])
    need = max(0, n_hosts * size - min(hosts_read, size))
    return _largest(
        {
            "F/min(u_s,u_readers)": size / min(origin_up, reading),
            "F/d_min": size / down_min if down_min else 0.0,
            "(N*F-R)/(sum u_seed+sum u_host)": need / (sum(seeds_up) + sum(hosts_up)),
        }
    )


def mbit(rate_mbit: float) -> float:
    """Bytes/s of a rate in Mbit/s (tc's mbit is 10^6 bit/s)."""
    return rate_mbit * 1e6 / 8


def _check(size: int, n_hosts: int, rates: Sequence[float], down_min: float | None) -> None:
    if size <= 0 or n_hosts <= 0:
        raise ValueError(f"size and host count must be positive, got {size} and {n_hosts}")
    if any(rate <= 0 for rate in rates) or (down_min is not None and down_min <= 0):
        raise ValueError("every rate must be positive")
