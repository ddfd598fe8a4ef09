"""Hosts (four by default) pulling one image behind a shaped registry uplink: the swarm vs direct pulls vs the bounds.

Usage: sudo python bench/mirror_shaped_bench.py [--hosts 4] [--layers 3] [--layer-mib 16] [--registry-mbit 100]
           [--host-mbit 200] [--dest dir|oci] [--piece-size SIZE] [--repeat 2]
           [--latency-layers 4] [--latency-layer-mib 4] [--latency-repeat 3]
           [--skip-shaped] [--skip-latency] [--work-dir DIR]

Part 1 (needs root: `ip netns`, `tc`): network namespaces dlbench-reg (docker-registry on 10.77.0.2:5000,
egress shaped with tbf to --registry-mbit), dlbench-sn (supernode on 10.77.0.3:8002) and dlbench-h1..hN
(N = --hosts; one dfdaemon each on 10.77.0.11-, its mirror on that namespace's own 127.0.0.1:65001), joined by a
bridge inside namespace dlbench-br; supernode and host uplinks are shaped to --host-mbit (0: unshaped).
Nothing is added to the root namespace. Per run: N skopeo pulls at once through each host's own mirror
(a new swarm with empty caches), then N direct pulls at once, then 1 direct pull; every pulled blob's
sha256 is checked. Compared with the Kumar-Ross lower bound for P2P distribution max(F/u_s, N*F/(u_s+sum u_i))
and the client-server bound N*F/u_s.

Part 2 (loopback only): a layer already held by another dfdaemon (and the supernode), the requesting
dfdaemon holds nothing; time from sending GET /v2/<name>/blobs/<digest> to its mirror until the first
body byte arrives.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests"), str(REPO / "tests" / "e2e" / "mirror"), str(REPO / "src")]

from fixtures.clients import loopback_env, missing_binaries, short_dir  # noqa: E402
from fixtures.images import MiB, OciImage, build_and_push, build_oci_image  # noqa: E402
from fixtures.processes import ManagedProcess, console_script, start_process  # noqa: E402
from fixtures.registry import Registry, registry_config, run_registry  # noqa: E402
from mirror_swarm import run_mirror_swarm  # noqa: E402
from netns import NetHost, NetnsError, bridged_hosts, tx_bytes, wait_tcp_in  # noqa: E402

BRIDGE_NETNS = "dlbench-br"
REGISTRY_PORT = 5000
SUPERNODE_PORT = 8002
MIRROR_ADDR = "127.0.0.1:65001"  # each host namespace has its own loopback
REPOSITORY, TAG = "bench/img", "1"
N_HOSTS = 4  # default --hosts


@dataclass(frozen=True)
class Testbed:
    """The namespaces of one shaped run."""

    registry: NetHost
    supernode: NetHost
    hosts: tuple[NetHost, ...]


@dataclass
class ShapedRow:
    """One scenario of part 1: wall time until every pull finished, and upstream layer bytes, per run."""

    name: str
    seconds: list[float] = field(default_factory=list)
    upstream_bytes: list[int] = field(default_factory=list)
    # Bytes each namespace sent on its eth0 during the scenario, per run (registry, supernode, h1..hN).
    uplink_bytes: list[dict[str, int]] = field(default_factory=list)


def make_testbed(registry_mbit: int, host_mbit: int, n_hosts: int = N_HOSTS) -> Testbed:
    """Namespace names, addresses and uplink rates (host_mbit 0: unshaped)."""
    host_rate = host_mbit or None
    return Testbed(
        registry=NetHost("dlbench-reg", "10.77.0.2", registry_mbit),
        supernode=NetHost("dlbench-sn", "10.77.0.3", host_rate),
        hosts=tuple(NetHost(f"dlbench-h{i}", f"10.77.0.{10 + i}", host_rate) for i in range(1, n_hosts + 1)),
    )


def start_in(host: NetHost, name: str, argv: Sequence[str], log: Path, ip: str, port: int) -> ManagedProcess:
    """Start argv inside host's namespace and wait until ip:port accepts connections there."""
    proc = start_process(name, host.argv(argv), log, env=loopback_env())
    try:
        wait_tcp_in(host, ip, port, proc.alive)
    except BaseException:
        proc.stop()
        raise
    return proc


