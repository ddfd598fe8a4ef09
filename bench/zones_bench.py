"""Bytes between zones under each parent policy, on real hosts (prints figures, not a test).

    sudo python bench/zones_bench.py [--hosts 8] [--zones 2] [--mib 32] [--host-mbit 50] [--origin-mbit 100]
                                     [--repeat 2] [--parent-policy default|nearest] [--work-dir DIR]

N dfdaemons in network namespaces (bench/scale_testbed.py: dlscale-h1..hN) and one seed peer (dlscale-s1, `dfdaemon
--seed`; the supernode runs none in-process), spread over --zones zones of one region (`dfdaemon --location r1|zK`,
host i in zone i mod Z, the seed peer in z1), every uplink fair-queued with one HTB class per destination
(bench/fair_uplink.py), whose byte counters say who sent how much to whom. The origin (nginx) and the supernode sit
in no zone. For each parent policy (both unless --parent-policy names one), a new supernode `--parent-policy P` and
new dfdaemons, then --repeat runs of N dfgets at once of a new random file (each output checked against its digest).
Per run: the makespan and, as multiples of the file's size F, the bytes the hosts and the seed peer sent to hosts in
another zone and to hosts in their own zone, what the seed peer sent in all, and what the origin sent to the hosts
(the seed peer reads it, hosts may read parts). The floor between zones is Z - 1: every other zone gets each piece
once. Beside the wire's figures, what the supernode's /metrics counted meanwhile (dandelion_piece_bytes_delivered,
piece bytes without the packets' headers): `sn across`, `sn within`.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests"), str(REPO / "src")]

from fair_uplink import fair_uplinks, sent_to  # noqa: E402
from fixtures.clients import missing_binaries  # noqa: E402
from fixtures.processes import console_script  # noqa: E402
from netns import NetnsError, bridged_hosts  # noqa: E402
from scale_bench import MiB, compile_bytecode, sha256_hex, write_random  # noqa: E402
from scale_testbed import BRIDGE_NETNS, Origin, Testbed, make_testbed, run_at_once, swarm  # noqa: E402

from supernode.scheduling.evaluator import POLICIES  # noqa: E402


def locations(bed: Testbed, zones: int) -> dict[str, str]:
    """dfdaemon --location by netns: host i in zone i mod Z, the seed peer in z1."""
    spread = {host.netns: f"r1|z{index % zones + 1}" for index, host in enumerate(bed.hosts)}
    return {**{seed.netns: "r1|z1" for seed in bed.seeds}, **spread}


METRICS = "127.0.0.1:8003"  # the supernode's /metrics, inside its namespace
_DELIVERED = re.compile(r'^dandelion_piece_bytes_delivered_total\{component="supernode",path="(\w+)"\} (\S+)$', re.M)


def delivered(bed: Testbed) -> dict[str, float]:
    """dandelion_piece_bytes_delivered_total by path, scraped from the supernode's /metrics."""
    argv = bed.supernode.argv(["curl", "-sf", "--max-time", "10", f"http://{METRICS}/metrics"])
    text = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    return {path: float(value) for path, value in _DELIVERED.findall(text)}


