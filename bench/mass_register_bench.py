"""A fleet that starts at once (prints figures, not a test): N dfdaemon host links register with one supernode at
the same moment, each on a connection of its own, as N dfdaemons would.

Usage: python bench/mass_register_bench.py [--hosts 16000] [--workers 2] [--compare] [--task] [--keep-logs]

Starts this checkout's supernode (`--no-seed-peer`, `--max-hosts` above `--hosts`, logging at info as deployed) on
127.0.0.1 and `--workers` load processes, each holding its share of the hosts as `peer.scheduler_client.SupernodeLink`
objects (the dfdaemon's own code: one connection per host, RegisterHost with its 10 s deadline, and what it does
when that deadline passes). Every link calls `ensure_registered()` at the same moment. Printed per run: how many
registered and how many marked the supernode down instead (a dfdaemon then sends its downloads to the next
supernode, or with one supernode to the origin), the time each took to register (p50, p90, max), and the
supernode's CPU seconds. `--task`: each host then registers one hot task (all the same URL) as a download does
(`SupernodeLink.call`, RegisterTask with the dfdaemon's deadline, `peer.context.REGISTER_TIMEOUT_S`), and counts
as registered only when both succeeded. `--compare` runs a second time against a new supernode with the links
impatient: a registration that timed out marks the supernode down at once, as before 2026-12-04 (the code's
`REACHING` emptied in the load processes). Each process opens one file descriptor per host: the run raises its own
limit to the hard limit and refuses more hosts than that allows. Everything started is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import resource
import shutil
import tempfile
import time
from collections import Counter
from multiprocessing.queues import Queue
from pathlib import Path

from memory_soak import free_port, start_supernode, stop_all, wait_ready

FDS_PER_HOST = 1
SPARE_FDS = 500


def register_all(port: int, first: int, count: int, go_at: float, mode: tuple[bool, bool], out: Queue) -> None:  # type: ignore[type-arg]
    """A load process: count host links registering at go_at (and, with mode's task, registering one task each);
    puts (outcome, seconds) per host."""
    import uvloop
    from dandelion.common.v1 import common_pb2
    from dandelion.scheduler.v1 import scheduler_pb2

    from peer import scheduler_client
    from peer.context import REGISTER_TIMEOUT_S
    from peer.scheduler_client import SupernodeLink, host_info

    impatient, task = mode
    meta = common_pb2.UrlMeta(url="http://127.0.0.1:9/hot-layer", digest="sha256:" + "ab" * 32)
    logging.basicConfig(level=logging.ERROR)
    if impatient:
        scheduler_client.REACHING = ()  # type: ignore[misc]  # a registration that timed out marks it down

    async def main() -> None:
        links = [
            SupernodeLink(f"127.0.0.1:{port}", host_info(f"127.{1 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}", 1, 8))
            for i in range(first, first + count)
        ]
        await asyncio.sleep(max(0.0, go_at - time.time()))

        async def one(link: SupernodeLink) -> tuple[str, float]:
            began = time.time()
            try:
                await link.ensure_registered()
                if task:  # as peer.download.link.register does: at the task's owner
                    await link.call(
                        lambda stub, host_id: stub.RegisterTask(
                            scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta),
                            timeout=REGISTER_TIMEOUT_S,
                        )
                    )
            except Exception as exc:  # each outcome is counted by its kind
                return type(exc).__name__, time.time() - began
            return "registered", time.time() - began

        out.put(await asyncio.gather(*(one(link) for link in links)))
        await asyncio.gather(*(link.close(leave=False) for link in links), return_exceptions=True)

    uvloop.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def one_run(args: argparse.Namespace, work: Path, impatient: bool) -> str:
    port = free_port()
    limit = str(args.hosts + 10)
    proc = start_supernode(work, port, "--max-hosts", limit, "--max-peers-per-task", limit, log_level="info")
    children: list[multiprocessing.process.BaseProcess] = []
    try:
        wait_ready(port, proc)
        out: Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        share = args.hosts // args.workers
        go_at = time.time() + 2 + share / 4000  # every link made before the start
        for n in range(args.workers):
            count = share if n < args.workers - 1 else args.hosts - share * (args.workers - 1)
            mode = (impatient, args.task)
            child = multiprocessing.Process(target=register_all, args=(port, n * share, count, go_at, mode, out))
            child.start()
            children.append(child)
        cpu_before = cpu_seconds(proc.pid)
        results = [item for _ in children for item in out.get(timeout=600)]
        cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        stop_all(children, [proc])
    outcomes = Counter(kind for kind, _ in results)
    times = sorted(seconds for kind, seconds in results if kind == "registered")
    shown = ", ".join(f"{kind} {count}" for kind, count in outcomes.most_common())
    took = (
        f"registered in p50 {times[len(times) // 2]:.1f} s, p90 {times[int(len(times) * 0.9)]:.1f} s, "
        f"max {times[-1]:.1f} s"
        if times
        else "none registered"
    )
    mode = "impatient (before)" if impatient else "patient (now)"
    registered = outcomes["registered"]
    return f"| {mode} | {args.hosts} | {registered} | {args.hosts - registered} | {took} | {cpu:.1f} | {shown} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=16_000, help="hosts registering at once (default 16000)")
    parser.add_argument("--workers", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--compare", action="store_true", help="also run with the links impatient, as before")
    parser.add_argument("--task", action="store_true", help="then RegisterTask one hot task per host, as a download")
    parser.add_argument("--keep-logs", action="store_true", help="keep the supernode's logs (their path is printed)")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.hosts * FDS_PER_HOST + SPARE_FDS > hard or args.hosts < args.workers:
        raise SystemExit(f"--hosts {args.hosts}: the open-files limit here ({hard}) allows at most {hard - SPARE_FDS}")
    work = Path(tempfile.mkdtemp(prefix="mass-register-"))
    rows = [one_run(args, work, impatient=False)]
    if args.compare:
        rows.append(one_run(args, work, impatient=True))
    what = "registered (host and task)" if args.task else "registered"
    print(f"| links | hosts | {what} | did not | time to register | supernode CPU-s | outcomes |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.keep_logs:
        print(f"logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