@contextmanager
def namespaced_registry(bed: Testbed, workdir: Path) -> Iterator[Registry]:
    """docker-registry in the registry namespace on 10.77.0.2:5000 (Registry reads its access log)."""
    workdir.mkdir(parents=True, exist_ok=True)
    host = bed.registry
    config = workdir / "config.yml"
    config.write_text(json.dumps(registry_config(workdir, host.ip, REGISTRY_PORT, None), indent=1))
    registry = Registry(host.ip, REGISTRY_PORT, workdir, workdir / "registry.log", None)
    proc = start_in(
        host, "docker-registry", ["docker-registry", "serve", str(config)], registry.log_path, host.ip, REGISTRY_PORT
    )
    try:
        yield registry
    finally:
        proc.stop()


def push_in(host: NetHost, image: OciImage, registry_addr: str) -> None:
    """Push image with skopeo from inside host's namespace as registry_addr/bench/img:1 (Docker schema 2)."""
    argv = [
        *("skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-no-creds", "--format", "v2s2"),
        *(image.source, f"docker://{registry_addr}/{REPOSITORY}:{TAG}"),
    ]
    result = subprocess.run(host.argv(argv), capture_output=True, text=True, timeout=600, env=loopback_env())
    if result.returncode != 0:
        raise RuntimeError(f"skopeo push failed: {result.stderr.strip()}")


@contextmanager
def namespaced_swarm(
    bed: Testbed, workdir: Path, registry_url: str, piece_size: str | None
) -> Iterator[list[ManagedProcess]]:
    """A new supernode (piece_size None: its default) and one dfdaemon per host namespace, all with empty caches."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack, short_dir("dlb-") as sockets:
        sn = bed.supernode
        supernode_addr = f"{sn.ip}:{SUPERNODE_PORT}"
        argv = [
            console_script("supernode"),
            *("--listen", supernode_addr, "--advertise-ip", sn.ip, "--data-dir", str(workdir / "supernode")),
            *(("--piece-size", piece_size) if piece_size else ()),
        ]
        proc = start_in(sn, "supernode", argv, workdir / "supernode.log", sn.ip, SUPERNODE_PORT)
        stack.callback(proc.stop)
        procs = [proc]
        for index, host in enumerate(bed.hosts, start=1):
            name = f"dfdaemon-h{index}"
            argv = [
                console_script("dfdaemon"),
                *("--supernode", supernode_addr, "--listen", host.ip, "--data-dir", str(workdir / name)),
                *("--daemon-listen", f"unix:{sockets / name}.sock"),
                *("--mirror", MIRROR_ADDR, "--registry", registry_url),
            ]
            proc = start_in(host, name, argv, workdir / f"{name}.log", "127.0.0.1", 65001)
            stack.callback(proc.stop)
            procs.append(proc)
        yield procs
    # The processes are stopped; their caches go (the machine's disk is shared), their logs stay.
    for data_dir in ["supernode", *(f"dfdaemon-h{index}" for index in range(1, len(bed.hosts) + 1))]:
        shutil.rmtree(workdir / data_dir, ignore_errors=True)


def sha256_file(path: Path) -> str:
    """sha256:<hex> of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def verify_pulled(out: Path, digests: Sequence[str], layers: Sequence[str], dest: str) -> None:
    """Every blob skopeo wrote to out has the digest it is named after, and every expected one is there.

    With dest "oci" skopeo converts the Docker manifest and writes a new config blob, so only the
    layers are expected by digest there; every blob file present is still checked.
    """
    blobs = out / "blobs" / "sha256" if dest == "oci" else out
    expected = layers if dest == "oci" else digests
    present = [path for path in blobs.iterdir() if len(path.name) == 64] if blobs.is_dir() else []
    for digest in expected:
        if not (blobs / digest.removeprefix("sha256:")).exists():
            raise RuntimeError(f"pull into {out} has no blob {digest}")
    for path in present:
        actual = sha256_file(path)
        if actual != "sha256:" + path.name:
            raise RuntimeError(f"pull into {out}: blob {path.name} has {actual}")


