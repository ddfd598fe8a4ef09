"""The namespaces of bench/scale_bench.py: an nginx origin, the supernode, K seed peers and N dfdaemon hosts on
shaped uplinks.

Namespaces dlscale-origin (10.77.8.2), dlscale-sn (10.77.8.3), dlscale-s1..sK (10.77.8.201...), dlscale-h1..hN
(10.77.8.11...) and dlscale-br (the bridge); addresses exist only inside them (bench/netns.py). Each process is
stopped by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from fixtures.clients import loopback_env, short_dir
from fixtures.processes import ManagedProcess, console_script, start_process
from netns import NetHost, wait_tcp_in

PREFIX = "dlscale-"
BRIDGE_NETNS = PREFIX + "br"
SUBNET = "10.77.8"  # mirror_shaped_bench.py uses 10.77.0.0/24 and dlbench-*
ORIGIN_PORT = 8080
SUPERNODE_PORT = 8002
PEER_PORT = 65000
MAX_SEED_PEERS = 16  # 10.77.8.201-216
SEED_READY_S = 60  # seconds a seed peer has to open its order stream


@dataclass(frozen=True)
class Testbed:
    """The origin, the supernode (its in-process seed), the seed peers and the hosts, with their uplink rates."""

    origin: NetHost
    supernode: NetHost
    hosts: tuple[NetHost, ...]
    seeds: tuple[NetHost, ...] = ()

    def everyone(self) -> list[NetHost]:
        """Every namespace that takes part, origin first."""
        return [self.origin, self.supernode, *self.seeds, *self.hosts]


def make_testbed(n_hosts: int, origin_mbit: int, host_mbit: int, n_seeds: int = 0) -> Testbed:
    """Names, addresses and uplinks: the origin at origin_mbit, the supernode, every seed peer and every host at
    host_mbit."""
    if not 0 <= n_seeds <= MAX_SEED_PEERS:
        raise ValueError(f"0..{MAX_SEED_PEERS} seed peers, got {n_seeds}")
    return Testbed(
        origin=NetHost(PREFIX + "origin", f"{SUBNET}.2", origin_mbit),
        supernode=NetHost(PREFIX + "sn", f"{SUBNET}.3", host_mbit),
        hosts=tuple(NetHost(f"{PREFIX}h{i}", f"{SUBNET}.{10 + i}", host_mbit) for i in range(1, n_hosts + 1)),
        seeds=tuple(NetHost(f"{PREFIX}s{i}", f"{SUBNET}.{200 + i}", host_mbit) for i in range(1, n_seeds + 1)),
    )


def start_in(host: NetHost, name: str, argv: Sequence[str], log: Path, ip: str, port: int) -> ManagedProcess:
    """Start argv inside host's namespace and wait until ip:port listens there."""
    proc = start_process(name, host.argv(argv), log, env=loopback_env())
    try:
        wait_tcp_in(host, ip, port, proc.alive, timeout=90)
    except BaseException:
        proc.stop()
        raise
    return proc


class Origin:
    """nginx in the origin namespace serving files from root; its access log gives the bytes sent per reader."""

    def __init__(self, host: NetHost, workdir: Path) -> None:
        """Remember where it serves from and logs to."""
        self.host = host
        self.prefix = workdir / "nginx"
        self.root = workdir / "files"
        self.log = self.prefix / "access.log"

    def url(self, name: str) -> str:
        """The URL of a file under root."""
        return f"http://{self.host.ip}:{ORIGIN_PORT}/{name}"

    @contextmanager
    def running(self) -> Iterator[Origin]:
        """Run nginx (sendfile on) until the block ends."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers as nobody would get 403 in a 0700 work dir
        conf.write_text(
            f"""{user}worker_processes 1;
