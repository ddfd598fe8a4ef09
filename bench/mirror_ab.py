"""A/B of cold `docker pull`s through the mirror: variants set by environment variables, run in alternating pairs.

Usage: python bench/mirror_ab.py --variant A:SUPERNODE_PIECE_DIGEST=sha256 --variant B:SUPERNODE_PIECE_DIGEST=blake3
       [--pairs 8] [--layers 3] [--layer-mib 64] [--work-dir DIR]

These machines drift by tens of percent within minutes, so a change is judged by pairs run back to back: in each
round every variant pulls a new image once through a new swarm (supernode and dfdaemons started with that
variant's environment), each right after a direct pull of its own image, and the order of the variants flips
every round. It prints every pull (direct and cold seconds, their ratio, supernode + dfdaemon CPU seconds, the
whole machine's) and, per variant, the median ratio and the median swarm CPU. The environment variables reach
every process of the swarm (SUPERNODE_<FLAG> and DFDAEMON_<FLAG> set flags; see each program's --help).
Everything runs on loopback and is stopped by PID, as in mirror_bench.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from mirror_bench import fresh_swarm, timed_pull

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from fixtures.clients import missing_binaries, run_dockerd  # noqa: E402
from fixtures.images import MiB, build_and_push  # noqa: E402
from fixtures.registry import run_registry  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """NAME:VAR=VALUE[,VAR=VALUE...] (NAME alone: the environment as it is)."""
    name, _, settings = text.partition(":")
    if not name.isalnum() or not name.islower():
        raise argparse.ArgumentTypeError(f"variant name must be lower-case letters and digits: {name!r}")
    env: dict[str, str] = {}
    for item in filter(None, settings.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise argparse.ArgumentTypeError(f"expected VAR=VALUE in {text!r}, got {item!r}")
        env[key] = value
    return name, env


def measure(workdir: Path, variants: list[tuple[str, dict[str, str]]], pairs: int, layers: int, mib: int) -> None:
    """Run the rounds and print every pull, then the medians."""
    ratios: dict[str, list[float]] = {name: [] for name, _ in variants}
    swarm_cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
    saved = dict(os.environ)
    with ExitStack() as stack:
        registry = stack.enter_context(run_registry(workdir / "registry"))
        docker = stack.enter_context(run_dockerd(workdir / "docker"))
        for run in range(pairs):
            for name, env in variants if run % 2 == 0 else variants[::-1]:
                tag = f"{run}{name}"
                image = build_and_push(workdir / f"image-{tag}", registry.addr, f"ab/img{tag}", [mib * MiB] * layers)
                direct, _, _, _ = timed_pull(docker, image.reference, registry, image, workdir)
                os.environ.clear()
                os.environ.update(saved | env)
                try:
                    with fresh_swarm(workdir, registry, run) as swarm:
                        via = image.reference_via(swarm.nodes[0].mirror_addr)
                        cold, served, cpu, _ = timed_pull(docker, via, registry, image, workdir)
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                ratios[name].append(cold / direct)
                swarm_cpu[name].append(cpu["supernode"] + cpu["dfdaemon"])
                print(
                    f"{run} {name:8s} direct {direct:5.2f} s  cold {cold:5.2f} s  ratio {cold / direct:4.2f}  "
                    f"supernode+dfdaemon {cpu['supernode'] + cpu['dfdaemon']:4.2f} CPU-s  "
                    f"machine {cpu['machine']:4.2f}  upstream {served / sum(image.layer_sizes):.2f}x",
                    flush=True,
                )
                shutil.rmtree(workdir / f"image-{tag}", ignore_errors=True)
                shutil.rmtree(workdir / f"swarm-{run}", ignore_errors=True)
    print()
    print(f"{layers} x {mib} MiB, {pairs} rounds; medians")
    print("| variant  | environment | cold / direct | supernode + dfdaemon CPU-s |")
    print("|----------|-------------|---------------|----------------------------|")
    for name, env in variants:
        shown = ",".join(f"{k}={v}" for k, v in env.items()) or "-"
        ratio, used = statistics.median(ratios[name]), statistics.median(swarm_cpu[name])
        print(f"| {name:8s} | {shown} | {ratio:13.2f} | {used:26.2f} |")


def main() -> None:
    """Parse flags and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", type=parse_variant, action="append", required=True, help="NAME:VAR=VALUE,...")
    parser.add_argument("--pairs", type=int, default=8, help="rounds; each runs every variant once (default 8)")
    parser.add_argument("--layers", type=int, default=3, help="layers in each image (default 3)")
    parser.add_argument("--layer-mib", type=int, default=64, help="random data per layer in MiB (default 64)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep logs here (default: temp)")
    args = parser.parse_args()
    names = [name for name, _ in args.variant]
    if len(set(names)) != len(names) or len(names) < 2:
        parser.error("give two or more --variant with different names")
    missing = missing_binaries("docker-registry", "skopeo", "dockerd", "docker")
    if missing:
        sys.exit(f"mirror_ab: not installed: {', '.join(missing)}")
    workdir = args.work_dir or Path(tempfile.mkdtemp(prefix="mirror-ab-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        measure(workdir, args.variant, args.pairs, args.layers, args.layer_mib)
    finally:
        if args.work_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
