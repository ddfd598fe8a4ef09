"""N hosts fetching one new file at the same moment on shaped uplinks: the swarm against the Kumar-Ross bound.

Usage: sudo python bench/scale_bench.py [--hosts 4,8,16] [--mib 32] [--host-mbit 50] [--origin-mbit 100]
           [--repeat 1] [--origin-fetch peer|seed] [--uplink-queue fifo|fair] [--piece-size SIZE] [--json OUT]
           [--work-dir DIR] [--quick]

Needs root (`ip netns`, `tc`), nginx and curl. Namespaces dlscale-origin (nginx on 10.77.8.2:8080, uplink
--origin-mbit), dlscale-sn (supernode, today's seed, uplink --host-mbit), dlscale-h1..hN (one dfdaemon each,
uplink --host-mbit), joined by a bridge inside dlscale-br; downlinks unshaped; nothing in the root namespace.
For each N: a new supernode and N new dfdaemons; each run writes a new random file to the origin, then
`dfget URL -o OUT --daemon unix:SOCK --digest sha256:HEX` starts on every host at once (outputs are checked
against the digest), then N `curl` of the same file from the origin at once. It prints the makespan, p50/p90
of the hosts' completion times, the bytes every namespace sent on its uplink / F, the origin's bytes / F and
who read it, the Kumar-Ross bound and the bound today's design allows (bench/swarm_bounds.py), and the CPU
the whole machine was busy meanwhile.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests"), str(REPO / "src")]

from fair_uplink import fair_uplinks  # noqa: E402
from fixtures.clients import missing_binaries  # noqa: E402
from fixtures.processes import console_script  # noqa: E402
from netns import NetHost, NetnsError, bridged_hosts, tx_bytes  # noqa: E402
from scale_testbed import (  # noqa: E402
    BRIDGE_NETNS,
    PREFIX,
    Finished,
    Origin,
    Testbed,
    children_cpu,
    cpu_busy,
    make_testbed,
    process_cpu,
    readers_chosen,
    registrations,
    run_at_once,
    swarm,
)
from swarm_bounds import Bound, kumar_ross, mbit, reader_design, seed_design  # noqa: E402

from supernode.readers import MAX_READERS  # noqa: E402

MiB = 1 << 20
NOTES = (
    "KR bound = max(F/u_s, F/d_min, N*F/(u_s+sum u_i)), the seed counted among the uploaders.",
    "design bound = today's design on the path the run took (seed read the origin: F/min(u_s,u_seed) ...; first",
    "  peer read it: its fetch and the seed's copy of it, then the rest), see bench/swarm_bounds.py.",
    "uplink bytes = tx_bytes of each namespace's eth0 (TCP ACKs included: a host that serves nobody shows ~0.01 F);",
    "  tbf counts Ethernet framing, so one transfer reaches about 0.95 of a link's rate.",
    "last registered = seconds from the start until the supernode logged the last peer's registration (dfget and",
    "  dfdaemon start-up). CPU busy = the whole machine (other work included); swarm cores = CPU-s of the",
    "  supernode, the dfdaemons and the dfgets / makespan. makespan and p50/p90 include failed dfgets' exit times.",
    "after 1st reg. = makespan minus the first registration: the swarm's time without dfget's start-up.",
)


@dataclass
class RunResult:
    """One run at one N: the swarm's and the direct curls' figures and the bounds."""

    n: int
    size: int
    run: int
    makespan: float
    p50: float
    p90: float
    per_host: dict[str, float]
    uplink: dict[str, int]  # bytes each namespace sent on eth0 during the swarm run (origin, sn, hosts)
    origin_readers: dict[str, int]  # bytes nginx sent for the file during the swarm run, by client address
    direct_makespan: float
    direct_origin: int  # bytes the origin sent on its uplink during the N curls
    kumar_ross: Bound
    design: Bound
    design_path: str  # "seed read the origin" or "first peer read the origin" (from nginx's log)
    cpu_busy: float  # share of all cores busy during the swarm run (every process on the machine)
    swarm_cpu: float  # CPU seconds of the supernode, the dfdaemons and the dfgets during the swarm run
    readers: int  # peers the supernode chose to read the origin for the swarm during the run
    registered: tuple[float, float]  # seconds after the start when the first and the last peer registered
    failed: dict[str, str]  # hosts whose dfget failed: exit status and the end of its stderr


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def write_random(path: Path, size: int) -> str:
    """size random bytes at path (new content every run: no cache can hold it); their sha256 hex."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MiB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_hex(path: Path) -> str:
    """sha256 hex of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def _check(finished: list[Finished], what: str) -> None:
    failed = [f"{item.netns}: status {item.status}: {item.stderr[-300:]}" for item in finished if item.status != 0]
    if failed:
        raise RuntimeError(f"{what} failed: " + "; ".join(failed))


def bounds(args: argparse.Namespace, n: int, size: int, seed_read: bool) -> tuple[Bound, Bound]:
    """The Kumar-Ross bound (seed counted among the uploaders) and the bound of the path today's design took.

    seed_read: the seed read the origin (--origin-fetch seed); else peers read it (up to MAX_READERS, disjoint
    parts) and offered each piece as they wrote it (the seed holds nothing then). Downlinks are unshaped.
    """
    u_s, u = mbit(args.origin_mbit), mbit(args.host_mbit)
    if seed_read:
        return kumar_ross(size, n, u_s, [u] * (n + 1)), seed_design(size, n, u_s, u, [u] * n)
    return kumar_ross(size, n, u_s, [u] * n), reader_design(size, n, u_s, [u] * n, readers=MAX_READERS)


def one_run(
    args: argparse.Namespace,
    bed: Testbed,
    origin: Origin,
    procs: tuple[dict[str, Path], list[int]],
    n: int,
    run: int,
    out: Path,
) -> RunResult:
    """N dfget at once, then N curl at once, of one new file."""
    size = args.mib * MiB
    sockets, pids = procs
    hosts = bed.hosts[:n]
    name = f"n{n}-r{run}-{secrets.token_hex(4)}.bin"
    sha = write_random(origin.root / name, size)
    url = origin.url(name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sn_log = out.parent / f"swarm-n{n}" / "supernode.log"
    dfget = console_script("dfget")
    commands = [
        (host, [dfget, url, "-o", str(out / host.netns), "--daemon", f"unix:{sockets[host.netns]}", "--quiet"])
        for host in hosts
    ]
    for _, argv in commands:
        argv += ["--digest", f"sha256:{sha}"]
    everyone = [bed.origin, bed.supernode, *hosts]
    chosen_before = readers_chosen(sn_log)
    sent_before = {host.netns: tx_bytes(host) for host in everyone}
    cpu_before, swarm_before = cpu_busy(), process_cpu(pids) + children_cpu()
    wall_start = time.time()
    finished = run_at_once(commands)
    cpu_after, swarm_cpu = cpu_busy(), process_cpu(pids) + children_cpu() - swarm_before
    uplink = {host.netns: tx_bytes(host) - sent_before[host.netns] for host in everyone}
    readers = origin.bytes_by_reader(name)
    joined = [stamp - wall_start for stamp in registrations(sn_log, url)] or [float("nan")]
    # A failed dfget is a result of today's code (kept and printed); a wrong output never is.
    failed = {item.netns: f"status {item.status}: {item.stderr[-200:]}" for item in finished if item.status != 0}
    for host in hosts:
        if host.netns not in failed and sha256_hex(out / host.netns) != sha:
            raise RuntimeError(f"dfget on {host.netns} wrote content that does not match sha256:{sha}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    origin_before = tx_bytes(bed.origin)
    curls = [(host, ["curl", "-sS", "--fail", "-o", str(out / host.netns), url]) for host in hosts]
    direct = run_at_once(curls)
    direct_origin = tx_bytes(bed.origin) - origin_before
    _check(direct, "curl")
    for host in hosts:
        if (out / host.netns).stat().st_size != size:
            raise RuntimeError(f"curl on {host.netns} got {(out / host.netns).stat().st_size} bytes, want {size}")
    shutil.rmtree(out, ignore_errors=True)
    (origin.root / name).unlink()
    times = [item.seconds for item in finished]
    seed_read = readers.get(bed.supernode.ip, 0) >= size // 2
    kr, design = bounds(args, n, size, seed_read)
    busy = (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1])
    return RunResult(
        n=n,
        size=size,
        run=run,
        makespan=max(times),
        p50=percentile(times, 0.5),
        p90=percentile(times, 0.9),
        per_host={item.netns: item.seconds for item in finished},
        uplink=uplink,
        origin_readers=readers,
        direct_makespan=max(item.seconds for item in direct),
        direct_origin=direct_origin,
        kumar_ross=kr,
        design=design,
        design_path="seed read the origin" if seed_read else "first peer read the origin",
        cpu_busy=busy,
        swarm_cpu=swarm_cpu,
        readers=readers_chosen(sn_log) - chosen_before,
        registered=(min(joined), max(joined)),
        failed=failed,
    )


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
        f"N={result.n} run {result.run + 1}: makespan {result.makespan:.2f} s (p50 {result.p50:.2f}, "
        f"p90 {result.p90:.2f}); {result.n} direct curls {result.direct_makespan:.2f} s; peers registered "
        f"{result.registered[0]:.2f}-{result.registered[1]:.2f} s after the start (dfget start-up)\n"
        f"  Kumar-Ross bound {kr.seconds:.2f} s [{kr.limit}] -> {result.makespan / kr.seconds:.2f}x; "
        f"design bound ({result.design_path}) {design.seconds:.2f} s [{design.limit}] -> "
        f"{result.makespan / design.seconds:.2f}x\n"
        + "".join(f"  FAILED {short(netns)}: {why}\n" for netns, why in result.failed.items())
        + f"  uplink bytes / F: {shares}\n"
        f"  origin read by (nginx bytes / F): {readers or 'nobody'}; readers chosen {result.readers}; "
        f"machine CPU busy {result.cpu_busy:.0%} of {os.cpu_count()} cores, the swarm's processes "
        f"{result.swarm_cpu:.1f} CPU-s ({result.swarm_cpu / result.makespan:.2f} cores)",
        flush=True,
    )


def print_summary(args: argparse.Namespace, results: list[RunResult]) -> None:
    """One line per (N, F): medians over the runs."""
    print()
    print(
        f"shaped swarm: host and seed (supernode) uplinks {args.host_mbit} Mbit/s, origin {args.origin_mbit} Mbit/s, "
        f"{args.uplink_queue} uplink queues, downlinks unshaped; supernode --origin-fetch {args.origin_fetch}, "
        f"piece size {args.piece_size or 'default'}; dfget --digest; medians of {args.repeat} run(s); seconds"
    )
    header = (
        "| N | F MiB | makespan | p50 | p90 | KR bound | KR limit | design bound | design limit | /KR | /design "
        "| origin/F | seed/F | hosts/F min-max | N curls | last registered | after 1st reg. | its /KR | CPU busy "
        "| swarm cores | dfget failed |"
    )
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    groups: dict[tuple[int, int], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.n, result.size), []).append(result)
    for (n, size), runs in groups.items():

        def med(values: list[float]) -> float:
            return statistics.median(values)

        makespan = med([r.makespan for r in runs])
        after = med([r.makespan - r.registered[0] for r in runs])
        kr = runs[0].kumar_ross
        design_seconds = med([r.design.seconds for r in runs])
        design_limits = "; ".join(sorted({r.design.limit for r in runs}))
        origin = med([r.uplink[PREFIX + "origin"] / size for r in runs])
        seed = med([r.uplink[PREFIX + "sn"] / size for r in runs])
        host_shares = [value / size for r in runs for key, value in r.uplink.items() if key.startswith(PREFIX + "h")]
        print(
            f"| {n} | {size // MiB} | {makespan:.2f} | {med([r.p50 for r in runs]):.2f} | "
            f"{med([r.p90 for r in runs]):.2f} | {kr.seconds:.2f} | {kr.limit} | {design_seconds:.2f} | "
            f"{design_limits} | {makespan / kr.seconds:.2f}x | {makespan / design_seconds:.2f}x | {origin:.2f} | "
            f"{seed:.2f} | {min(host_shares):.2f}-{max(host_shares):.2f} | "
            f"{med([r.direct_makespan for r in runs]):.2f} | {med([r.registered[1] for r in runs]):.2f} | "
            f"{after:.2f} | {after / kr.seconds:.2f}x | "
            f"{med([r.cpu_busy for r in runs]):.0%} | {med([r.swarm_cpu / r.makespan for r in runs]):.2f} | "
            f"{sum(len(r.failed) for r in runs)}/{n * len(runs)} |"
        )
    print("\n".join(NOTES))


def parse_hosts(text: str) -> list[int]:
    """4,8,16 -> [4, 8, 16]; each between 1 and 64."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hosts wants numbers separated by commas, got {text!r}") from None
    if not values or any(not 1 <= value <= 64 for value in values):
        raise argparse.ArgumentTypeError(f"--hosts wants 1..64 hosts per run, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=parse_hosts, default=[4, 8, 16], help="host counts, e.g. 4,8,16 (default)")
    parser.add_argument("--mib", type=int, default=32, help="file size in MiB (default 32)")
    parser.add_argument("--host-mbit", type=int, default=50, help="host and seed uplinks, Mbit/s (default 50)")
    parser.add_argument("--origin-mbit", type=int, default=100, help="origin uplink, Mbit/s (default 100)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per N, each with a new file (default 1)")
    parser.add_argument(
        "--origin-fetch", choices=("peer", "seed"), default="peer", help="supernode --origin-fetch (default peer)"
    )
    parser.add_argument(
        "--uplink-queue",
        choices=("fifo", "fair"),
        default="fifo",
        help="fifo: tbf, one queue per uplink (default); fair: HTB with a class per destination (bench/fair_uplink.py)",
    )
    parser.add_argument("--piece-size", default=None, help="supernode --piece-size (default: its own)")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep logs here (default: a temp dir, removed)")
    parser.add_argument("--quick", action="store_true", help="smoke run: --hosts 2,4 --mib 8")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def measure(args: argparse.Namespace, workdir: Path) -> list[RunResult]:
    """Every N, every run; the namespaces and processes are gone when it returns or raises."""
    bed = make_testbed(max(args.hosts), args.origin_mbit, args.host_mbit)
    results: list[RunResult] = []
    with ExitStack() as stack:
        stack.enter_context(bridged_hosts(BRIDGE_NETNS, bed.everyone()))
        if args.uplink_queue == "fair":
            fair_uplinks(bed.everyone())
        origin = stack.enter_context(Origin(bed.origin, workdir / "origin").running())
        for n in args.hosts:
            hosts: tuple[NetHost, ...] = bed.hosts[:n]
            print(f"N={n}: starting a supernode and {n} dfdaemons", flush=True)
            with swarm(bed, hosts, workdir / f"swarm-n{n}", args.origin_fetch, args.piece_size) as procs:
                for run in range(args.repeat):
                    result = one_run(args, bed, origin, procs, n, run, workdir / "out")
                    print_run(result, bed)
                    results.append(result)
    return results


def main() -> None:
    """Parse flags, run, print; everything started is stopped and every namespace deleted."""
    args = build_parser().parse_args()
    if args.quick:
        args.hosts, args.mib = [2, 4], 8
    if args.mib < 1 or args.repeat < 1 or args.host_mbit < 1 or args.origin_mbit < 1:
        sys.exit("scale_bench: --mib, --repeat, --host-mbit and --origin-mbit must be at least 1")
    missing = missing_binaries("ip", "tc", "nginx", "curl")
    if missing:
        sys.exit(f"scale_bench: not installed: {', '.join(missing)}")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = args.work_dir or Path(tempfile.mkdtemp(prefix="scale-bench-", dir="/dev/shm"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores", flush=True)
    try:
        results = measure(args, workdir)
    except KeyboardInterrupt:
        sys.exit("scale_bench: interrupted; its processes and namespaces are gone")
    except (NetnsError, RuntimeError) as exc:
        logs = f"; logs under {workdir}" if args.work_dir else ""
        hint = " (needs root)" if isinstance(exc, NetnsError) else ""
        sys.exit(f"scale_bench: {exc}{hint}{logs}")
    finally:
        if args.work_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # keep the logs, not the files
            shutil.rmtree(workdir / "out", ignore_errors=True)
            shutil.rmtree(workdir / "origin" / "files", ignore_errors=True)
    print_summary(args, results)
    if args.json:
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
