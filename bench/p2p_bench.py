"""P2P benchmarks in one run: origin offload for N peers, 1 GiB peer-to-peer vs nginx+curl, RSS, scheduler load.

Usage: python bench/p2p_bench.py [--quick] [--work-dir DIR]
Everything runs on loopback (127.0.0.1 and 127.0.0.10-20) and is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e" / "p2p"), str(REPO / "src"), str(REPO / "generated")]

import grpc  # noqa: E402
import uvloop  # noqa: E402
from cpu_account import process_cpu_seconds  # noqa: E402
from dandelion.common.v1 import common_pb2  # noqa: E402
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc  # noqa: E402
from fixtures.origin import OriginServer, sha256_file, start_origin, write_random_file  # noqa: E402
from fixtures.processes import ProcessGroup, free_port  # noqa: E402
from p2p_cluster import Swarm, finish  # noqa: E402
from vm_memory import warm_free_memory  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_offload(
    swarm: Swarm, origin_root: Path, origin_url: OriginServer, counts: list[int], size: int
) -> dict[int, tuple[float, float]]:
    """(origin bytes / content size, wall seconds) when N peers fetch a new file at once, for each N."""
    peers = list(swarm.peers.values())
    ratios: dict[int, tuple[float, float]] = {}
    for n in counts:
        name = f"offload-{n}.bin"
        sha = write_random_file(origin_root / name, size, seed=100 + n)
        url = origin_url.url(name)
        outs = [swarm.base_dir / "out" / f"{name}.{i}" for i in range(n)]
        began = time.monotonic()
        runs = [swarm.dfget_start(url, out, peer) for out, peer in zip(outs, peers[:n], strict=True)]
        for run, out in zip(runs, outs, strict=True):
            status, _, err = finish(run, timeout=600)
            if status != 0:
                raise RuntimeError(f"dfget failed for N={n}: {err.strip()}")
            if sha256_file(out) != sha:
                raise RuntimeError(f"wrong content for N={n}")
            out.unlink()
        ratios[n] = (origin_url.bytes_served(name) / size, time.monotonic() - began)
        print(f"  N={n}: origin bytes / size = {ratios[n][0]:.3f} in {ratios[n][1]:.1f} s", flush=True)
    return ratios


def start_nginx(group: ProcessGroup, work: Path, root: Path) -> int:
    """Our own nginx on 127.0.0.1:<free port> serving root (own config, pid and temp dirs)."""
    port = free_port()
    prefix = work / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    # As root, nginx's workers would run as nobody and get 403 in our 0700 work directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    )
    proc = group.start("nginx", ["nginx", "-p", str(prefix), "-c", str(conf)])
    proc.wait_for_tcp("127.0.0.1", port, timeout=15)
    return port


def bench_one_gib(
    swarm: Swarm, origin: OriginServer, group: ProcessGroup, work: Path, size: int, repeat: int
) -> tuple[float, float, float, float]:
    """Peer A holds the file; a fresh peer B fetches it from A, alternating with curl from nginx, `repeat` times.

    Returns the medians (p2p MB/s, curl MB/s) and the largest receiving / sending VmHWM (MiB).
    """
    name = "one-gib.bin"
    sha = write_random_file(origin.root / name, size, seed=7)
    url = origin.url(name)
    sender = swarm.start_peer("127.0.0.19", ["--upload-limit", "0"], name="sender")
    # With the digest the sender reads the origin for the swarm and the receiver is sent to it. Without one, and no
    # seed peer up, each peer reads the origin for itself (nobody could check a plain peer's pieces): no transfer.
    digest = f"sha256:{sha}"
    warm = swarm.dfget(url, work / "out" / "sender.bin", sender, "--digest", digest, timeout=900)
    if warm.returncode != 0:
        raise RuntimeError(f"seeding the sender failed: {warm.stderr.strip()}")
    (work / "out" / "sender.bin").unlink()
    port = start_nginx(group, work, origin.root)
    p2p: list[float] = []
    curl: list[float] = []
    receiver_rss = 0.0
    for run in range(repeat):
        receiver = swarm.start_peer(f"127.0.0.{20 + run}", ["--upload-limit", "0"], name=f"receiver-{run}")
        out = work / "out" / "receiver.bin"
        warm_free_memory(work, 2 * size)
        read_before = origin.bytes_served(name)
        cpu_before = process_cpu_seconds(receiver.process.pid), process_cpu_seconds(sender.process.pid)
        dfget_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        result = swarm.dfget(url, out, receiver, "--digest", digest, timeout=900)
        elapsed = time.monotonic() - began
        if result.returncode != 0:
            raise RuntimeError(f"p2p transfer failed: {result.stderr.strip()}")
        if (read := origin.bytes_served(name) - read_before) > size // 100:
            raise RuntimeError(f"the receiver read {read} bytes from the origin: not a peer-to-peer transfer")
        dfget_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (
            process_cpu_seconds(receiver.process.pid) - cpu_before[0],
            process_cpu_seconds(sender.process.pid) - cpu_before[1],
            dfget_after.ru_utime + dfget_after.ru_stime - dfget_before.ru_utime - dfget_before.ru_stime,
        )
        if sha256_file(out) != sha:
            raise RuntimeError("p2p transfer produced wrong content")
        out.unlink()
        p2p.append(size / elapsed / 1e6)
        receiver_rss = max(receiver_rss, vm_hwm_mib(receiver.process.pid))
        receiver.process.stop()
        shutil.rmtree(receiver.data_dir, ignore_errors=True)

        curl_out = work / "out" / "curl.bin"
        warm_free_memory(work, 2 * size)
        began = time.monotonic()
        subprocess.run(
            ["curl", "-sS", "--fail", "-o", str(curl_out), f"http://127.0.0.1:{port}/{name}"], check=True, timeout=600
        )
        curl.append(size / (time.monotonic() - began) / 1e6)
        curl_out.unlink()
        print(
            f"  run {run + 1}: peer→peer {p2p[-1]:,.0f} MB/s (CPU-s: receiving dfdaemon {cpu[0]:.2f}, sending"
            f" {cpu[1]:.2f}, dfget {cpu[2]:.2f}), nginx→curl {curl[-1]:,.0f} MB/s",
            flush=True,
        )
    return statistics.median(p2p), statistics.median(curl), receiver_rss, vm_hwm_mib(sender.process.pid)


async def simulate_peers(target: str, url: str, peers: int, window: int) -> tuple[int, float]:
    """Register `peers` fake hosts on one task and report every assigned piece at once; (reports, seconds)."""
    channel = grpc.aio.insecure_channel(target)
    stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
    sem = asyncio.Semaphore(64)

    async def register(i: int) -> str:
        async with sem:
            host = await stub.RegisterHost(
                scheduler_pb2.RegisterHostRequest(
                    host=scheduler_pb2.HostInfo(
                        hostname=f"sim-{i}", ip=f"127.1.{i // 250}.{i % 250 + 1}", port=40000 + i, upload_slots=8
                    )
                )
            )
            reply = await stub.RegisterTask(
                scheduler_pb2.RegisterTaskRequest(host_id=host.host_id, url_meta=common_pb2.UrlMeta(url=url))
            )
            return str(reply.peer_id)

    peer_ids = await asyncio.gather(*(register(i) for i in range(peers)))
    reports = 0

    async def run_peer(peer_id: str) -> None:
        nonlocal reports
        outbox: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
        await outbox.put(scheduler_pb2.SyncPiecesRequest(peer_id=peer_id, window=window))

        async def requests() -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
            while (item := await outbox.get()) is not None:
                yield item

        call = stub.SyncPieces(requests())
        async for event in call:
            if event.WhichOneof("event") == "assignments":
                results = [
                    scheduler_pb2.PieceResult(
                        piece_number=a.piece.number, parent_peer_id=a.parent.peer_id, success=True, duration_ms=1
                    )
                    for a in event.assignments.assignments
                ]
                reports += len(results)
                await outbox.put(scheduler_pb2.SyncPiecesRequest(peer_id=peer_id, results=results))
            elif event.WhichOneof("event") == "back_to_source":
                break
        await outbox.put(None)

    began = time.monotonic()
    outcomes = await asyncio.gather(*(run_peer(p) for p in peer_ids), return_exceptions=True)
    elapsed = time.monotonic() - began
    await channel.close(None)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        print(f"  {len(errors)} simulated peers ended with errors, e.g. {errors[0]!r}", flush=True)
    return reports, elapsed


def bench_scheduler(swarm: Swarm, origin: OriginServer, peers: int) -> tuple[int, float]:
    """Piece reports per second the supernode absorbs from `peers` simulated peers on one task."""
    assert swarm.supernode is not None
    name = "sched.bin"
    write_random_file(origin.root / name, 256 * MiB, seed=9)
    reports, seconds = uvloop.run(simulate_peers(swarm.supernode.target, origin.url(name), peers, window=16))
    return reports, seconds


PARTS = ("offload", "transfer", "scheduler")


def main() -> None:
    """Run the benchmarks and print the figures side by side."""
    parser = argparse.ArgumentParser(description="Dandelion P2P benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (64 MiB offload, 256 MiB transfer)")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--sim-peers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="peer-to-peer / curl runs, alternating (median)")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or PARTS)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="dandelion-bench-"))
    (work / "out").mkdir(parents=True, exist_ok=True)
    offload_size = 64 * MiB if args.quick else 128 * MiB
    big = 256 * MiB if args.quick else GiB
    random.seed(1)
    group = ProcessGroup(work / "logs")
    rows: list[tuple[str, str]] = []
    try:
        content = work / "content"
        content.mkdir(exist_ok=True)
        origin = start_origin(group, content)
        swarm = Swarm(group, work)
        swarm.start_supernode()
        if "offload" in parts:
            for i in range(8):
                swarm.start_peer(f"127.0.0.{10 + i}", ["--upload-limit", "0"])
            swarm.wait_hosts(8)
            print(f"origin offload ({offload_size // MiB} MiB file, N peers at once):", flush=True)
            for n, (ratio, seconds) in bench_offload(swarm, content, origin, [1, 2, 4, 8], offload_size).items():
                label = f"origin bytes / size, N={n} peers ({offload_size // MiB} MiB)"
                rows.append((label, f"{ratio:.3f} (all done in {seconds:.1f} s)"))
        if "transfer" in parts:
            print(f"peer-to-peer transfer of {big // MiB} MiB, {args.repeat} runs:", flush=True)
            # One parent, as the figure says: a supernode of its own without a seed peer, so the sender reads the
            # origin itself and is the only holder (with one, the seed peer would send part of every run).
            pair = Swarm(group, work / "transfer")
            pair.start_supernode(["--no-seed-peer"])
            p2p, curl, rss_rx, rss_tx = bench_one_gib(pair, origin, group, work, big, args.repeat)
            rows.append((f"peer→peer {big // MiB} MiB (dfget: verify + write), median", f"{p2p:,.0f} MB/s"))
            rows.append(("nginx → curl same file (loopback), median", f"{curl:,.0f} MB/s"))
            rows.append(("peer→peer / nginx→curl", f"{p2p / curl:.2f}x"))
            rows.append(("dfdaemon peak RSS (VmHWM), receiving / sending", f"{rss_rx:,.0f} / {rss_tx:,.0f} MiB"))
        if "scheduler" in parts:
            print(f"scheduler load, {args.sim_peers} simulated peers:", flush=True)
            reports, seconds = bench_scheduler(swarm, origin, args.sim_peers)
            label = f"supernode piece reports/s, {args.sim_peers} simulated peers"
            rows.append((label, f"{reports / seconds:,.0f}/s ({reports} reports)"))
    finally:
        group.stop_all()
    print()
    print("| measure | value |")
    print("|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
