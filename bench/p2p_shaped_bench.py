"""One peer-to-peer transfer on shaped links against curl from the origin over links of the same rate.

Usage: sudo python bench/p2p_shaped_bench.py [--mib 512] [--mbit 1000] [--repeat 3] [--work-dir DIR]

Needs root (`ip netns`, `tc`), nginx and curl. The namespaces of scale_bench.py (bench/scale_testbed.py) with two
hosts: nginx in dlscale-origin, the supernode without a seed peer of its own in dlscale-sn, one dfdaemon each in
dlscale-h1 (A) and dlscale-h2 (B); every uplink shaped to --mbit (tbf), downlinks unshaped. Each run writes a new
random file to the origin and `dfget --digest` on A reads it from there (not timed). Then, timed, in alternating
order: `dfget --digest` on B, which takes every piece from A (its only parent; each piece's digest and the whole
content checked, the output a hard link to B's cache), and `curl -o` on B from the origin. A run stops if B read
more than 1% of the file from the origin. It prints each transfer's MB/s (dfget's own start-up included), their
ratio, and the CPU seconds of the two dfdaemons and of dfget during the transfer: bench/p2p_bench.py measures the
same on loopback, where sender, receiver and the kernel's network work share the machine's cores with no link
between them; here the link is the limit, as between two hosts.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests"), str(REPO / "src")]

from fixtures.clients import missing_binaries  # noqa: E402
from fixtures.processes import console_script  # noqa: E402
from netns import NetHost, NetnsError, bridged_hosts  # noqa: E402
from scale_bench import MiB, compile_bytecode, sha256_hex, write_random  # noqa: E402
from scale_testbed import BRIDGE_NETNS, Origin, children_cpu, make_testbed, process_cpu, run_at_once, swarm  # noqa: E402
from vm_memory import warm_free_memory  # noqa: E402

MB = 1e6


def timed(host: NetHost, argv: list[str], what: str) -> float:
    """Run argv in host's namespace; its seconds, or RuntimeError with its stderr when it failed."""
    (done,) = run_at_once([(host, argv)])
    if done.status != 0:
        raise RuntimeError(f"{what} failed: status {done.status}: {done.stderr[-300:]}")
    return done.seconds


Daemons = tuple[dict[str, Path], list[int]]  # each host's dfget socket by netns; the supernode's and dfdaemons' PIDs


def one_run(
    run: int, args: argparse.Namespace, origin: Origin, a: NetHost, b: NetHost, daemons: Daemons
) -> dict[str, float]:
    """One new file: A reads it, then B's dfget and B's curl, timed; their figures."""
    sockets, pids = daemons
    size = args.mib * MiB
    name = f"p2p-{run}-{secrets.token_hex(4)}.bin"
    sha = write_random(origin.root / name, size)
    out = args.work_dir / "out"
    out.mkdir(parents=True, exist_ok=True)
    dfget = console_script("dfget")

    def get(host: NetHost, target: Path) -> list[str]:
        daemon = f"unix:{sockets[host.netns]}"
        return [dfget, origin.url(name), "-o", str(target), "--daemon", daemon, "--digest", f"sha256:{sha}", "--quiet"]

    timed(a, get(a, out / "a"), "dfget on A")
    figures: dict[str, float] = {}
    for what in ("p2p", "curl") if run % 2 == 0 else ("curl", "p2p"):
        target = out / f"b-{what}"
        warm_free_memory(args.work_dir, 2 * size)  # each timed transfer starts on memory touched alike
        if what == "curl":
            figures["curl_s"] = timed(b, ["curl", "-sS", "--fail", "-o", str(target), origin.url(name)], "curl on B")
        else:
            read_before = origin.bytes_by_reader(name).get(b.ip, 0)
            cpu_before, dfget_before = process_cpu(pids), children_cpu()
            figures["p2p_s"] = timed(b, get(b, target), "dfget on B")
            figures["daemons_cpu"] = process_cpu(pids) - cpu_before
            figures["dfget_cpu"] = children_cpu() - dfget_before
            from_origin = origin.bytes_by_reader(name).get(b.ip, 0) - read_before
            if from_origin > size / 100:
                raise RuntimeError(f"B read {from_origin} bytes from the origin: not a peer-to-peer transfer")
        if sha256_hex(target) != sha:
            raise RuntimeError(f"{what} on B wrote content that does not match sha256:{sha}")
        target.unlink()
    (out / "a").unlink()
    return figures


def main() -> None:
    """Parse flags, run, print; everything started is stopped and every namespace deleted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512, help="file size in MiB (default 512)")
    parser.add_argument("--mbit", type=int, default=1000, help="every uplink's rate, Mbit/s (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each with a new file (default 3)")
    parser.add_argument("--work-dir", type=Path, help="keep logs here (default: a temp dir on /dev/shm, removed)")
    args = parser.parse_args()
    if args.mib < 1 or args.mbit < 1 or args.repeat < 1:
        sys.exit("p2p_shaped_bench: --mib, --mbit and --repeat must be at least 1")
    missing = missing_binaries("ip", "tc", "nginx", "curl")
    if missing:
        sys.exit(f"p2p_shaped_bench: not installed: {', '.join(missing)}")
    keep = args.work_dir is not None
    args.work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="p2p-shaped-", dir="/dev/shm"))
    compile_bytecode()
    bed = make_testbed(2, args.mbit, args.mbit)
    a, b = bed.hosts
    runs = []
    try:
        with ExitStack() as stack:
            stack.enter_context(bridged_hosts(BRIDGE_NETNS, bed.everyone()))
            origin = stack.enter_context(Origin(bed.origin, args.work_dir / "origin").running())
            daemons = stack.enter_context(
                swarm(bed, bed.hosts, args.work_dir / "swarm", "auto", None, in_process_seed=False)
            )
            for run in range(args.repeat):
                figures = one_run(run, args, origin, a, b, daemons)
                p2p, curl = (args.mib * MiB / MB / figures[k] for k in ("p2p_s", "curl_s"))
                print(
                    f"run {run + 1}: peer to peer {figures['p2p_s']:.2f} s {p2p:.1f} MB/s,"
                    f" curl {figures['curl_s']:.2f} s {curl:.1f} MB/s, ratio {p2p / curl:.2f}x;"
                    f" CPU-s during it: dfdaemons {figures['daemons_cpu']:.2f}, dfget {figures['dfget_cpu']:.2f}",
                    flush=True,
                )
                runs.append((p2p, curl))
    except (NetnsError, RuntimeError) as exc:
        sys.exit(f"p2p_shaped_bench: {exc}" + (f"; logs under {args.work_dir}" if keep else ""))
    finally:
        if not keep:
            shutil.rmtree(args.work_dir, ignore_errors=True)
    p2p, curl = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    print(
        f"{args.mib} MiB, every uplink {args.mbit} Mbit/s, medians of {len(runs)}: peer to peer {p2p:.1f} MB/s,"
        f" curl {curl:.1f} MB/s, ratio {p2p / curl:.2f}x"
    )


if __name__ == "__main__":
    main()
