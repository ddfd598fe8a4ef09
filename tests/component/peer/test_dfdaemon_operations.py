"""dfdaemon options from a config file and the environment; Prometheus /metrics; one-line config errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fixtures.metrics import metrics_text
from fixtures.processes import free_port

COMMAND = [shutil.which("dfdaemon") or "dfdaemon"]


def test_config_file_and_environment_with_metrics(tmp_path: Path) -> None:
    ip = "127.0.0.31"
    port, metrics_port, mirror_port = free_port(ip), free_port("127.0.0.1"), free_port(ip)
    config = tmp_path / "dfdaemon.toml"
    config.write_text(
        f'supernode = "127.0.0.1:{free_port()}"\nlisten = "{ip}"\nport = {port}\n'
        f'data-dir = "{tmp_path / "data"}"\ndaemon-listen = "unix:{tmp_path / "d.sock"}"\n'
        f'mirror = "{ip}:{mirror_port}"\nregistry = "http://127.0.0.1:{free_port()}"\n'
    )
    env = {**os.environ, "DFDAEMON_METRICS": f"127.0.0.1:{metrics_port}", "DFDAEMON_UPLOAD_SLOTS": "3"}
    proc = subprocess.Popen([*COMMAND, "--config", str(config)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        text = ""
        while "dandelion_" not in text:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no /metrics"
            try:
                text = metrics_text(f"127.0.0.1:{metrics_port}", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert "dandelion_peer_bytes_served_total" in text
        status = 0
        while status == 0:  # /metrics is served from the start; the mirror comes up a little later
            assert time.monotonic() < deadline, "the mirror never listened"
            try:
                status = httpx.get(f"http://{ip}:{mirror_port}/v2/", timeout=10).status_code
            except httpx.ConnectError:
                time.sleep(0.1)
        assert status == 503  # registry down
        with socket.create_connection((ip, mirror_port), timeout=5) as raw:  # docker's TLS probe of the mirror
            tls = ssl.create_default_context()
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
            with pytest.raises(ssl.SSLError):
                tls.wrap_socket(raw, server_hostname=ip)
        text = metrics_text(f"127.0.0.1:{metrics_port}", timeout=2)
        sample = 'dandelion_mirror_requests_total{component="dfdaemon",kind="version",method="GET",status="503"} 1.0'
        assert sample in text
        assert (tmp_path / "d.sock").exists()  # daemon-listen came from the file
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Invalid HTTP request" not in err  # the TLS probe is routine: logged at debug only


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('mirror = "nope"', "--mirror: invalid address 'nope'"),
        ('uploadlimit = "1M"', "unknown option 'uploadlimit'"),
        ('log-level = "loud"', "log-level must be one of"),
        ('registry = "ftp://r"', "invalid registry URL"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path: Path, extra: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'supernode = "127.0.0.1:1"\nlisten = "127.0.0.1"\ndata-dir = "{tmp_path}"\n{extra}\n')
    done = subprocess.run([*COMMAND, "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr
