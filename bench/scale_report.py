"""What bench/scale_bench.py prints: one run's figures as it ends, and the medians per configuration at the end."""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass, field

from scale_testbed import PREFIX, Testbed
from swarm_bounds import Bound
from uplink_timeline import format_rates

MiB = 1 << 20
NOTES = (
    "KR bound = max(F/u_s, F/d_min, N*F/(u_s+sum u_i)), the seed peers counted among the uploaders (the",
    "  supernode's in-process seed peer when it read the origin).",
    "design bound = today's design on the path the run took (seed peer read the origin: F/min(u_s, u_readers),",
    "  (N*F - hosts' origin bytes)/(sum u_seed + sum u_host); peers read",
    "  it: up to 4 disjoint parts, then the rest), see bench/swarm_bounds.py.",
    "uplink bytes = tx_bytes of each namespace's eth0 (TCP ACKs included: a host that serves nobody shows ~0.01 F);",
    "  tbf counts Ethernet framing, so one transfer reaches about 0.95 of a link's rate. sn = the supernode,",
    "  s1.. = seed peers (dfdaemon --seed), h1.. = hosts.",
    "last registered = seconds from the start until the supernode logged the last peer's registration (dfget and",
    "  dfdaemon start-up). CPU busy = the whole machine (other work included); swarm cores = CPU-s of the",
    "  supernode, the dfdaemons (seed peers included) and the dfgets / makespan. makespan and p50/p90 include",
    "  failed dfgets' exit times.",
    "after 1st reg. = makespan minus the first registration: the swarm's time without dfget's start-up.",
    "vs 0 seeds = makespan / the makespan at the same N without seed peers (--compare).",
)


@dataclass
class RunResult:
    """One run at one N: the swarm's and the direct curls' figures and the bounds."""

    n: int
    size: int
    run: int
    seed_peers: int  # seed peers (dfdaemon --seed) taking the supernode's orders during the run
    makespan: float
    p50: float
    p90: float
    per_host: dict[str, float]
    uplink: dict[str, int]  # bytes each namespace sent on eth0 during the swarm run (origin, sn, seed peers, hosts)
    origin_readers: dict[str, int]  # bytes nginx sent for the file during the swarm run, by client address
    direct_makespan: float
    direct_origin: int  # bytes the origin sent on its uplink during the N curls
    kumar_ross: Bound
    design: Bound
    design_path: str  # who read the origin (from nginx's log): "seed peer" (its own or the supernode's) or "peers"
    cpu_busy: float  # share of all cores busy during the swarm run (every process on the machine)
    swarm_cpu: float  # CPU seconds of the supernode, the dfdaemons and the dfgets during the swarm run
    dfget_cpu: float  # of which the dfgets' (their start-up included)
    supernode_cpu: float  # and the supernode's (its in-process seed peer included)
    readers: int  # peers the supernode chose to read the origin for the swarm during the run
    registered: tuple[float, float]  # seconds after the start when the first and the last peer registered
    failed: dict[str, str]  # hosts whose dfget failed: exit status and the end of its stderr
    # --timeline: MB/s each namespace sent per sampling interval, stamped with seconds after the start
    timeline: list[tuple[float, dict[str, float]]] = field(default_factory=list)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def short(netns: str) -> str:
    """h3 for dlscale-h3."""
    return netns.removeprefix(PREFIX)


def print_run(result: RunResult, bed: Testbed) -> None:
    """The figures of one run, as it ends."""
    f = result.size
    shares = "  ".join(f"{short(key)} {value / f:.2f}" for key, value in result.uplink.items())
    by_ip = {host.ip: short(host.netns) for host in bed.everyone()}
    readers = ", ".join(f"{by_ip.get(ip, ip)} {sent / f:.2f}" for ip, sent in sorted(result.origin_readers.items()))
    kr, design = result.kumar_ross, result.design
    print(
        f"N={result.n} seed peers {result.seed_peers} run {result.run + 1}: makespan {result.makespan:.2f} s "
        f"(p50 {result.p50:.2f}, p90 {result.p90:.2f}); {result.n} direct curls {result.direct_makespan:.2f} s; "
        f"peers registered {result.registered[0]:.2f}-{result.registered[1]:.2f} s after the start (dfget start-up)\n"
        f"  Kumar-Ross bound {kr.seconds:.2f} s [{kr.limit}] -> {result.makespan / kr.seconds:.2f}x; "
        f"design bound ({result.design_path} read the origin) {design.seconds:.2f} s [{design.limit}] -> "
        f"{result.makespan / design.seconds:.2f}x\n"
        + "".join(f"  FAILED {short(netns)}: {why}\n" for netns, why in result.failed.items())
        + f"  uplink bytes / F: {shares}\n"
        f"  origin read by (nginx bytes / F): {readers or 'nobody'}; readers chosen {result.readers}; "
        f"machine CPU busy {result.cpu_busy:.0%} of {os.cpu_count()} cores, the swarm's processes "
        f"{result.swarm_cpu:.1f} CPU-s ({result.swarm_cpu / result.makespan:.2f} cores; "
        f"the dfgets {result.dfget_cpu:.1f}, the supernode {result.supernode_cpu:.1f})",
        flush=True,
    )
    if result.timeline:
        print(format_rates(result.timeline, {host.netns: short(host.netns) for host in bed.everyone()}), flush=True)


def _share(run: RunResult, kind: str) -> float:
    """Bytes the namespaces of one kind (s: seed peers, h: hosts) sent during the run / F."""
    return sum(value for key, value in run.uplink.items() if short(key).startswith(kind)) / run.size


def print_summary(args: argparse.Namespace, results: list[RunResult]) -> None:
    """One line per (N, F, seed peers): medians over the runs; configurations of one N next to each other."""
    print()
    print(
        f"shaped swarm: host, seed peer and supernode uplinks {args.host_mbit} Mbit/s, origin {args.origin_mbit} "
        f"Mbit/s, {args.uplink_queue} uplink queues, downlinks unshaped; supernode --origin-fetch {args.origin_fetch}, "
        f"piece size {args.piece_size or 'default'}, upload slots {args.upload_slots or 'default'}; dfget --digest; "
        f"medians of {args.repeat} run(s); seconds"
    )
    header = (
        "| N | F MiB | seed peers | makespan | p50 | p90 | KR bound | KR limit | design bound | design limit | /KR "
        "| /design | vs 0 seeds | origin/F | read by | seed peers/F | sn/F | hosts/F min-max | N curls "
        "| last registered | after 1st reg. | its /KR | CPU busy | swarm cores | dfget failed |"
    )
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    groups: dict[tuple[int, int, int], list[RunResult]] = {}
    for result in sorted(results, key=lambda r: (r.size, r.n, -r.seed_peers)):
        groups.setdefault((result.n, result.size, result.seed_peers), []).append(result)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    for (n, size, seeds), runs in groups.items():
        makespan = med([r.makespan for r in runs])
        plain = groups.get((n, size, 0))
        versus = f"{makespan / med([r.makespan for r in plain]):.2f}x" if plain and seeds else ""
        after = med([r.makespan - r.registered[0] for r in runs])
        kr = runs[0].kumar_ross
        design_seconds = med([r.design.seconds for r in runs])
        design_limits = "; ".join(sorted({r.design.limit for r in runs}))
        paths = "; ".join(sorted({r.design_path for r in runs}))
        origin = med([r.uplink[PREFIX + "origin"] / size for r in runs])
        host_shares = [value / size for r in runs for key, value in r.uplink.items() if short(key).startswith("h")]
        print(
            f"| {n} | {size // MiB} | {seeds} | {makespan:.2f} | {med([r.p50 for r in runs]):.2f} | "
            f"{med([r.p90 for r in runs]):.2f} | {kr.seconds:.2f} | {kr.limit} | {design_seconds:.2f} | "
            f"{design_limits} | {makespan / kr.seconds:.2f}x | {makespan / design_seconds:.2f}x | {versus} | "
            f"{origin:.2f} | {paths} | {med([_share(r, 's') for r in runs]):.2f} | "
            f"{med([r.uplink[PREFIX + 'sn'] / size for r in runs]):.2f} | "
            f"{min(host_shares):.2f}-{max(host_shares):.2f} | "
            f"{med([r.direct_makespan for r in runs]):.2f} | {med([r.registered[1] for r in runs]):.2f} | "
            f"{after:.2f} | {after / kr.seconds:.2f}x | "
            f"{med([r.cpu_busy for r in runs]):.0%} | {med([r.swarm_cpu / r.makespan for r in runs]):.2f} | "
            f"{sum(len(r.failed) for r in runs)}/{n * len(runs)} |"
        )
    print("\n".join(NOTES))
