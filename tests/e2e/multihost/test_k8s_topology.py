"""The Kubernetes manifests' own command lines, run for real: two supernodes, a seed peer and two nodes, each in a
network namespace with the address its pod (or node) would have, the headless Service's name answered with every
supernode's address by a DNS server (dnsmasq) the way the cluster's DNS answers. The node's init container writes
containerd's hosts.toml, every probe and scrape port answers; files spread over the supernodes, each scheduled by its
rendezvous owner (asked of each supernode with ListTasks); and when a big file's owner is SIGKILLed in the middle of
its swarm the task moves to the other supernode and the downloads finish with the origin sending the file about
once.

What the cluster would add is left out: volumes are directories under tmp_path, the kubelet's probes are
`python -m dfcommon.healthcheck` run in the pod's namespace.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from fixtures.k8s_manifests import Container, containers, load_documents
from fixtures.origin import read_stats_log, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup

from dfcommon.identity import task_id

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from netns import NetHost, NetnsError, bridged_hosts, wait_tcp_in

SIZE = 6 * (4 << 20) + 99
RATE = 3_000_000  # origin bytes/s per response: the kill lands in the middle of the swarm
TAG = f"dk{os.getpid() % 100000}"
DNS = NetHost(f"{TAG}dns", "10.79.0.53")
SUPERNODES = [NetHost(f"{TAG}sn0", "10.79.0.10"), NetHost(f"{TAG}sn1", "10.79.0.11")]
SEED = NetHost(f"{TAG}seed", "10.79.0.20")
NODES = [NetHost(f"{TAG}na", "10.79.0.7"), NetHost(f"{TAG}nb", "10.79.0.8")]
ORIGIN = NetHost(f"{TAG}o", "10.79.0.9")
ORIGIN_SCRIPT = Path(__file__).resolve().parents[2] / "fixtures" / "origin.py"
NETNS_ETC = Path("/etc/netns")  # `ip netns exec NS` mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf
PROGRAMS = {
    "supernode": "from supernode.__main__ import main; sys.exit(main())",
    "dfdaemon": "from dfdaemon.main import main; main()",
    "dfget": "from peer.dfget import main; main()",
}


def pod(documents: list[dict[str, object]], name: str, host: NetHost) -> Container:
    """The manifest's container as it would run on host (the downward API answering with host's address)."""
    (found,) = [c for c in containers(documents, {"status.hostIP": host.ip, "status.podIP": host.ip}) if c.name == name]
    return found


def local_argv(container: Container, root: Path) -> list[str]:
    """The container's argv with each volume's mount path moved under root/VOLUME, the program run by this Python."""
    local = {}
    for mount in container.spec.get("volumeMounts", []):
        local[mount["mountPath"]] = root / mount["name"]
        local[mount["mountPath"]].mkdir(parents=True, exist_ok=True)
    argv = list(container.argv)
    if local:  # one pass, longest mount path first: a replaced path is not looked at again
        paths = "|".join(re.escape(path) for path in sorted(local, key=len, reverse=True))
        pattern = re.compile(rf"(?<=[=:])({paths})(?=/|$)")
        argv = [pattern.sub(lambda m: str(local[m.group(1)]), arg) for arg in argv]
    code = f"import sys; {PROGRAMS[argv[0]]}"
    return [sys.executable, "-c", code, *argv[1:]]


def run_in(host: NetHost, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(host.argv(argv), capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def probe(host: NetHost, port: int) -> str:
    """The kubelet's gRPC probe from the pod's network: '' when SERVING, else why not."""
    done = run_in(host, [sys.executable, "-m", "dfcommon.healthcheck", "grpc", f"{host.ip}:{port}"], {})
    return "" if done.returncode == 0 else done.stderr.strip()


def scrape(host: NetHost, port: int) -> str:
    url = f"http://{host.ip}:{port}/metrics"
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=10).read().decode())"
    return run_in(host, [sys.executable, "-c", code], {}).stdout


def supernode_names(documents: list[dict[str, object]]) -> list[str]:
    """The pod names of the supernode StatefulSet under its headless Service, in order."""
    seed = pod(documents, "StatefulSet/dandelion-seed/seed", SEED)
    (entry,) = seed.env["DFDAEMON_SUPERNODE"].split(",")
    assert entry.startswith("dns:///"), entry  # the headless Service's name: every ready supernode
    service = entry.removeprefix("dns:///").rsplit(":", 1)[0]  # dandelion-supernode.dandelion.svc.cluster.local
    return [f"dandelion-supernode-{i}.{service}" for i in range(len(SUPERNODES))]


def rendezvous_owner(task_id: str, members: list[str]) -> str:
    """The owner by the definition of highest-random-weight hashing, written out independently of the product."""
    return max(members, key=lambda m: int.from_bytes(hashlib.sha256(f"{task_id}\0{m}".encode()).digest()[:8], "big"))


def tasks_in(host: NetHost) -> set[str]:
    """The task ids the supernode in host's namespace schedules (ListTasks over its loopback: inspection allows it)."""
    code = (
        "import grpc, json\n"
        "from dandelion.scheduler.v1 import scheduler_pb2 as pb, scheduler_pb2_grpc as rpc\n"
        "stub = rpc.SchedulerServiceStub(grpc.insecure_channel('127.0.0.1:8002'))\n"
        "print(json.dumps([t.task_id for t in stub.ListTasks(pb.ListTasksRequest(), timeout=10).tasks]))\n"
    )
    done = run_in(host, [sys.executable, "-c", code], {})
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def start_dns(group: ProcessGroup, tmp_path: Path, names: list[str]) -> ManagedProcess:
    """dnsmasq answering each supernode pod name with its address, and the headless Service's name with all of them."""
    records = [f"--host-record={name},{host.ip}" for name, host in zip(names, SUPERNODES, strict=True)]
    service = names[0].split(".", 1)[1]  # dandelion-supernode.dandelion.svc.cluster.local
    records += [f"--host-record={service},{host.ip}" for host in SUPERNODES]
    argv = [
        *("dnsmasq", "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null", "--no-resolv", "--no-hosts"),
        *(f"--listen-address={DNS.ip}", "--bind-interfaces", f"--pid-file={tmp_path / 'dnsmasq.pid'}", "--user=root"),
        *records,
    ]
    dns = group.start("dnsmasq", DNS.argv(argv))
    wait_tcp_in(DNS, DNS.ip, 53, dns.alive)
    return dns


