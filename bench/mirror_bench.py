"""docker pull through the registry mirror vs directly vs distribution's own pull-through cache.

Usage: python bench/mirror_bench.py [--layers 3] [--layer-mib 32] [--repeat 3] [--work-dir DIR]

Starts everything on loopback (docker-registry on 127.0.0.1, a supernode, dfdaemons on 127.0.0.11-12,
private dockerd instances) and stops it by PID at the end. For each way of pulling it prints the
median wall time of `docker pull` (layer extraction included), MB/s of compressed image bytes, and
the bytes the upstream registry served for the image's layers during that pull. Before every timed
pull, in every scenario alike, free memory is warmed (see vm_memory.py: on these VMs the first write
into freed memory is ~10x slower, which would penalise whichever scenario writes more page cache).

  direct            docker pull REGISTRY/ns/img (no mirror)
  mirror cold       through node A's mirror, nothing cached anywhere (new swarm per run)
  mirror warm       through node A's mirror again (A's cache holds the layers)
  mirror peer       through node B's mirror (B holds nothing; A and the supernode do)
  proxy cold/warm   distribution's pull-through cache (`proxy: remoteurl`), new/again

It also prints the CPU seconds each program used during each pull (from /proc), and the whole machine's.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e" / "mirror"), str(REPO / "src")]

from cpu_account import CpuSnapshot  # noqa: E402
from fixtures.clients import Dockerd, missing_binaries, run_dockerd  # noqa: E402
from fixtures.images import MiB, PushedImage, build_and_push  # noqa: E402
from fixtures.registry import Registry, run_registry  # noqa: E402
from mirror_swarm import MirrorSwarm, run_mirror_swarm  # noqa: E402
from vm_memory import warm_free_memory  # noqa: E402

CPU_COLUMNS = ("machine", "docker", "registry", "supernode", "dfdaemon")
_BLOB_SENT = re.compile(
    r'^(?P<when>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) INFO dfdaemon: \S+ "GET /v2/\S+/blobs/'
    r'(?P<digest>sha256:[0-9a-f]{64})" 200 (?P<size>\d+) '
)


@dataclass
class Row:
    """One way of pulling: wall times, upstream layer bytes and CPU seconds by program, per run."""

    name: str
    seconds: list[float] = field(default_factory=list)
    upstream_bytes: list[int] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)
    last_layer_out: list[float] = field(default_factory=list)  # through a mirror: when its last layer was sent


def layer_bytes(registry: Registry, image: PushedImage) -> int:
    """Bytes the registry has sent so far for the image's layers."""
    served = registry.blob_bytes()
    return sum(served[digest] for digest in image.layer_digests)


def layers_out(log_path: Path, image: PushedImage, since: float) -> list[float]:
    """Seconds after since (a time.time()) at which a mirror finished sending each of the image's layers, in
    manifest order, from its access log (the last whole-layer GET of each)."""
    ended: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _BLOB_SENT.match(line)
        if match and int(match["size"]) > 0:
            when = datetime.fromisoformat(match["when"]).timestamp()
            if when >= since:
                ended[match["digest"]] = when - since
    return [ended.get(digest, float("nan")) for digest in image.layer_digests]


def timed_pull(
    docker: Dockerd, reference: str, registry: Registry, image: PushedImage, workdir: Path
) -> tuple[float, int, dict[str, float], float]:
    """Pull reference on docker (which holds no images); seconds, upstream layer bytes and CPU seconds for it, and
    when it started (time.time())."""
    docker.remove_all_images()
    warm_free_memory(workdir, 4 * sum(image.layer_sizes))  # every scenario alike: see vm_memory
    before = layer_bytes(registry, image)
    cpu_before = CpuSnapshot()
    started_at = time.time()
    start = time.perf_counter()
    result = docker.pull(reference, timeout=900)
    seconds = time.perf_counter() - start
    cpu = CpuSnapshot().since(cpu_before)
    if result.returncode != 0:
        raise RuntimeError(f"docker pull {reference} failed: {result.stderr.strip()}")
    time.sleep(0.2)  # the access log line is written after the response
    return seconds, layer_bytes(registry, image) - before, cpu, started_at


@contextmanager
def fresh_swarm(workdir: Path, registry: Registry, run: int) -> Iterator[MirrorSwarm]:
    """A new supernode and two dfdaemons with empty caches."""
    with run_mirror_swarm(workdir / f"swarm-{run}", registry.url, nodes=2) as swarm:
        yield swarm


