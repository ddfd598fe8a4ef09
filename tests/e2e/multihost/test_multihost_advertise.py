"""Three hosts in network namespaces, everything on 0.0.0.0 without --advertise-ip: the supernode's seed and both
dfdaemons advertise their own bridge addresses, and the second host's download comes from the swarm."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.origin import write_random_file
from fixtures.processes import ProcessGroup, console_script

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from netns import NetHost, NetnsError, bridged_hosts, wait_tcp_in

SIZE = 9 * (1 << 20) + 333  # three 4 MiB pieces
TAG = f"dfa{os.getpid() % 100000}"
SUPERNODE = NetHost(f"{TAG}sn", "10.78.0.5")
HOST_A = NetHost(f"{TAG}a", "10.78.0.7")
HOST_B = NetHost(f"{TAG}b", "10.78.0.8")
ORIGIN = NetHost(f"{TAG}o", "10.78.0.9")
ORIGIN_SCRIPT = Path(__file__).resolve().parents[2] / "fixtures" / "origin.py"


def metrics_in(host: NetHost, address: str) -> dict[str, float]:
    """A dfdaemon's /metrics on an address inside its namespace."""
    code = f"import urllib.request as u; print(u.urlopen('http://{address}/metrics', timeout=10).read().decode())"
    text = subprocess.run(host.argv([sys.executable, "-c", code]), capture_output=True, text=True, timeout=30).stdout
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("dandelion_"))
    return {name: float(value) for name, value in samples}


def test_wildcard_listeners_advertise_their_routes(process_group: ProcessGroup, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    write_random_file(tmp_path / "origin" / "f.bin", SIZE, seed=5)
    try:
        hosts = bridged_hosts(f"{TAG}br", [SUPERNODE, HOST_A, HOST_B, ORIGIN])
        hosts.__enter__()
    except NetnsError as exc:
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        stats = tmp_path / "origin-stats.log"
        origin = process_group.start(
            "origin",
            ORIGIN.argv(
                [
                    *(sys.executable, str(ORIGIN_SCRIPT), "--root", str(tmp_path / "origin"), "--host", ORIGIN.ip),
                    *("--port", "8080", "--stats-log", str(stats)),
                ]
            ),
        )
        wait_tcp_in(ORIGIN, ORIGIN.ip, 8080, lambda: origin.popen.poll() is None)
        supernode = process_group.start(
            "supernode",
            SUPERNODE.argv(
                [console_script("supernode"), "--listen", "0.0.0.0:8002", "--data-dir", str(tmp_path / "sn")]
            ),
        )
        wait_tcp_in(SUPERNODE, SUPERNODE.ip, 8002, lambda: supernode.popen.poll() is None)
        daemons = {}
        for name, host in (("a", HOST_A), ("b", HOST_B)):
            argv = [console_script("dfdaemon"), "--supernode", f"{SUPERNODE.ip}:8002", "--listen", "0.0.0.0"]
            argv += ["--data-dir", str(tmp_path / name), "--daemon-listen", f"unix:{tmp_path / name}.sock"]
            argv += ["--mirror", "off", "--metrics", "127.0.0.1:65002"]
            daemons[name] = process_group.start(f"dfdaemon-{name}", host.argv(argv))
            daemons[name].wait_for_unix(tmp_path / f"{name}.sock")
        url = f"http://{ORIGIN.ip}:8080/f.bin"
        for name in ("a", "b"):
            argv = [console_script("dfget"), url, "-o", str(tmp_path / f"out-{name}"), "--daemon"]
            done = subprocess.run([*argv, f"unix:{tmp_path / name}.sock"], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr + daemons[name].tail()
            assert (tmp_path / f"out-{name}").read_bytes() == (tmp_path / "origin" / "f.bin").read_bytes()

        assert f"seed={SUPERNODE.ip}:8002" in supernode.log()
        assert f"(advertised {HOST_A.ip})" in daemons["a"].log()
        assert f"(advertised {HOST_B.ip})" in daemons["b"].log()
        second = metrics_in(HOST_B, "127.0.0.1:65002")
        assert second['dandelion_peer_bytes_received_total{component="dfdaemon"}'] == SIZE, second
        assert 'dandelion_origin_bytes_total{component="dfdaemon"}' not in second
        deadline = time.monotonic() + 10
        while sum(int(line.split("\t")[1]) for line in stats.read_text().splitlines()) < SIZE:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        served = sum(int(line.split("\t")[1]) for line in stats.read_text().splitlines())
        assert served == SIZE  # the origin served the file once, to host a; b and the seed got it from the swarm
    finally:
        process_group.stop_all()
        hosts.__exit__(None, None, None)
