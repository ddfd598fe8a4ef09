"""A plaintext supernode and dfdaemon listening beyond loopback (inside a network namespace this test creates,
which also holds 10.99.0.1): one warning for each such port at start-up, and the inspection RPCs answer only
callers on loopback unless --open-inspection."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.processes import ProcessGroup, console_script

pytestmark = pytest.mark.e2e

ADDRESS = "10.99.0.1"
PORT = 8002
LIST_TASKS = "dandelion.scheduler.v1.SchedulerService/ListTasks"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace whose lo is up and also holds ADDRESS; removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("grpcurl") is None:
        pytest.skip("needs root, iproute2 and grpcurl")
    name = f"dl-tls-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", f"{ADDRESS}/32", "dev", "lo")  # not a loopback address, though on lo
        yield name
    finally:
        ip("netns", "delete", name)


def grpcurl_in(namespace: str, target: str, method: str = LIST_TASKS) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", namespace, console_script("grpcurl"), "-plaintext", "-connect-timeout", "5"]
    return subprocess.run([*argv, target, method], capture_output=True, text=True, timeout=60)


def warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "WARNING" in line]


@pytest.mark.parametrize("open_inspection", [False, True])
def test_plaintext_beyond_loopback_warns_and_inspection_is_for_loopback(
    namespace: str, tmp_path: Path, process_group: ProcessGroup, open_inspection: bool
) -> None:
    opened = ["--open-inspection"] if open_inspection else []
    in_namespace = ["ip", "netns", "exec", namespace]
    supernode = process_group.start(
        "supernode",
        [
            *in_namespace,
            console_script("supernode"),
            *("--listen", f"0.0.0.0:{PORT}", "--advertise-ip", ADDRESS, "--data-dir", str(tmp_path / "sn")),
            *opened,
        ],
    )
    supernode.wait_until(lambda: grpcurl_in(namespace, f"127.0.0.1:{PORT}").returncode == 0, "ListTasks on loopback")
    (warned,) = warnings(supernode.log())
    assert "plaintext on 0.0.0.0, beyond loopback" in warned

    remote = grpcurl_in(namespace, f"{ADDRESS}:{PORT}")
    if open_inspection:
        assert remote.returncode == 0 and remote.stdout.strip().startswith("{"), remote.stderr  # no tasks yet: {}
    else:
        assert remote.returncode != 0
        assert "PermissionDenied" in remote.stderr and "loopback" in remote.stderr, remote.stderr

    # A dfdaemon with its PeerService and its dfget endpoint on ADDRESS: a warning for each; ListCache on that TCP
    # endpoint, called from ADDRESS, only with --open-inspection.
    daemon = process_group.start(
        "dfdaemon",
        [
            *in_namespace,
            console_script("dfdaemon"),
            *("--supernode", f"127.0.0.1:{PORT}", "--listen", ADDRESS, "--port", "65000"),
            *("--data-dir", str(tmp_path / "peer"), "--daemon-listen", f"{ADDRESS}:65010", "--mirror", "off"),
            *opened,
        ],
    )
    list_cache = "dandelion.peer.v1.DaemonService/ListCache"
    daemon.wait_until(lambda: "dfdaemon ready" in daemon.log(), "dfdaemon ready")
    peer_warning, endpoint_warning = sorted(warnings(daemon.log()), key=lambda line: "dfget endpoint" in line)
    assert f"plaintext on {ADDRESS}, beyond loopback" in peer_warning
    assert f"dfget endpoint {ADDRESS}:65010 listens beyond loopback" in endpoint_warning
    cache = grpcurl_in(namespace, f"{ADDRESS}:65010", list_cache)
    if open_inspection:
        assert cache.returncode == 0, cache.stderr
    else:
        assert cache.returncode != 0 and "PermissionDenied" in cache.stderr, cache.stderr