def pull_at_once(
    hosts: Sequence[NetHost], source: str, outdir: Path, digests: Sequence[str], layers: Sequence[str], dest: str
) -> float:
    """skopeo copy docker://source from every host's namespace at the same moment; seconds until all are done.

    dest "dir" copies layers one after another (skopeo's dir: transport is not thread-safe for blobs);
    "oci" lets skopeo fetch layers in parallel, as docker does.
    """
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    pulls: list[tuple[Path, subprocess.Popen[str]]] = []
    start = time.perf_counter()
    try:
        for host in hosts:
            out = outdir / host.netns
            argv = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-no-creds"]
            argv += [f"docker://{source}", f"oci:{out}:{TAG}" if dest == "oci" else f"dir:{out}"]
            popen = subprocess.Popen(
                host.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=loopback_env()
            )
            pulls.append((out, popen))
        failures = []
        for out, popen in pulls:
            _, stderr = popen.communicate(timeout=900)
            if popen.returncode != 0:
                failures.append(f"{out.name}: {stderr.strip()}")
        seconds = time.perf_counter() - start
    finally:
        for _, popen in pulls:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
    if failures:
        raise RuntimeError("pull failed: " + "; ".join(failures))
    for out, _ in pulls:
        verify_pulled(out, digests, layers, dest)
    shutil.rmtree(outdir, ignore_errors=True)
    return seconds


def layer_bytes(registry: Registry, layers: Sequence[str]) -> int:
    """Layer bytes the registry has served so far."""
    time.sleep(0.2)  # the access log line is written after the response
    served = registry.blob_bytes()
    return sum(served[digest] for digest in layers)


def measure_shaped(args: argparse.Namespace, workdir: Path) -> tuple[list[ShapedRow], int, int]:
    """Part 1; returns the rows, F (config + layer bytes) and the layer bytes alone."""
    bed = make_testbed(args.registry_mbit, args.host_mbit, args.hosts)
    n = args.hosts
    rows = [ShapedRow(f"swarm: {n} pulls via own mirror"), ShapedRow(f"{n} direct pulls at once")]
    rows.append(ShapedRow("1 direct pull"))
    print(f"building {args.layers} x {args.layer_mib} MiB image", flush=True)
    image = build_oci_image(workdir / "oci", [args.layer_mib * MiB] * args.layers, TAG)
    layers = [blob.digest for blob in image.layers]
    digests = [image.config.digest, *layers]
    total = image.config.size + sum(blob.size for blob in image.layers)
    layer_total = sum(blob.size for blob in image.layers)
    with ExitStack() as stack:
        everyone = [bed.registry, bed.supernode, *bed.hosts]
        stack.enter_context(bridged_hosts(BRIDGE_NETNS, everyone))
        registry = stack.enter_context(namespaced_registry(bed, workdir / "registry"))
        push_in(bed.registry, image, registry.addr)
        direct = f"{registry.addr}/{REPOSITORY}:{TAG}"
        via_mirror = f"{MIRROR_ADDR}/{REPOSITORY}:{TAG}"
        for run in range(args.repeat):
            print(f"run {run + 1}/{args.repeat}", flush=True)
            scenarios = [
                (rows[0], via_mirror, bed.hosts),
                (rows[1], direct, bed.hosts),
                (rows[2], direct, bed.hosts[:1]),
            ]
            for row, source, hosts in scenarios:
                before = layer_bytes(registry, layers)
                with ExitStack() as swarm_stack:
                    if row is rows[0]:
                        # A new supernode and new dfdaemons with empty caches for every cold swarm run.
                        swarm_stack.enter_context(
                            namespaced_swarm(bed, workdir / f"swarm-{run}", registry.url, args.piece_size)
                        )
                    sent_before = {host.netns: tx_bytes(host) for host in everyone}
                    seconds = pull_at_once(hosts, source, workdir / "pulled", digests, layers, args.dest)
                    row.uplink_bytes.append({host.netns: tx_bytes(host) - sent_before[host.netns] for host in everyone})
                served = layer_bytes(registry, layers) - before
                row.seconds.append(seconds)
                row.upstream_bytes.append(served)
                print(
                    f"  {row.name:32s} {seconds:7.2f} s  upstream layer bytes {served / layer_total:.2f}x", flush=True
                )
    return rows, total, layer_total