def one_run(args: argparse.Namespace, bed: Testbed, origin: Origin, sockets: dict[str, Path], out: Path) -> dict:
    """N dfgets at once of a new file: the makespan and the bytes by kind of link, / F."""
    size = args.mib * MiB
    name = f"zones-{secrets.token_hex(4)}.bin"
    sha = write_random(origin.root / name, size)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    dfget = console_script("dfget")
    commands = [
        (host, [dfget, origin.url(name), "-o", str(out / host.netns), "--daemon", f"unix:{sockets[host.netns]}"])
        for host in bed.hosts
    ]
    for _, argv in commands:
        argv += ["--quiet", "--digest", f"sha256:{sha}"]
    everyone = bed.everyone()
    peers = [*bed.seeds, *bed.hosts]
    before = {host.netns: sent_to(host, everyone) for host in everyone}
    counted = delivered(bed)
    finished = run_at_once(commands)
    after = {host.netns: sent_to(host, everyone) for host in everyone}
    counted = {path: value - counted.get(path, 0.0) for path, value in delivered(bed).items()}
    failed = [f"{item.netns}: {item.stderr[-200:]}" for item in finished if item.status != 0]
    if failed:
        raise RuntimeError("dfget failed: " + "; ".join(failed))
    for host in bed.hosts:
        if sha256_hex(out / host.netns) != sha:
            raise RuntimeError(f"dfget on {host.netns} wrote content that does not match sha256:{sha}")
    (origin.root / name).unlink()
    zones = locations(bed, args.zones)
    tally = {"across": 0, "within": 0, "seed peer": 0, "origin": 0}
    for dst in bed.hosts:
        tally["origin"] += after[bed.origin.netns][dst.netns] - before[bed.origin.netns][dst.netns]
        for src in peers:
            if src != dst:
                sent = after[src.netns][dst.netns] - before[src.netns][dst.netns]
                tally["within" if zones[src.netns] == zones[dst.netns] else "across"] += sent
                tally["seed peer"] += sent if src in bed.seeds else 0
    tally["sn across"], tally["sn within"] = counted["between_zones"], counted["within_zone"]
    return {"makespan": max(item.seconds for item in finished), **{k: v / size for k, v in tally.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=8, help="dfdaemon hosts (default 8)")
    parser.add_argument("--zones", type=int, default=2, help="zones they are spread over (default 2)")
    parser.add_argument("--mib", type=int, default=32, help="file size in MiB (default 32)")
    parser.add_argument("--host-mbit", type=int, default=50, help="host and seed peer uplinks, Mbit/s (default 50)")
    parser.add_argument("--origin-mbit", type=int, default=100, help="origin uplink, Mbit/s (default 100)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per policy, each with a new file (default 2)")
    parser.add_argument("--parent-policy", choices=sorted(POLICIES), default=None, help="one policy (default: all)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep logs here (default: a temp dir, removed)")
    args = parser.parse_args()
    if not 1 <= args.zones <= args.hosts or args.mib < 1 or args.repeat < 1:
        sys.exit("zones_bench: want 1 <= --zones <= --hosts, --mib and --repeat at least 1")
    missing = missing_binaries("ip", "tc", "nginx", "curl")
    if missing:
        sys.exit(f"zones_bench: not installed: {', '.join(missing)}")
    workdir = args.work_dir or Path(tempfile.mkdtemp(prefix="zones-bench-", dir="/dev/shm"))
    compile_bytecode()
    bed = make_testbed(args.hosts, args.origin_mbit, args.host_mbit, n_seeds=1)
    results: dict[str, list[dict]] = {}
    try:
        with ExitStack() as stack:
            stack.enter_context(bridged_hosts(BRIDGE_NETNS, bed.everyone()))
            fair_uplinks(bed.everyone())
            origin = stack.enter_context(Origin(bed.origin, workdir / "origin").running())
            for policy in [args.parent_policy] if args.parent_policy else sorted(POLICIES):
                logs = workdir / f"swarm-{policy}"
                extra = ("--parent-policy", policy, "--metrics", METRICS)
                where = locations(bed, args.zones)
                with swarm(
                    bed, bed.hosts, logs, "auto", None, bed.seeds, supernode_args=extra, locations=where
                ) as procs:
                    for run in range(args.repeat):
                        figures = one_run(args, bed, origin, procs[0], workdir / "out")
                        results.setdefault(policy, []).append(figures)
                        shown = "  ".join(f"{k} {v:.2f}" for k, v in figures.items() if k != "makespan")
                        print(f"{policy} run {run + 1}: makespan {figures['makespan']:.2f} s; / F: {shown}", flush=True)
    except (NetnsError, RuntimeError, subprocess.SubprocessError) as exc:
        sys.exit(f"zones_bench: {exc}")
    finally:
        shutil.rmtree(workdir if args.work_dir is None else workdir / "out", ignore_errors=True)
    print(f"\n{args.hosts} hosts in {args.zones} zones, {args.mib} MiB, uplinks {args.host_mbit} Mbit/s (fair queues),")
    print(f"origin {args.origin_mbit} Mbit/s; medians of {args.repeat} runs; bytes sent to the hosts / F")
    print(
        "| policy | makespan | to another zone | within the zone | the seed peer's part | origin | sn: across, within |"
    )
    print("|---|---|---|---|---|---|---|")
    for policy, runs in results.items():
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(
            f"| {policy} | {med['makespan']:.2f} s | {med['across']:.2f} | {med['within']:.2f} | "
            f"{med['seed peer']:.2f} | {med['origin']:.2f} | {med['sn across']:.2f}, {med['sn within']:.2f} |"
        )


if __name__ == "__main__":
    main()