daemon off;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format bytes '$remote_addr $bytes_sent $uri';
    access_log {self.log} bytes;
    sendfile on;
    client_body_temp_path {self.prefix}/client_body;
    proxy_temp_path {self.prefix}/proxy;
    fastcgi_temp_path {self.prefix}/fastcgi;
    uwsgi_temp_path {self.prefix}/uwsgi;
    scgi_temp_path {self.prefix}/scgi;
    server {{ listen {self.host.ip}:{ORIGIN_PORT}; root {self.root}; }}
}}
"""
        )
        argv = ["nginx", "-p", str(self.prefix), "-c", str(conf)]
        proc = start_in(self.host, "nginx", argv, self.prefix / "nginx.log", self.host.ip, ORIGIN_PORT)
        try:
            yield self
        finally:
            proc.stop()

    def bytes_by_reader(self, name: str) -> dict[str, int]:
        """Bytes (headers included) nginx sent for /name so far, by client address."""
        time.sleep(0.2)  # the log line is written when the response ends
        sent: dict[str, int] = {}
        if not self.log.exists():
            return sent
        for line in self.log.read_text(errors="replace").splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[2] == f"/{name}":
                sent[fields[0]] = sent.get(fields[0], 0) + int(fields[1])
        return sent


@contextmanager
def swarm(
    bed: Testbed,
    hosts: Sequence[NetHost],
    workdir: Path,
    origin_fetch: str,
    piece_size: str | None,
    seeds: Sequence[NetHost] = (),
    upload_slots: int | None = None,
    in_process_seed: bool = True,
    supernode_args: Sequence[str] = (),
    locations: Mapping[str, str] | None = None,
) -> Iterator[tuple[dict[str, Path], list[int]]]:
    """A new supernode, one new seed peer (`dfdaemon --seed`) per seed and one new dfdaemon per host (empty caches);
    the supernode runs a seed peer of its own unless there are seeds or in_process_seed is False. supernode_args go
    on its command line; locations gives a dfdaemon `--location` by netns.

    Yields once every seed peer takes the supernode's orders: each host's dfget socket by netns and the PIDs of the
    supernode and the dfdaemons (seed peers included).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack, short_dir("dls-") as sockets:
        stack.callback(_drop_caches, workdir)  # last, once every process is stopped; also on an error
        sn = bed.supernode
        supernode_addr = f"{sn.ip}:{SUPERNODE_PORT}"
        argv = [
            console_script("supernode"),
            *("--listen", supernode_addr, "--advertise-ip", sn.ip, "--data-dir", str(workdir / "supernode")),
            *("--origin-fetch", origin_fetch),
            *(("--piece-size", piece_size) if piece_size else ()),
            *(("--no-seed-peer",) if seeds or not in_process_seed else ()),  # seed peers of their own: none in it
            *(("--seed-upload-slots", str(upload_slots)) if upload_slots else ()),
            *supernode_args,
        ]
        proc = start_in(sn, "supernode", argv, workdir / "supernode.log", sn.ip, SUPERNODE_PORT)
        stack.callback(proc.stop)
        pid = proc.pid
        started: list[tuple[NetHost, ManagedProcess]] = []
        sockets_by_host: dict[str, Path] = {}
        seed_set = {seed.netns for seed in seeds}
        for host in [*seeds, *hosts]:  # all start together (2 cores: one at a time would take N import times)
            name = host.netns.removeprefix(PREFIX)
            sockets_by_host[host.netns] = sockets / f"{name}.sock"
            argv = [
                console_script("dfdaemon"),
                *("--supernode", supernode_addr, "--listen", host.ip, "--port", str(PEER_PORT)),
                *("--data-dir", str(workdir / f"dfdaemon-{name}"), "--mirror", "off"),
                *("--daemon-listen", f"unix:{sockets_by_host[host.netns]}"),
                *(("--seed",) if host.netns in seed_set else ()),
                *(("--upload-slots", str(upload_slots)) if upload_slots else ()),
                *(("--location", locations[host.netns]) if locations and host.netns in locations else ()),
            ]
            proc = start_process(f"dfdaemon-{name}", host.argv(argv), workdir / f"dfdaemon-{name}.log", loopback_env())
            stack.callback(proc.stop)
            started.append((host, proc))
        for host, proc in started:
            wait_tcp_in(host, host.ip, PEER_PORT, proc.alive, timeout=120)
            proc.wait_until(sockets_by_host[host.netns].exists, "its dfget socket exists", timeout=60)
        sn_log = workdir / "supernode.log"
        for host, proc in started:
            if host.netns in seed_set:
                proc.wait_until(
                    partial(takes_orders, sn_log, host.ip), "the supernode logs it takes orders", SEED_READY_S
                )
        for seed in seeds:
            del sockets_by_host[seed.netns]  # dfget runs on the hosts only
        yield sockets_by_host, [pid, *(started_proc.pid for _, started_proc in started)]


