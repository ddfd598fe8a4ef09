"""A real supernode, two dfdaemons and an origin that counts bytes: downloads through the swarm."""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

SIZE = 10 * (4 << 20) + 4321


@dataclass
class Swarm:
    origin: OriginServer
    supernode: ManagedProcess
    supernode_addr: str
    daemons: list[Daemon]
    workdir: Path

    def logs(self) -> str:
        parts = [f"--- supernode\n{self.supernode.tail(30)}"]
        parts += [f"--- {d.proc.name}\n{d.proc.tail(30)}" for d in self.daemons]
        return "\n".join(parts)


@pytest.fixture(scope="module")
def swarm(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    work = tmp_path_factory.mktemp("swarm")
    root = work / "origin"
    for index, name in enumerate(("a.bin", "b.bin", "c.bin", "d.bin", "e.bin")):
        write_random_file(root / name, SIZE + index, seed=index)
    origin = start_origin(module_process_group, root)
    port = free_port("127.0.0.1")
    supernode = module_process_group.start(
        "supernode",
        [
            console_script("supernode"),
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(work / "sn"),
            "--advertise-ip",
            "127.0.0.1",
        ],
    )
    supernode.wait_for_tcp("127.0.0.1", port, timeout=30)
    addr = f"127.0.0.1:{port}"
    daemons = [start_daemon(module_process_group, work, f"peer{i}", f"127.0.0.{31 + i}", addr) for i in (1, 2)]
    yield Swarm(origin, supernode, addr, daemons, work)


def done_line(daemon: Daemon, task_hint: int = -1) -> tuple[int, int]:
    """(bytes from peers, bytes from origin) of the daemon's last finished download."""
    found = re.findall(r"done: (\d+) bytes, (\d+) from peers, (\d+) from origin", daemon.proc.log())
    assert found, daemon.proc.tail()
    _, peers, origin = found[task_hint]
    return int(peers), int(origin)


def get(swarm: Swarm, daemon: Daemon, name: str, out: Path, *extra: str) -> None:
    result = dfget(swarm.origin.url(name), "-o", str(out), "--daemon", daemon.endpoint, *extra)
    assert result.returncode == 0, result.stderr + swarm.logs()


def test_two_daemons_identical_files_origin_once(swarm: Swarm, tmp_path: Path) -> None:
    swarm.origin.reset()
    first, second = swarm.daemons
    get(swarm, first, "a.bin", tmp_path / "one.bin")
    get(swarm, second, "a.bin", tmp_path / "two.bin")
    data = (swarm.origin.root / "a.bin").read_bytes()
    assert (tmp_path / "one.bin").read_bytes() == data
    assert (tmp_path / "two.bin").read_bytes() == data
    assert swarm.origin.bytes_served("a.bin") <= SIZE * 1.05, swarm.logs()  # the seed fetched it once
    assert done_line(second) == (SIZE, 0)  # every byte came from the swarm, none from the origin


def test_cached_content_moves_no_bytes(swarm: Swarm, tmp_path: Path) -> None:
    first = swarm.daemons[0]
    get(swarm, first, "b.bin", tmp_path / "b1.bin")
    swarm.origin.reset()
    log_before = first.proc.log()
    get(swarm, first, "b.bin", tmp_path / "b2.bin")
    assert (tmp_path / "b2.bin").read_bytes() == (swarm.origin.root / "b.bin").read_bytes()
    assert swarm.origin.bytes_served() == 0
    new_log = first.proc.log()[len(log_before) :]
    assert "served from the local cache" in new_log and "done:" not in new_log


def test_concurrent_downloads_share_the_origin_fetch(swarm: Swarm, tmp_path: Path) -> None:
    swarm.origin.reset()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs = [
            pool.submit(dfget, swarm.origin.url("c.bin"), "-o", str(tmp_path / f"c{i}.bin"), "--daemon", d.endpoint)
            for i, d in enumerate(swarm.daemons * 2)
        ]
        results = [job.result() for job in jobs]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [swarm.logs()]
    data = (swarm.origin.root / "c.bin").read_bytes()
    assert all((tmp_path / f"c{i}.bin").read_bytes() == data for i in range(4))
    assert swarm.origin.bytes_served("c.bin") <= (SIZE + 2) * 1.05, swarm.logs()


def test_digest_and_embedded_peer(swarm: Swarm, tmp_path: Path) -> None:
    data = (swarm.origin.root / "d.bin").read_bytes()
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    get(swarm, swarm.daemons[1], "d.bin", tmp_path / "d.bin", "--digest", digest)
    assert (tmp_path / "d.bin").read_bytes() == data

    swarm.origin.reset()
    out = tmp_path / "embedded.bin"
    result = dfget(
        swarm.origin.url("d.bin"),
        "-o",
        str(out),
        "--daemon",
        f"unix:{tmp_path}/none.sock",
        "--supernode",
        swarm.supernode_addr,
        "--digest",
        digest,
        "--no-back-source",
    )
    assert result.returncode == 0, result.stderr + swarm.logs()
    assert out.read_bytes() == data
    assert swarm.origin.bytes_served() == 0  # the swarm served the embedded peer


def test_errors_through_the_daemon(swarm: Swarm, tmp_path: Path) -> None:
    daemon = swarm.daemons[0]
    out = tmp_path / "x.bin"
    result = dfget(swarm.origin.url("missing.bin"), "-o", str(out), "--daemon", daemon.endpoint)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "404" in result.stderr, result.stderr
    result = dfget(
        swarm.origin.url("e.bin"), "-o", str(out), "--daemon", daemon.endpoint, "--digest", "sha256:" + "1" * 64
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "digest" in result.stderr
    assert list(tmp_path.iterdir()) == []
    # The daemon is still serving.
    get(swarm, daemon, "e.bin", tmp_path / "e.bin")
    assert (tmp_path / "e.bin").read_bytes() == (swarm.origin.root / "e.bin").read_bytes()
