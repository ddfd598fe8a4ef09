"""N hosts fetching one new file at the same moment on shaped uplinks: the swarm against the Kumar-Ross bound.

Usage: sudo python bench/scale_bench.py [--hosts 4,8,16] [--mib 32] [--host-mbit 50] [--origin-mbit 100]
           [--repeat 1] [--seed-peers K [--compare]] [--origin-fetch auto|peer|seed] [--uplink-queue fifo|fair]
           [--piece-size SIZE] [--upload-slots N] [--timeline SECONDS] [--no-direct] [--json OUT] [--work-dir DIR]
           [--quick]

Needs root (`ip netns`, `tc`), nginx and curl. Namespaces dlscale-origin (nginx on 10.77.8.2:8080, uplink
--origin-mbit), dlscale-sn (supernode and, without --seed-peers, its in-process seed peer; uplink --host-mbit),
dlscale-s1..sK (one seed peer, `dfdaemon --seed`, each; uplink --host-mbit), dlscale-h1..hN (one dfdaemon each,
uplink --host-mbit), joined by a bridge inside dlscale-br; downlinks unshaped; nothing in the root namespace.
For each N: a new supernode, K new seed peers (the run starts once the supernode logs that each takes orders) and
N new dfdaemons (--compare: then the same without seed peers); each run writes a new random file to the origin, then
`dfget URL -o OUT --daemon unix:SOCK --digest sha256:HEX` starts on every host at once (outputs are checked
against the digest), then N `curl` of the same file from the origin at once. It prints the makespan, p50/p90
of the hosts' completion times, the bytes every namespace sent on its uplink / F, the origin's bytes / F and
who read it, the Kumar-Ross bound and the bound today's design allows (bench/swarm_bounds.py), and the CPU
the whole machine was busy meanwhile.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests"), str(REPO / "src")]

from fair_uplink import fair_uplinks  # noqa: E402
from fixtures.clients import missing_binaries  # noqa: E402
from fixtures.processes import console_script  # noqa: E402
from netns import NetHost, NetnsError, bridged_hosts, tx_bytes  # noqa: E402
from scale_report import RunResult, percentile, print_run, print_summary  # noqa: E402
from scale_testbed import (  # noqa: E402
    BRIDGE_NETNS,
    MAX_SEED_PEERS,
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
from swarm_bounds import Bound, kumar_ross, mbit, reader_design, seed_peer_design  # noqa: E402
from uplink_timeline import UplinkTimeline  # noqa: E402

from supernode.read_split import MAX_READERS  # noqa: E402

MiB = 1 << 20


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


def bounds(args: argparse.Namespace, n: int, size: int, path: str, seeds: int, hosts_read: int) -> tuple[Bound, Bound]:
    """The Kumar-Ross bound (seed peers counted among the uploaders, the supernode's in-process seed peer when it
    read the origin) and the bound of the path today's design took.

    path: who read the origin: "seed peer" (the ordered seed peer: the supernode's own with no --seed-peers, else one
    of theirs; hosts may take over parts: hosts_read bytes); "peers" (up to MAX_READERS hosts read disjoint parts
    and offered each piece as they wrote it). Downlinks are unshaped.
    """
    u_s, u = mbit(args.origin_mbit), mbit(args.host_mbit)
    seeds = seeds or 1  # without seed peers of their own, the supernode runs one in-process
    kr = kumar_ross(size, n, u_s, [u] * (n + seeds))
    if path == "seed peer":
        return kr, seed_peer_design(size, n, u_s, [u] * seeds, [u] * n, readers=MAX_READERS, hosts_read=hosts_read)
    return kr, reader_design(size, n, u_s, [u] * n, readers=MAX_READERS)


def who_read(bed: Testbed, seeds: int, readers: dict[str, int], size: int) -> tuple[str, int]:
    """Who read the origin for the swarm, from nginx's bytes by address, and the bytes the hosts read."""
    host_ips = {host.ip for host in bed.hosts}
    hosts_read = sum(sent for ip, sent in readers.items() if ip in host_ips)
    seed_ips = {bed.supernode.ip} | {seed.ip for seed in bed.seeds[:seeds]}
    if any(readers.get(ip, 0) for ip in seed_ips):
        return "seed peer", hosts_read
    return "peers", hosts_read


