"""grpcurl lists and describes the services of a running supernode and dfdaemon through server reflection."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.processes import ProcessGroup

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e" / "p2p"))
from p2p_cluster import Swarm

pytestmark = pytest.mark.e2e


def grpcurl(*args: str) -> str:
    """Run grpcurl and return stdout (assert it succeeded)."""
    exe = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"grpcurl {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def test_services_listed_and_described(process_group: ProcessGroup, tmp_path: Path) -> None:
    """Supernode: scheduler + seed PeerService; dfdaemon: PeerService on TCP, DaemonService on its unix socket."""
    swarm = Swarm(process_group, tmp_path)
    supernode = swarm.start_supernode()
    peer = swarm.start_peer("127.0.0.2")

    listed = grpcurl("-plaintext", supernode.target, "list").split()
    for service in (
        "dandelion.scheduler.v1.SchedulerService",
        "dandelion.peer.v1.PeerService",
        "grpc.health.v1.Health",
    ):
        assert service in listed, listed
    described = grpcurl("-plaintext", supernode.target, "describe", "dandelion.scheduler.v1.SchedulerService")
    assert "rpc SyncPieces ( stream .dandelion.scheduler.v1.SyncPiecesRequest )" in described
    message = grpcurl("-plaintext", supernode.target, "describe", "dandelion.common.v1.UrlMeta")
    assert "map<string, string> headers" in message
    health = grpcurl("-plaintext", supernode.target, "grpc.health.v1.Health/Check")
    assert '"SERVING"' in health
    hosts = grpcurl("-plaintext", supernode.target, "dandelion.scheduler.v1.SchedulerService/ListHosts")
    assert "127.0.0.2" in hosts

    peer_listed = grpcurl("-plaintext", peer.target, "list").split()
    assert "dandelion.peer.v1.PeerService" in peer_listed
    assert "grpc.health.v1.Health" in peer_listed
    assert "rpc DownloadPieces" in grpcurl("-plaintext", peer.target, "describe", "dandelion.peer.v1.PeerService")

    daemon_listed = grpcurl("-plaintext", "-unix", str(peer.socket), "list").split()
    assert "dandelion.peer.v1.DaemonService" in daemon_listed
    cache = grpcurl("-plaintext", "-unix", str(peer.socket), "dandelion.peer.v1.DaemonService/ListCache")
    assert cache.strip().startswith("{")