def test_the_manifests_run_spread_tasks_and_survive_the_loss_of_an_owner(
    process_group: ProcessGroup, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("dnsmasq") is None:
        pytest.skip("needs root for network namespaces, and dnsmasq (Debian's dnsmasq-base)")
    documents = load_documents()
    names = supernode_names(documents)
    everyone = [DNS, *SUPERNODES, SEED, *NODES, ORIGIN]
    if NETNS_ETC.exists() and any((NETNS_ETC / h.netns).exists() for h in everyone):
        pytest.skip("/etc/netns already holds one of this test's namespace names")
    try:
        hosts = bridged_hosts(f"{TAG}br", everyone)
        hosts.__enter__()
    except NetnsError as exc:
        pytest.skip(f"cannot create network namespaces here: {exc}")
    made_etc = not NETNS_ETC.exists()
    try:
        for host in everyone:
            (NETNS_ETC / host.netns).mkdir(parents=True)
            (NETNS_ETC / host.netns / "resolv.conf").write_text(
                f"nameserver {DNS.ip}\nsearch dandelion.svc.cluster.local svc.cluster.local cluster.local\n"
                "options ndots:5\n"
            )
        run_swarm(process_group, tmp_path, documents, names)
    finally:
        process_group.stop_all()
        for host in everyone:
            shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)
        if made_etc:
            shutil.rmtree(NETNS_ETC, ignore_errors=True)
        hosts.__exit__(None, None, None)