def one_run(
    args: argparse.Namespace,
    bed: Testbed,
    origin: Origin,
    procs: tuple[dict[str, Path], list[int]],
    n: int,
    seeds: int,
    run: int,
    out: Path,
) -> RunResult:
    """N dfget at once, then N curl at once, of one new file (seeds: the seed peers taking orders)."""
    size = args.mib * MiB
    sockets, pids = procs
    hosts = bed.hosts[:n]
    name = f"n{n}-r{run}-{secrets.token_hex(4)}.bin"
    sha = write_random(origin.root / name, size)
    url = origin.url(name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sn_log = out.parent / f"swarm-n{n}-s{seeds}" / "supernode.log"
    dfget = console_script("dfget")
    commands = [
        (host, [dfget, url, "-o", str(out / host.netns), "--daemon", f"unix:{sockets[host.netns]}", "--quiet"])
        for host in hosts
    ]
    for _, argv in commands:
        argv += ["--digest", f"sha256:{sha}"]
    everyone = [bed.origin, bed.supernode, *bed.seeds[:seeds], *hosts]
    chosen_before = readers_chosen(sn_log)
    sent_before = {host.netns: tx_bytes(host) for host in everyone}
    cpu_before, daemons_before, dfgets_before = cpu_busy(), process_cpu(pids), children_cpu()
    supernode_before = process_cpu(pids[:1])
    wall_start = time.time()
    with ExitStack() as sampling:
        timeline = sampling.enter_context(UplinkTimeline(everyone, args.timeline)) if args.timeline else None
        finished = run_at_once(commands)
    cpu_after, daemons_cpu, dfget_cpu = cpu_busy(), process_cpu(pids) - daemons_before, children_cpu() - dfgets_before
    supernode_cpu = process_cpu(pids[:1]) - supernode_before
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
    direct_makespan, direct_origin = direct_curls(bed, hosts, url, size, out) if args.direct else (float("nan"), 0)
    (origin.root / name).unlink()
    times = [item.seconds for item in finished]
    path, hosts_read = who_read(bed, seeds, readers, size)
    kr, design = bounds(args, n, size, path, seeds, hosts_read)
    busy = (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1])
    return RunResult(
        n=n,
        size=size,
        run=run,
        seed_peers=seeds,
        makespan=max(times),
        p50=percentile(times, 0.5),
        p90=percentile(times, 0.9),
        per_host={item.netns: item.seconds for item in finished},
        uplink=uplink,
        origin_readers=readers,
        direct_makespan=direct_makespan,
        direct_origin=direct_origin,
        kumar_ross=kr,
        design=design,
        design_path=path,
        cpu_busy=busy,
        swarm_cpu=daemons_cpu + dfget_cpu,
        dfget_cpu=dfget_cpu,
        supernode_cpu=supernode_cpu,
        readers=readers_chosen(sn_log) - chosen_before,
        registered=(min(joined), max(joined)),
        failed=failed,
        timeline=timeline.rates() if timeline else [],
    )


def direct_curls(bed: Testbed, hosts: tuple[NetHost, ...], url: str, size: int, out: Path) -> tuple[float, int]:
    """N curls of url at once, one per host: their makespan and the bytes the origin sent meanwhile."""
    origin_before = tx_bytes(bed.origin)
    curls = [(host, ["curl", "-sS", "--fail", "-o", str(out / host.netns), url]) for host in hosts]
    direct = run_at_once(curls)
    direct_origin = tx_bytes(bed.origin) - origin_before
    _check(direct, "curl")
    for host in hosts:
        if (out / host.netns).stat().st_size != size:
            raise RuntimeError(f"curl on {host.netns} got {(out / host.netns).stat().st_size} bytes, want {size}")
    shutil.rmtree(out, ignore_errors=True)
    return max(item.seconds for item in direct), direct_origin


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
        "--origin-fetch",
        choices=("auto", "peer", "seed"),
        default="auto",
        help="supernode --origin-fetch (default auto: a seed peer when one is up, else the first peer)",
    )
    parser.add_argument(
        "--seed-peers",
        type=int,
        default=0,
        help=f"seed peers (dfdaemon --seed) in namespaces of their own, 0..{MAX_SEED_PEERS} (default 0)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="at every N, also run the same without seed peers (a new swarm each), printed side by side",
    )
    parser.add_argument(
        "--uplink-queue",
        choices=("fifo", "fair"),
        default="fifo",
        help="fifo: tbf, one queue per uplink (default); fair: HTB with a class per destination (bench/fair_uplink.py)",
    )
    parser.add_argument("--piece-size", default=None, help="supernode --piece-size (default: its own)")
    parser.add_argument(
        "--upload-slots", type=int, default=None, help="dfdaemon --upload-slots, supernode --seed-upload-slots"
    )
    parser.add_argument(
        "--no-direct",
        dest="direct",
        action="store_false",
        help="skip the N direct curls (printed as nan): for side-by-side runs of the swarm alone",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep logs here (default: a temp dir, removed)")
    parser.add_argument(
        "--timeline",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="print every namespace's uplink MB/s every SECONDS during the swarm (default 0: off; costs CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: --hosts 2,4 --mib 8")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def measure(args: argparse.Namespace, workdir: Path) -> list[RunResult]:
    """Every N, every run; the namespaces and processes are gone when it returns or raises."""
    bed = make_testbed(max(args.hosts), args.origin_mbit, args.host_mbit, args.seed_peers)
    configs = [args.seed_peers, 0] if args.compare and args.seed_peers else [args.seed_peers]
    results: list[RunResult] = []
    with ExitStack() as stack:
        stack.enter_context(bridged_hosts(BRIDGE_NETNS, bed.everyone()))
        if args.uplink_queue == "fair":
            fair_uplinks(bed.everyone())
        origin = stack.enter_context(Origin(bed.origin, workdir / "origin").running())
        for n in args.hosts:
            hosts: tuple[NetHost, ...] = bed.hosts[:n]
            for seeds in configs:
                print(f"N={n}: starting a supernode, {seeds} seed peer(s) and {n} dfdaemons", flush=True)
                logs = workdir / f"swarm-n{n}-s{seeds}"
                with swarm(
                    bed, hosts, logs, args.origin_fetch, args.piece_size, bed.seeds[:seeds], args.upload_slots
                ) as procs:
                    for run in range(args.repeat):
                        result = one_run(args, bed, origin, procs, n, seeds, run, workdir / "out")
                        print_run(result, bed)
                        results.append(result)
    return results


def flag_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags, in one line, or None."""
    if args.mib < 1 or args.repeat < 1 or args.host_mbit < 1 or args.origin_mbit < 1:
        return "--mib, --repeat, --host-mbit and --origin-mbit must be at least 1"
    if args.timeline < 0 or 0 < args.timeline < 0.1:
        return f"--timeline wants 0 (off) or at least 0.1 seconds, got {args.timeline}"
    if not 0 <= args.seed_peers <= MAX_SEED_PEERS:
        return f"--seed-peers must be 0..{MAX_SEED_PEERS}, got {args.seed_peers}"
    if args.compare and not args.seed_peers:
        return "--compare needs --seed-peers 1 or more (it adds the run without them)"
    return None


def compile_bytecode() -> None:
    """Byte-compile this checkout's packages, as an install does: the N dfgets start inside the makespan, and
    where PYTHONDONTWRITEBYTECODE is set each would otherwise compile ~40 modules (~50 ms of CPU) first."""
    for tree in ("src", "generated"):
        compileall.compile_dir(REPO / tree, quiet=1)


def main() -> None:
    """Parse flags, run, print; everything started is stopped and every namespace deleted."""
    args = build_parser().parse_args()
    if args.quick:
        args.hosts, args.mib = [2, 4], 8
    problem = flag_problem(args)
    if problem:
        print(f"scale_bench: {problem}", file=sys.stderr)
        sys.exit(2)
    missing = missing_binaries("ip", "tc", "nginx", "curl")
    if missing:
        sys.exit(f"scale_bench: not installed: {', '.join(missing)}")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = args.work_dir or Path(tempfile.mkdtemp(prefix="scale-bench-", dir="/dev/shm"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores", flush=True)
    compile_bytecode()
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
