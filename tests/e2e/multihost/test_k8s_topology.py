"""The Kubernetes manifests' own command lines, run for real: two supernodes, a seed peer and two nodes, each in a
network namespace with the address its pod (or node) would have, the supernodes' pod names answered by a DNS server
(dnsmasq) the way the cluster's DNS answers for a headless Service. The node's init container writes containerd's
hosts.toml, every probe and scrape port answers, and when supernode-0 is SIGKILLed in the middle of a swarm the
nodes move to supernode-1 and the downloads finish with the origin sending the file about once.

What the cluster would add is left out: volumes are directories under tmp_path, the kubelet's probes are
`python -m dfcommon.healthcheck` run in the pod's namespace.
"""

from __future__ import annotations

import concurrent.futures
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
    "dfdaemon": "from peer.daemon import main; main()",
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
    """The pod names of the peers' supernode list, in order."""
    seed = pod(documents, "StatefulSet/dandelion-seed/seed", SEED)
    return [entry.rsplit(":", 1)[0] for entry in seed.env["DFDAEMON_SUPERNODE"].split(",")]


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


def test_the_manifests_run_and_survive_the_loss_of_supernode_0(process_group: ProcessGroup, tmp_path: Path) -> None:
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
    seed_proc.wait_until(lambda: "seed peer taking orders" in seed_proc.log(), "the seed peer's order stream")
    assert f"with supernode {names[0]}:8002" in seed_proc.log()  # the first of the list, found by its DNS name

    sockets = [tmp_path / f"node{i}" / "run" / "dfdaemon.sock" for i in range(len(NODES))]
    url = f"http://{ORIGIN.ip}:8080/f.bin"
    with concurrent.futures.ThreadPoolExecutor(len(NODES)) as pool:
        jobs = [
            pool.submit(
                subprocess.run,
                [
                    sys.executable,
                    "-c",
                    PROGRAMS["dfget"],
                    url,
                    "-o",
                    str(tmp_path / f"out{i}"),
                    "--daemon",
                    f"unix:{sock}",
                ],
                capture_output=True,
                text=True,
                timeout=180,
            )
            for i, sock in enumerate(sockets)
        ]
        seed_proc.wait_until(lambda: "reading the origin for the swarm" in seed_proc.log(), "the seed peer reads")
        time.sleep(3.0)  # a third of the file read and spread
        killed_at = time.monotonic()
        started["supernode-0"][2].kill()
        results = [job.result() for job in jobs]
        after = time.monotonic() - killed_at
    logs = "\n".join(f"--- {name}\n{proc.tail(25)}" for name, (_, _, proc) in started.items())
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [logs]
    data = (tmp_path / "origin" / "f.bin").read_bytes()
    assert all((tmp_path / f"out{i}").read_bytes() == data for i in range(len(NODES)))
    for name in ("seed", "node-0", "node-1"):
        log = started[name][2].log()
        assert f"with supernode {names[0]}:8002" in log and f"with supernode {names[1]}:8002" in log, logs
    sent = read_stats_log(stats)["/f.bin"]
    print(f"\norigin sent {sent / SIZE:.3f}x the file; downloads ended {after:.1f}s after supernode-0 was killed")
    assert sent <= SIZE + 2 * (4 << 20), logs  # at most the pieces in flight at the kill read twice
