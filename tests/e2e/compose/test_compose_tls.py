"""compose.yaml + compose.tls.yaml: a mutual-TLS cluster in containers. Certificates from scripts/make_certs.sh,
the seed peer registers as one with its dandelion-seed certificate, docker pulls through two nodes (the layers cross
between containers over TLS, the registry sends each once), and from the host only an admin certificate may inspect
the supernode."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.certs import identity, make_certs
from fixtures.clients import Dockerd
from fixtures.images import build_and_push
from fixtures.processes import free_port

ROOT = Path(__file__).resolve().parents[3]
MIB = 1 << 20
BLOB_GET = re.compile(r'"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64})[^ ]* HTTP/[0-9.]+" (?:200|206) ')

pytestmark = pytest.mark.e2e


def test_compose_tls_cluster_pulls_through_two_nodes_and_inspection_needs_an_admin(
    docker: Dockerd, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    make_certs(certs)  # the defaults: node (127.0.0.1, dandelion, ...), dandelion-seed and dandelion-admin
    ports = {name: free_port() for name in ("REGISTRY", "SUPERNODE", "NODE1", "NODE2", "NODE3")}
    env = {
        **docker.env,
        **{f"DANDELION_{name}_PORT": str(port) for name, port in ports.items()},
        "DANDELION_CERTS": str(certs),
    }
    project = f"dandelion-tls-{ports['REGISTRY']}"
    files = ["-f", str(ROOT / "compose.yaml"), "-f", str(ROOT / "compose.tls.yaml")]

    def compose(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "compose", *files, "-p", project, *args]
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    try:
        up = compose("up", "-d", "--wait", "--wait-timeout", "180")
        assert up.returncode == 0, up.stderr[-3000:] + compose("logs", "--no-color").stdout[-5000:]
        logs = compose("logs", "--no-color", "supernode", "node1").stdout
        assert "(mutual TLS)" in logs and "plaintext" not in logs, logs[-3000:]
        deadline = time.monotonic() + 60  # the seed peer's order stream, over mTLS with its seed certificate
        while "seed peer takes orders" not in compose("logs", "--no-color", "supernode").stdout:
            assert time.monotonic() < deadline, compose("logs", "--no-color", "supernode", "seed").stdout[-5000:]
            time.sleep(1)

        registry = f"127.0.0.1:{ports['REGISTRY']}"
        image = build_and_push(tmp_path / "image", registry, "team/tls", [4 * MIB, 2 * MIB])
        for node in ("NODE1", "NODE2"):
            via = image.reference_via(f"127.0.0.1:{ports[node]}")
            pulled = docker.pull(via)
            assert pulled.returncode == 0, pulled.stderr + compose("logs", "--no-color").stdout[-5000:]
            assert docker.image_id(via) == image.config_digest
            removed = docker.docker("image", "rm", via)  # the next pull starts cold (the base images stay)
            assert removed.returncode == 0, removed.stderr
        gets = Counter(BLOB_GET.findall(compose("logs", "--no-color", "registry").stdout))
        layer_gets = {digest: gets[digest] for digest in image.layer_digests}
        assert all(count == 1 for count in layer_gets.values()), f"registry blob GETs per layer: {layer_gets}"

        target = f"127.0.0.1:{ports['SUPERNODE']}"
        with identity(certs, "dandelion-admin").channel(target) as channel:
            hosts = scheduler_pb2_grpc.SchedulerServiceStub(channel).ListHosts(
                scheduler_pb2.ListHostsRequest(), timeout=10
            )
        assert len({h.ip for h in hosts.hosts}) == 4
        assert [h.seed for h in hosts.hosts].count(True) == 1, hosts
        with identity(certs, "node").channel(target) as channel, pytest.raises(grpc.RpcError) as member:
            scheduler_pb2_grpc.SchedulerServiceStub(channel).ListHosts(scheduler_pb2.ListHostsRequest(), timeout=10)
        assert member.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as plaintext:
            scheduler_pb2_grpc.SchedulerServiceStub(channel).ListHosts(scheduler_pb2.ListHostsRequest(), timeout=10)
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        down = compose("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr
    left = docker.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
    assert left == []