def measure_first_byte(args: argparse.Namespace, workdir: Path) -> list[float]:
    """Part 2 on loopback: ms from sending a blob GET to a peer-less mirror until its first body byte."""
    samples: list[float] = []
    sizes = [args.latency_layer_mib * MiB] * args.latency_layers
    with run_registry(workdir / "lat-registry") as registry:
        image = build_and_push(workdir / "lat-image", registry.addr, "bench/lat", sizes)
        with run_mirror_swarm(workdir / "lat-swarm", registry.url, nodes=1 + args.latency_repeat) as swarm:
            holder, *askers = swarm.nodes
            with holder.client() as client:
                for digest in image.layer_digests:  # the holder (and the supernode's seed) now hold every layer
                    response = client.get(f"/v2/bench/lat/blobs/{digest}")
                    response.raise_for_status()
                    if "sha256:" + hashlib.sha256(response.content).hexdigest() != digest:
                        raise RuntimeError(f"holder served a wrong blob for {digest}")
            for asker in askers:  # each asker holds nothing before its first request for a layer
                for digest in image.layer_digests:
                    samples.append(first_byte_ms(asker.ip, asker.mirror_port, f"/v2/bench/lat/blobs/{digest}", digest))
    return samples


def first_byte_ms(ip: str, port: int, path: str, digest: str) -> float:
    """GET path on a connected socket; ms until the first body byte; reads and checks the rest."""
    connection = http.client.HTTPConnection(ip, port, timeout=60)
    try:
        connection.connect()
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        first = response.read(1)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200 or not first:
            raise RuntimeError(f"GET {path}: status {response.status}")
        hasher = hashlib.sha256(first)
        while chunk := response.read(1 << 20):
            hasher.update(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            raise RuntimeError(f"GET {path}: body does not match {digest}")
        return elapsed
    finally:
        connection.close()


def print_shaped(args: argparse.Namespace, rows: list[ShapedRow], total: int, layer_total: int) -> None:
    """The part 1 table with the two bounds and the ratios."""
    u_s = args.registry_mbit * 1e6 / 8  # bytes/s; tc's mbit is 10^6 bit/s
    u_i = (args.host_mbit or float("inf")) * 1e6 / 8
    n = args.hosts
    p2p_bound = max(total / u_s, n * total / (u_s + n * u_i))
    cs_bound = n * total / u_s
    host_rate = f"{args.host_mbit} Mbit/s" if args.host_mbit else "unshaped"
    print()
    print(
        f"shaped pulls: N = {n} hosts, F = {total / 1e6:.1f} MB ({args.layers} x {args.layer_mib} MiB "
        f"random layers gzip + config), registry uplink u_s = {args.registry_mbit} Mbit/s, host and supernode "
        f"uplinks u_i = {host_rate}; skopeo to {args.dest}:; piece size {args.piece_size or 'default'}; "
        f"median of {args.repeat} run(s)"
    )
    print(f"| {'measure':44s} | {'seconds':>8s} | {'/ P2P bound':>11s} | {'/ C-S bound':>11s} | {'upstream':>8s} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 13}|{'-' * 13}|{'-' * 10}|")

    def line(name: str, seconds: float, upstream: str) -> None:
        ratios = f"{seconds / p2p_bound:10.2f}x | {seconds / cs_bound:10.2f}x"
        print(f"| {name:44s} | {seconds:8.2f} | {ratios} | {upstream:>8s} |")

    line("P2P bound max(F/u_s, N*F/(u_s+sum u_i))", p2p_bound, "")
    line("client-server bound N*F/u_s", cs_bound, "")
    medians: dict[str, float] = {}
    for row in rows:
        medians[row.name] = statistics.median(row.seconds)
        upstream = statistics.median(row.upstream_bytes) / layer_total
        line(row.name, medians[row.name], f"{upstream:.2f}x")
    swarm, direct_n, direct_1 = (medians[row.name] for row in rows)
    print(f"swarm speed-up over {rows[1].name}: {direct_n / swarm:.2f}x; swarm / 1 direct pull {swarm / direct_1:.2f}x")
    print("upstream = layer bytes the registry sent during the scenario / layer bytes of the image")
    print("bytes each namespace sent on its uplink during the scenario, / F, median of runs:")
    for row in rows:
        names = list(row.uplink_bytes[0])
        shares = [statistics.median(run[name] for run in row.uplink_bytes) / total for name in names]
        cells = "  ".join(
            f"{name.removeprefix('dlbench-')} {share:.2f}" for name, share in zip(names, shares, strict=True)
        )
        print(f"  {row.name:32s} {cells}")


def print_latency(args: argparse.Namespace, samples: list[float]) -> None:
    """The part 2 figures."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    print()
    print(
        f"first blob byte via a mirror whose dfdaemon lacks the layer (another peer holds it), loopback, "
        f"{args.latency_layers} x {args.latency_layer_mib} MiB layers x {args.latency_repeat} fresh dfdaemons"
    )
    print(f"| {'samples':>7s} | {'median ms':>9s} | {'p90 ms':>7s} | {'min ms':>7s} | {'max ms':>7s} | target |")
    print(f"|{'-' * 9}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")
    median = statistics.median(ordered)
    verdict = "met" if median < 100 else "MISSED"
    print(
        f"| {len(ordered):7d} | {median:9.1f} | {p90:7.1f} | {ordered[0]:7.1f} | {ordered[-1]:7.1f} | <100 {verdict} |"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """Parse flags, run both parts, print the tables; everything started is stopped and removed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=N_HOSTS, help=f"hosts pulling at once (default {N_HOSTS})")
    parser.add_argument("--layers", type=int, default=3, help="layers in the shaped-run image (default 3)")
    parser.add_argument("--layer-mib", type=int, default=16, help="random MiB per layer (default 16)")
    parser.add_argument("--registry-mbit", type=int, default=100, help="registry uplink, Mbit/s (default 100)")
    parser.add_argument(
        "--host-mbit", type=int, default=200, help="supernode and host uplinks, Mbit/s; 0 = unshaped (default 200)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each shaped scenario; median shown (default 2)")
    parser.add_argument("--latency-layers", type=int, default=4, help="layers for the first-byte test (default 4)")
    parser.add_argument("--latency-layer-mib", type=int, default=4, help="MiB per first-byte layer (default 4)")
    parser.add_argument(
        "--latency-repeat", type=int, default=3, help="fresh requesting dfdaemons in the first-byte test (default 3)"
    )
    parser.add_argument(
        "--dest",
        choices=("dir", "oci"),
        default="dir",
        help="skopeo destination: dir (layers one at a time, default) or oci (layers in parallel)",
    )
    parser.add_argument("--piece-size", default=None, help="supernode --piece-size, e.g. 1MiB (default: its own)")
    parser.add_argument("--skip-shaped", action="store_true", help="skip part 1 (namespaces, needs root)")
    parser.add_argument("--skip-latency", action="store_true", help="skip part 2 (first blob byte)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep logs and data here (default: temp)")
    args = parser.parse_args()
    if not 1 <= args.hosts <= 40:
        parser.error(f"--hosts wants 1 to 40, got {args.hosts}")
    needed = ["docker-registry", "skopeo"] + ([] if args.skip_shaped else ["ip", "tc"])
    missing = missing_binaries(*needed)
    if missing:
        sys.exit(f"mirror_shaped_bench: not installed: {', '.join(missing)}")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    workdir = args.work_dir or Path(tempfile.mkdtemp(prefix="mirror-shaped-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shaped: tuple[list[ShapedRow], int, int] | None = None
    samples: list[float] = []
    try:
        if not args.skip_shaped:
            shaped = measure_shaped(args, workdir)
        if not args.skip_latency:
            samples = measure_first_byte(args, workdir)
    except KeyboardInterrupt:
        sys.exit("mirror_shaped_bench: interrupted; its processes and namespaces are gone")
    except NetnsError as exc:
        logs = f"; logs under {workdir}" if args.work_dir else ""
        sys.exit(f"mirror_shaped_bench: {exc} (part 1 needs root; --skip-shaped runs part 2 only){logs}")
    finally:
        if args.work_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if shaped is not None:
        print_shaped(args, *shaped)
    if samples:
        print_latency(args, samples)
    print("MB = 10^6 bytes; the machine is shared and noisy: compare figures from one run.")


if __name__ == "__main__":
    main()
