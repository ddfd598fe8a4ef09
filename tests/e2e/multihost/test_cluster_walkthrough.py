"""docs/multi-host.md, run as written: a private registry (registry.example.com in every machine's /etc/hosts;
htpasswd, HTTPS with its own CA, on 443), a supernode with its in-process seed peer, and two docker hosts, each its
own network namespace with a default route as a real machine has. Each docker host runs a dfdaemon with the page's
flags and a dockerd of its own (own data-root, exec-root, pidfile and containerd socket) in its namespace, so
`127.0.0.1:65001` is that host's mirror.

node1 logs in to its mirror and pulls; node2 is refused without a login (node1 and the seed peer hold the layers),
then logs in and pulls. Both run the image. The registry's access log shows each layer read once in all, and none
while node2 pulled; the page's checks answer as the page says: the supernode's log lines, ListHosts, ListTasks and
GetTask by a 12-character id on the supernode's loopback (PermissionDenied from another machine), node2's /metrics
read from another machine.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import pytest
from fixtures.clients import Dockerd, loopback_env, missing_binaries, run_dockerd, short_dir
from fixtures.images import BUSYBOX_STATIC, MiB, OciImage, PushedImage, build_oci_image, busybox_layer, push_image
from fixtures.processes import ManagedProcess, ProcessGroup, console_script
from fixtures.registry import REGISTRY_BIN, BasicAuth, Registry, TlsFiles, registry_config

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from netns import NetHost, NetnsError, bridged_hosts, wait_tcp_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TAG = f"dcw{os.getpid() % 100000}"
SUBNET = "10.83.0"
GATEWAY = f"{SUBNET}.1"  # the default route's next hop: nobody answers there, as nothing outside is needed
REGISTRY = NetHost(f"{TAG}reg", f"{SUBNET}.9")
SN = NetHost(f"{TAG}sn", f"{SUBNET}.5")
NODE1 = NetHost(f"{TAG}n1", f"{SUBNET}.7")
NODE2 = NetHost(f"{TAG}n2", f"{SUBNET}.8")
REGISTRY_NAME = "registry.example.com"  # every machine's /etc/hosts names the registry (ip netns exec mounts it)
NETNS_ETC = Path("/etc/netns")  # `ip netns exec NS` mounts the files of /etc/netns/NS over those of /etc
MIRROR = "127.0.0.1:65001"  # every host's own mirror, on its own loopback
REPOSITORY, IMAGE_TAG = "team/app", "v1"
LAYER_SIZES = (6 * MiB + 12345, 3 * MiB)  # after the busybox layer: random data, two and one 4 MiB pieces
USER = "deploy"
PASSWORD = secrets.token_urlsafe(12)  # a fresh secret per run
PROGRAMS = ("dockerd", "docker", "nsenter", "ip", REGISTRY_BIN, "htpasswd", "skopeo", "openssl", "grpcurl", "curl")
REFUSALS = ("unauthorized", "authentication required", "no basic auth credentials")
SCHEDULER = "dandelion.scheduler.v1.SchedulerService"
LIST_HOSTS, LIST_TASKS, GET_TASK = f"{SCHEDULER}/ListHosts", f"{SCHEDULER}/ListTasks", f"{SCHEDULER}/GetTask"
RUN_COMMAND = ("/bin/busybox", "sha256sum", "/dandelion/layer-0.bin")  # the container reads the first random layer


def run_in(host: NetHost, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A command on one of the machines (its namespace), without proxy settings."""
    return subprocess.run(host.argv(argv), capture_output=True, text=True, timeout=timeout, env=loopback_env())


def hosts_file() -> str:
    """/etc/hosts of every machine, as Debian writes it (its own name on 127.0.1.1), plus the registry's name."""
    return f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n{REGISTRY.ip} {REGISTRY_NAME}\n"


def start_registry(group: ProcessGroup, root: Path) -> Registry:
    """The private registry: docker-registry with htpasswd Basic auth and a self-signed certificate, on 443."""
    auth = BasicAuth({USER: PASSWORD})
    tls = TlsFiles.create(root, REGISTRY.ip, (REGISTRY_NAME,))
    (root / "config.yml").write_text(json.dumps(registry_config(root, REGISTRY.ip, 443, auth, tls=tls), indent=1))
    proc = group.start("registry", REGISTRY.argv([REGISTRY_BIN, "serve", str(root / "config.yml")]))
    wait_tcp_in(REGISTRY, REGISTRY.ip, 443, proc.alive)
    return Registry(REGISTRY.ip, 443, root, proc.log_path, auth, tls)


