"""`docker compose up` brings up a healthy cluster with a seed peer; images pushed to its registry pull through two
nodes, and the seed peer is the one that read each layer from the registry.

Real Docker engine, real compose v2, real registry image (a local stand-in for registry:2).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.clients import Dockerd
from fixtures.images import build_and_push
from fixtures.processes import free_port

ROOT = Path(__file__).resolve().parents[3]
MIB = 1 << 20
# distribution's access log: 'ADDR - - [time] "GET /v2/NAME/blobs/DIGEST HTTP/1.1" 200 ...' (after compose's prefix)
BLOB_GET = re.compile(
    r'([0-9.]+) - - \[[^]]*\] "GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64})[^ ]* HTTP/[0-9.]+" (?:200|206) '
)
SEED_TAKES_ORDERS = "seed peer takes orders"

pytestmark = pytest.mark.e2e


def test_compose_up_push_pull_through_two_nodes_down(docker: Dockerd, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("REGISTRY", "SUPERNODE", "NODE1", "NODE2", "NODE3")}
    env = {**docker.env, **{f"DANDELION_{name}_PORT": str(port) for name, port in ports.items()}}
    project = f"dandelion-test-{ports['REGISTRY']}"

    def compose(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "-p", project, *args]
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    try:
        up = compose("up", "-d", "--wait", "--wait-timeout", "180")
        assert up.returncode == 0, up.stderr[-3000:] + compose("logs", "--no-color").stdout[-5000:]
        states = [json.loads(line) for line in compose("ps", "--format", "json").stdout.splitlines() if line]
        health = {state["Service"]: state.get("Health", "") for state in states}
        assert health == {
            "registry": "",
            "supernode": "healthy",
            "seed": "healthy",
            "node1": "healthy",
            "node2": "healthy",
            "node3": "healthy",
        }

        # Healthy is its PeerService; the supernode orders it once its order stream is open.
        deadline = time.monotonic() + 60
        while SEED_TAKES_ORDERS not in compose("logs", "--no-color", "supernode").stdout:
            assert time.monotonic() < deadline, compose("logs", "--no-color", "supernode", "seed").stdout[-5000:]
            time.sleep(1)

        registry = f"127.0.0.1:{ports['REGISTRY']}"
        image = build_and_push(tmp_path / "image", registry, "team/app", [5 * MIB, 3 * MIB, 2 * MIB])

        # Node 1: the real Docker engine pulls through the node's mirror.
        via_node1 = image.reference_via(f"127.0.0.1:{ports['NODE1']}")
        pulled = docker.pull(via_node1)
        assert pulled.returncode == 0, pulled.stderr + compose("logs", "--no-color").stdout[-5000:]
        assert any(d.endswith("@" + image.manifest_digest) for d in docker.repo_digests(via_node1))
        assert docker.image_id(via_node1) == image.config_digest

        # Node 2: skopeo copies through the other node; every blob arrives with its digest.
        out = tmp_path / "via-node2"
        via_node2 = image.reference_via(f"127.0.0.1:{ports['NODE2']}")
        copied = subprocess.run(
            [
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                "--src-no-creds",
                f"docker://{via_node2}",
                f"dir:{out}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert copied.returncode == 0, copied.stderr
        on_disk = {f"sha256:{p.name}" for p in out.iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)}
        assert set(image.blob_digests) <= on_disk

        # Nodes and the seed peer listen on 0.0.0.0 in their containers; the supernode knows each by its container
        # address, and the seed peer as one.
        with grpc.insecure_channel(f"127.0.0.1:{ports['SUPERNODE']}") as chan:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
            hosts = stub.ListHosts(scheduler_pb2.ListHostsRequest(), timeout=10).hosts
        addresses = {h.ip for h in hosts}
        assert len(hosts) == 4 and len(addresses) == 4 and "0.0.0.0" not in addresses, hosts
        seeds = [h.ip for h in hosts if h.seed]
        assert len(seeds) == 1, hosts

        # Each layer left the registry once, to the seed peer (the nodes got it from the swarm).
        gets = BLOB_GET.findall(compose("logs", "--no-color", "registry").stdout)
        count = Counter(digest for _, digest in gets)
        layer_gets = {digest: count[digest] for digest in image.layer_digests}
        assert all(n == 1 for n in layer_gets.values()), f"registry blob GETs per layer: {layer_gets}"
        readers = {digest: addr for addr, digest in gets if digest in image.layer_digests}
        assert set(readers.values()) == set(seeds), f"layer readers {readers}, seed peer {seeds}"
    finally:
        down = compose("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr
    left = docker.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
    assert left == []