def takes_orders(supernode_log: Path, ip: str) -> bool:
    """True when the supernode's log says the seed peer at ip opened its order stream (SeedTasks)."""
    try:
        text = supernode_log.read_text(errors="replace")
    except OSError:
        return False
    return re.search(rf"seed peer takes orders host=\S+ addr={re.escape(ip)}:", text) is not None


def _drop_caches(workdir: Path) -> None:
    """Delete the data directories under workdir (caches can be large, and on tmpfs); the logs stay."""
    for path in workdir.iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class Finished:
    """One client process: seconds from the common start until it exited, and its exit status and stderr."""

    netns: str
    seconds: float
    status: int
    stderr: str


def run_at_once(commands: Sequence[tuple[NetHost, list[str]]], timeout: float = 1800) -> list[Finished]:
    """Start every command in its host's namespace at the same moment; each one's completion time."""
    start = time.perf_counter()
    results: list[Finished] = []
    lock = threading.Lock()
    popens: list[subprocess.Popen[str]] = []

    def wait(host: NetHost, popen: subprocess.Popen[str]) -> None:
        try:
            _, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            _, stderr = popen.communicate()
            stderr = f"timed out after {timeout:.0f}s; {stderr}"
        done = time.perf_counter() - start
        with lock:
            results.append(Finished(host.netns, done, popen.returncode, stderr.strip()))

    threads = []
    try:
        for host, argv in commands:
            popen = subprocess.Popen(
                host.argv(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=loopback_env()
            )
            popens.append(popen)
            thread = threading.Thread(target=wait, args=(host, popen), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    finally:
        for popen in popens:  # only on an interrupt: the threads reaped the others
            if popen.poll() is None:
                popen.kill()
                popen.wait()
    return sorted(results, key=lambda item: item.seconds)


def registrations(supernode_log: Path, url: str) -> list[float]:
    """Wall-clock times (epoch seconds) at which the supernode logged a peer registering for url."""
    times: list[float] = []
    try:
        lines = supernode_log.read_text(errors="replace").splitlines()
    except OSError:
        return times
    for line in lines:
        if "peer registered task=" in line and re.search(rf"url={re.escape(url)}(,|$)", line):
            stamp = datetime.fromisoformat(line.split(" ", 1)[0])  # ISO 8601 with the UTC offset
            times.append(stamp.timestamp())
    return times


def readers_chosen(supernode_log: Path) -> int:
    """How often the supernode's log says it chose a peer to read the origin for the swarm, or part of it (the first
    peer of a task, a peer given part of a reader's rest, one that replaced a reader that left; a reader whose part
    shrank counts again)."""
    pattern = r"reading the origin for the swarm|reader task=\S+ peer=\S+: reads (the origin|pieces)"
    try:
        return len(re.findall(pattern, supernode_log.read_text(errors="replace")))
    except OSError:
        return 0


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def process_cpu(pids: Sequence[int]) -> float:
    """User + system CPU seconds these processes (alive ones) have used so far."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ticks += sum(int(value) for value in stat[stat.rindex(")") + 2 :].split()[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """User + system CPU seconds of this process's waited-for children so far (the dfget and curl runs)."""
    times = os.times()
    return times.children_user + times.children_system