def layer_file_sha256(image: OciImage, index: int) -> str:
    """sha256 of dandelion/layer-N.bin as the image holds it (read back from the OCI layout)."""
    blob = image.layers[1 + index]  # layer 0 is busybox
    data = gzip.decompress((image.layout / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(f"dandelion/layer-{index}.bin")
        assert member is not None
        return hashlib.sha256(member.read()).hexdigest()


def pull_and_run(docker: Dockerd, pushed: PushedImage, image: OciImage) -> None:
    """`docker pull MIRROR/team/app:v1`, the digests the registry holds, and a container that reads a layer."""
    reference = pushed.reference_via(MIRROR)
    pull = docker.pull(reference)
    assert pull.returncode == 0, pull.stderr
    assert docker.image_id(reference) == pushed.config_digest
    assert docker.repo_digests(reference) == [f"{MIRROR}/{REPOSITORY}@{pushed.manifest_digest}"]
    ran = docker.docker("run", "--rm", "--network", "none", reference, *RUN_COMMAND)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split()[0] == layer_file_sha256(image, 0)


def logged(proc: ManagedProcess, text: str) -> bool:
    """True once proc's log holds text."""
    return text in proc.log()


def metric(text: str, name: str) -> float:
    """One sample of a /metrics text (0 when absent)."""
    found = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_the_three_machine_walkthrough(process_group: ProcessGroup, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = missing_binaries(*PROGRAMS)
    if missing or not BUSYBOX_STATIC.exists():
        pytest.skip(f"not installed: {', '.join(missing or ['busybox-static'])} (.ci/run installs them)")
    started = time.monotonic()
    try:
        hosts = bridged_hosts(f"{TAG}br", [REGISTRY, SN, NODE1, NODE2])
        hosts.__enter__()
    except NetnsError as exc:
        pytest.skip(f"cannot create network namespaces here: {exc}")
    machines = (REGISTRY, SN, NODE1, NODE2)
    if any((NETNS_ETC / host.netns).exists() for host in machines):
        hosts.__exit__(None, None, None)
        pytest.skip("/etc/netns already holds one of this test's namespace names")
    try:
        with ExitStack() as stack:
            for host in machines:
                route = ["ip", "-n", host.netns, "route", "add", "default", "via", GATEWAY]
                assert subprocess.run(route, capture_output=True, timeout=30).returncode == 0
                (NETNS_ETC / host.netns).mkdir(parents=True)
                (NETNS_ETC / host.netns / "hosts").write_text(hosts_file())
            walk_through(process_group, stack, tmp_path)
    finally:
        process_group.stop_all()
        for host in machines:
            shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()  # only when empty: other tests may have files there
        hosts.__exit__(None, None, None)
    print(f"\nthe walk-through took {time.monotonic() - started:.1f}s")


def walk_through(group: ProcessGroup, stack: ExitStack, tmp_path: Path) -> None:
    registry = start_registry(group, tmp_path / "registry")
    ca = str(registry.tls.cert_path) if registry.tls else ""
    image = build_oci_image(tmp_path / "oci", LAYER_SIZES, IMAGE_TAG, base_layers=[busybox_layer()])
    pushed = push_image(image, REGISTRY_NAME, REPOSITORY, creds=f"{USER}:{PASSWORD}", prefix=REGISTRY.argv([]))
    pushed_at = registry.log_mark()

    # 3. The supernode: the page's command; its seed peer advertises the source address of the default route.
    supernode = group.start(
        "supernode",
        SN.argv(
            [
                console_script("supernode"),
                *("--data-dir", str(tmp_path / "sn"), "--metrics", "0.0.0.0:8003", "--origin-ca", ca),
            ]
        ),
    )
    wait_tcp_in(SN, "0.0.0.0", 8002, supernode.alive)
    supernode.wait_until(partial(logged, supernode, "supernode serving on"), "its first log lines")
    assert re.search(rf"in-process seed peer \S+ \({re.escape(SN.ip)}:8002\)", supernode.log()), supernode.tail()
    assert f"supernode serving on 0.0.0.0:8002 (plaintext) seed={SN.ip}:8002" in supernode.log()

    # 4. A dfdaemon on each docker host, the page's flags; the dfget socket per host, as they share one filesystem.
    daemons: dict[str, ManagedProcess] = {}
    sockets = stack.enter_context(short_dir("dcw-"))
    for name, host in (("node1", NODE1), ("node2", NODE2)):
        argv = [console_script("dfdaemon"), "--supernode", f"{SN.ip}:8002", "--listen", "0.0.0.0"]
        argv += ["--data-dir", str(tmp_path / name), "--registry", f"https://{REGISTRY_NAME}"]
        argv += ["--metrics", "0.0.0.0:65002", "--registry-ca", ca, "--daemon-listen", f"unix:{sockets / name}.sock"]
        daemons[name] = proc = group.start(f"dfdaemon-{name}", host.argv(argv))
        proc.wait_until(partial(logged, proc, "dfdaemon ready"), "dfdaemon ready", timeout=60)
        assert f"peer 0.0.0.0:65000 (advertised {host.ip})" in proc.log()
        wait_tcp_in(host, "127.0.0.1", 65001, proc.alive)  # its mirror, on the host's loopback

    # 5. dockerd on each docker host, in the host's network: its own roots, sockets and containerd.
    dockers = {
        name: stack.enter_context(
            run_dockerd(tmp_path / f"docker-{name}", wrapper=["nsenter", f"--net=/run/netns/{host.netns}"])
        )
        for name, host in (("node1", NODE1), ("node2", NODE2))
    }
    node1, node2 = dockers["node1"], dockers["node2"]
    login = node1.login(MIRROR, USER, PASSWORD)
    assert login.returncode == 0, login.stderr + daemons["node1"].tail()
    pull_and_run(node1, pushed, image)

    node2_at = registry.log_mark()
    anonymous = node2.pull(pushed.reference_via(MIRROR))
    assert anonymous.returncode != 0
    assert any(refusal in anonymous.stderr.lower() for refusal in REFUSALS), anonymous.stderr
    assert node2.docker("image", "ls", "--quiet").stdout.split() == []
    assert node2.login(MIRROR, USER, PASSWORD).returncode == 0
    pull_and_run(node2, pushed, image)

    # The registry: each layer read once in all, none for node2. (A read split between the seed peer and node1's
    # dfdaemon may send what was in flight at the cut twice, never a whole second copy.)
    layers = dict(zip(pushed.layer_digests, pushed.layer_sizes, strict=True))
    after_push = registry.records_since(pushed_at)
    gets = {d: sum(1 for r in after_push if r.method == "GET" and r.blob_digest == d) for d in layers}
    sent = {d: sum(r.size for r in after_push if r.method == "GET" and r.blob_digest == d) for d in layers}
    print(f"\nregistry layer reads (GETs, bytes sent / layer size): {[(gets[d], sent[d] / layers[d]) for d in layers]}")
    assert all(size <= sent[d] < 2 * size for d, size in layers.items()), (sent, layers)
    for_node2 = [r for r in registry.records_since(node2_at) if r.blob_digest in layers and r.method == "GET"]
    assert for_node2 == []

    # 6. The page's checks: the supernode lists both hosts and its seed peer; node2 got its bytes from peers.
    hosts = run_in(SN, ["grpcurl", "-plaintext", "127.0.0.1:8002", LIST_HOSTS])
    assert hosts.returncode == 0, hosts.stderr
    assert all(f'"{ip}"' in hosts.stdout for ip in (SN.ip, NODE1.ip, NODE2.ip)), hosts.stdout
    listed = run_in(SN, ["grpcurl", "-plaintext", "127.0.0.1:8002", LIST_TASKS])
    assert listed.returncode == 0, listed.stderr
    tasks = [json.dumps(t) for t in json.loads(listed.stdout)["tasks"]]
    assert all(any(d in t for t in tasks) for d in layers), listed.stdout  # a task per layer
    layer_tasks = [json.loads(t) for t in tasks if pushed.layer_digests[-1] in t]
    short_id = str(layer_tasks[0].get("taskId") or layer_tasks[0]["task_id"])[:12]  # as the logs print it
    task = run_in(SN, ["grpcurl", "-plaintext", "-d", json.dumps({"task_id": short_id}), "127.0.0.1:8002", GET_TASK])
    assert task.returncode == 0 and all(f'"{ip}"' in task.stdout for ip in (NODE1.ip, NODE2.ip)), task.stdout
    remote = run_in(NODE1, ["grpcurl", "-plaintext", f"{SN.ip}:8002", LIST_HOSTS])
    assert remote.returncode != 0 and "PermissionDenied" in remote.stderr, remote.stdout + remote.stderr
    scraped = run_in(SN, ["curl", "-s", f"{NODE2.ip}:65002/metrics"])
    assert scraped.returncode == 0, scraped.stderr
    received = metric(scraped.stdout, "dandelion_peer_bytes_received_total")
    origin = metric(scraped.stdout, "dandelion_origin_bytes_total")
    print(f"node2: {received:.0f} bytes from peers, {origin:.0f} from the registry")
    assert received >= sum(layers.values()) and origin < min(layers.values()), scraped.stdout
    shutil.rmtree(tmp_path / "oci", ignore_errors=True)