def measure(workdir: Path, layers: int, layer_mib: int, repeat: int) -> tuple[list[Row], int]:
    """Run every scenario repeat times; return the rows and the image's compressed size."""
    names = ("direct", "mirror cold", "mirror warm", "mirror peer", "proxy cold", "proxy warm")
    rows = {name: Row(name) for name in names}
    with ExitStack() as stack:
        registry = stack.enter_context(run_registry(workdir / "registry"))
        docker = stack.enter_context(run_dockerd(workdir / "docker"))
        total = 0

        def record(name: str, reference: str, image: PushedImage, mirror_log: Path | None = None) -> None:
            seconds, served, cpu, started_at = timed_pull(docker, reference, registry, image, workdir)
            rows[name].seconds.append(seconds)
            rows[name].upstream_bytes.append(served)
            rows[name].cpu.append(cpu)
            spent = " ".join(f"{column} {cpu[column]:.2f}" for column in CPU_COLUMNS)
            print(
                f"  {name:12s} {seconds:7.2f} s  upstream layer bytes {served / total:.2f}x  CPU s: {spent}", flush=True
            )
            if mirror_log is not None:
                out = layers_out(mirror_log, image, started_at)
                rows[name].last_layer_out.append(max(out))
                shown = " / ".join(f"{t:.2f}" for t in out)
                after = seconds - max(out)
                print(f"  {'':12s} layers sent (manifest order) at {shown} s; docker then worked {after:.2f} s")

        for run in range(repeat):
            # A new image per run: nothing is warm anywhere unless the scenario made it so.
            image = build_and_push(
                workdir / f"image-{run}", registry.addr, f"bench/img{run}", [layer_mib * MiB] * layers
            )
            total = sum(image.layer_sizes)
            print(f"run {run + 1}/{repeat}: {layers} x {layer_mib} MiB", flush=True)
            record("direct", image.reference, image)
            with fresh_swarm(workdir, registry, run) as swarm:
                node_a, node_b = swarm.nodes
                via_a, via_b = image.reference_via(node_a.mirror_addr), image.reference_via(node_b.mirror_addr)
                record("mirror cold", via_a, image, node_a.proc.log_path)
                record("mirror warm", via_a, image)
                record("mirror peer", via_b, image)
            with run_registry(workdir / f"proxy-{run}", proxy_remote=registry.url) as proxy:
                via_proxy = image.reference_via(proxy.addr)
                record("proxy cold", via_proxy, image)
                record("proxy warm", via_proxy, image)
        return list(rows.values()), total


def main() -> None:
    """Parse flags, run the scenarios, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=3, help="layers in the image (default 3)")
    parser.add_argument("--layer-mib", type=int, default=32, help="random data per layer in MiB (default 32)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario; the median is shown (default 3)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep logs and data here (default: temp)")
    args = parser.parse_args()
    missing = missing_binaries("docker-registry", "skopeo", "dockerd", "docker")
    if missing:
        sys.exit(f"mirror_bench: not installed: {', '.join(missing)}")
    workdir = args.work_dir or Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        rows, total = measure(workdir, args.layers, args.layer_mib, args.repeat)
    finally:
        if args.work_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        f"docker pull of {args.layers} x {args.layer_mib} MiB layers ({total / 1e6:.0f} MB compressed), "
        f"median of {args.repeat}; MB/s = 10^6 bytes/s"
    )
    print(f"| {'scenario':12s} | {'seconds':>8s} | {'MB/s':>7s} | {'upstream layer bytes':>20s} |")
    print(f"|{'-' * 14}|{'-' * 10}|{'-' * 9}|{'-' * 22}|")
    for row in rows:
        seconds = statistics.median(row.seconds)
        ratio = statistics.median(row.upstream_bytes) / total
        print(f"| {row.name:12s} | {seconds:8.2f} | {total / seconds / 1e6:7.1f} | {ratio:19.2f}x |")
    for row in rows:
        if row.last_layer_out:
            print(
                f"{row.name}: the mirror had sent every layer {statistics.median(row.last_layer_out):.2f} s after the "
                f"pull started (median); docker unpacks the last layer after that"
            )
    print()
    print("CPU seconds during the pull, median per program (machine = all cores, every process)")
    print("| scenario     | " + " | ".join(f"{column:>9s}" for column in CPU_COLUMNS) + " |")
    print(f"|{'-' * 14}|" + "|".join("-" * 11 for _ in CPU_COLUMNS) + "|")
    for row in rows:
        medians = [statistics.median(cpu[column] for cpu in row.cpu) for column in CPU_COLUMNS]
        print(f"| {row.name:12s} | " + " | ".join(f"{value:9.2f}" for value in medians) + " |")


if __name__ == "__main__":
    main()