def run_swarm(group: ProcessGroup, tmp_path: Path, documents: list[dict[str, object]], names: list[str]) -> None:
    start_dns(group, tmp_path, names)
    write_random_file(tmp_path / "origin" / "f.bin", SIZE, seed=15)
    stats = tmp_path / "origin-stats.log"
    origin_argv = [sys.executable, str(ORIGIN_SCRIPT), "--root", str(tmp_path / "origin"), "--host", ORIGIN.ip]
    origin_argv += ["--port", "8080", "--rate", str(RATE), "--stats-log", str(stats)]
    origin = group.start("origin", ORIGIN.argv(origin_argv))
    wait_tcp_in(ORIGIN, ORIGIN.ip, 8080, origin.alive)

    started: dict[str, tuple[NetHost, Container, ManagedProcess]] = {}
    for index, host in enumerate(SUPERNODES):
        spec = pod(documents, "StatefulSet/dandelion-supernode/supernode", host)
        proc = group.start(f"supernode-{index}", host.argv(local_argv(spec, tmp_path / f"sn{index}")), spec.env)
        started[f"supernode-{index}"] = (host, spec, proc)
    for host, spec, proc in list(started.values()):  # the supernodes ready first, as their readiness probes gate the
        port = int(spec.spec["readinessProbe"]["grpc"]["port"])  # Service (on a loaded machine one may start late)
        proc.wait_until(lambda h=host, p=port: probe(h, p) == "", f"gRPC health SERVING on {host.ip}:{port}", 60)
    seed = pod(documents, "StatefulSet/dandelion-seed/seed", SEED)
    started["seed"] = (SEED, seed, group.start("seed", SEED.argv(local_argv(seed, tmp_path / "seed")), seed.env))
    for index, host in enumerate(NODES):
        init = pod(documents, "DaemonSet/dandelion-dfdaemon/containerd-config", host)
        done = run_in(host, local_argv(init, tmp_path / f"node{index}"), init.env)
        assert done.returncode == 0, done.stderr
        hub = tomllib.loads((tmp_path / f"node{index}" / "containerd-certs" / "docker.io" / "hosts.toml").read_text())
        assert list(hub["host"]) == ["http://127.0.0.1:65001"]  # the node's mirror, on the node's loopback
        spec = pod(documents, "DaemonSet/dandelion-dfdaemon/dfdaemon", host)
        proc = group.start(f"node-{index}", host.argv(local_argv(spec, tmp_path / f"node{index}")), spec.env)
        started[f"node-{index}"] = (host, spec, proc)

    for name, (host, spec, proc) in started.items():  # the probes and scrape ports of the manifests answer
        port = int(spec.spec["readinessProbe"]["grpc"]["port"])
        proc.wait_until(lambda h=host, p=port: probe(h, p) == "", f"gRPC health SERVING on {host.ip}:{port}", 60)
        scrape_port = int(spec.workload["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
        assert "dandelion_build_info" in scrape(host, scrape_port), name
    seed_proc = started["seed"][2]
    members = [f"{host.ip}:8002" for host in SUPERNODES]  # what the Service's name resolves to
    for member in members:  # registered with every supernode the name resolves to, taking each one's orders
        seed_proc.wait_until(lambda m=member: f"taking orders from supernode {m}" in seed_proc.log(), member)
    sockets = [tmp_path / f"node{i}" / "run" / "dfdaemon.sock" for i in range(len(NODES))]

    def fetch(name: str, node: int) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", PROGRAMS["dfget"], f"http://{ORIGIN.ip}:8080/{name}", "-o"]
        argv += [str(tmp_path / f"out{node}-{name}"), "--daemon", f"unix:{sockets[node]}"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=180)

    # Small files chosen so that each supernode owns two of them; every node downloads each.
    owners: dict[str, str] = {}
    for n in range(200):
        name, owner = f"s{n}.bin", rendezvous_owner(task_id(f"http://{ORIGIN.ip}:8080/s{n}.bin"), members)
        if list(owners.values()).count(owner) < 2:
            owners[name] = owner
        if len(owners) == 2 * len(members):
            break
    for n, name in enumerate(owners):
        write_random_file(tmp_path / "origin" / name, (1 << 20) + n, seed=40 + n)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        small = [pool.submit(fetch, name, node) for name in owners for node in range(len(NODES))]
        assert all(job.result().returncode == 0 for job in small), [job.result().stderr for job in small]
    scheduled = {member: tasks_in(host) for member, host in zip(members, SUPERNODES, strict=True)}
    for name, owner in owners.items():
        tid = task_id(f"http://{ORIGIN.ip}:8080/{name}")
        assert [m for m in members if tid in scheduled[m]] == [owner], name  # on its owner only

    url = f"http://{ORIGIN.ip}:8080/f.bin"
    big = task_id(url)
    owner = rendezvous_owner(big, members)
    owner_index = members.index(owner)
    with concurrent.futures.ThreadPoolExecutor(len(NODES)) as pool:
        jobs = [pool.submit(fetch, "f.bin", node) for node in range(len(NODES))]
        seed_proc.wait_until(lambda: "reading the origin for the swarm" in seed_proc.log(), "the seed peer reads")
        time.sleep(3.0)  # a third of the file read and spread
        assert big in tasks_in(SUPERNODES[owner_index])
        killed_at = time.monotonic()
        started[f"supernode-{owner_index}"][2].kill()
        results = [job.result() for job in jobs]
        after = time.monotonic() - killed_at
    logs = "\n".join(f"--- {name}\n{proc.tail(25)}" for name, (_, _, proc) in started.items())
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [logs]
    data = (tmp_path / "origin" / "f.bin").read_bytes()
    assert all((tmp_path / f"out{i}-f.bin").read_bytes() == data for i in range(len(NODES)))
    (survivor,) = [host for index, host in enumerate(SUPERNODES) if index != owner_index]
    assert big in tasks_in(survivor), logs  # the next on the task's ring took the swarm
    for name in ("seed", "node-0", "node-1"):
        log = started[name][2].log()
        assert all(f"with supernode {m}" in log for m in members), logs  # registered with both
        assert "registering the task again" in log, logs
    sent = read_stats_log(stats)
    print(
        f"\ntasks per supernode {[len(t) for t in scheduled.values()]}; origin sent "
        f"{sum(sent[f'/{n}'] for n in owners) / sum((1 << 20) + n for n in range(len(owners))):.3f}x the small files, "
        f"{sent['/f.bin'] / SIZE:.3f}x the big one; downloads ended {after:.1f}s after its owner was killed"
    )
    assert sent["/f.bin"] <= 1.05 * SIZE, logs
