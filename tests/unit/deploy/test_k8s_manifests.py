"""deploy/kubernetes: every manifest is valid for Kubernetes (its schemas, offline), and nothing in it would break the
deployment: each container's command line is one its binary accepts, probes and scrape annotations name the ports the
processes listen on, the dfdaemon runs on the node's network with its mirror on the node's loopback."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fixtures.k8s_manifests import (
    KUBERNETES,
    SAMPLE_FIELDS,
    Container,
    containers,
    load_documents,
    manifest_files,
    parse,
    problems,
)

from mirror.clientconfig_cli import run as client_config
from peer.config import parse_supernodes

OLDEST = "1.27"  # native gRPC probes are GA from 1.27 on
VERSIONS = (OLDEST, kubernetes_validate.utils.latest_version())


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def container(documents: list[dict[str, Any]], name: str) -> Container:
    (found,) = [c for c in containers(documents) if c.name == name]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    documents = load_documents()
    assert {d["kind"] for d in documents} >= {"DaemonSet", "StatefulSet", "Service", "ConfigMap", "Namespace"}
    for doc in documents:
        # strict: a misspelt or misplaced field is an error, not ignored; a kind without a schema raises too
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schemas_catch_a_misplaced_field() -> None:
    daemonset = copy.deepcopy(find(load_documents(), "DaemonSet", "dandelion-dfdaemon"))
    daemonset["spec"]["hostNetwork"] = True  # belongs in the pod's spec
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, OLDEST, strict=True)


def test_kustomization_lists_every_manifest_but_the_undo() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in manifest_files() if p.name != "node-config-undo.yaml")


def test_nothing_would_break_the_deployment() -> None:
    assert problems(load_documents()) == []


def _args(doc: dict[str, Any], index: int = 0) -> list[str]:
    args: list[str] = doc["spec"]["template"]["spec"]["containers"][index]["args"]
    return args


def _unknown_flag(docs: list[dict[str, Any]]) -> None:
    _args(find(docs, "DaemonSet", "dandelion-dfdaemon")).append("--mirror-port=65001")


def _bad_value(docs: list[dict[str, Any]]) -> None:
    _args(find(docs, "StatefulSet", "dandelion-supernode")).append("--piece-size=1KiB")


def _unknown_variable(docs: list[dict[str, Any]]) -> None:
    find(docs, "ConfigMap", "dandelion-dfdaemon")["data"]["DFDAEMON_MIRROR_LISTEN"] = "127.0.0.1:65001"


def _probe_port(docs: list[dict[str, Any]]) -> None:
    seed = find(docs, "StatefulSet", "dandelion-seed")["spec"]["template"]["spec"]["containers"][0]
    seed["livenessProbe"]["grpc"]["port"] = 8002


def _listen_port(docs: list[dict[str, Any]]) -> None:
    args = _args(find(docs, "StatefulSet", "dandelion-supernode"))
    args[args.index("--listen=0.0.0.0:8002")] = "--listen=0.0.0.0:9002"


def _scrape_port(docs: list[dict[str, Any]]) -> None:
    find(docs, "DaemonSet", "dandelion-dfdaemon")["spec"]["template"]["metadata"]["annotations"][
        "prometheus.io/port"
    ] = "65003"


def _no_limits(docs: list[dict[str, Any]]) -> None:
    del find(docs, "DaemonSet", "dandelion-dfdaemon")["spec"]["template"]["spec"]["initContainers"][0]["resources"][
        "limits"
    ]


def _cache_off_volume(docs: list[dict[str, Any]]) -> None:
    args = _args(find(docs, "StatefulSet", "dandelion-seed"))
    args[args.index("--data-dir=/data")] = "--data-dir=/var/cache/dandelion"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_unknown_flag, "unrecognized arguments: --mirror-port=65001"),
        (_bad_value, "piece size must be between 64KiB and 64MiB"),
        (_unknown_variable, "DFDAEMON_MIRROR_LISTEN names no flag of dfdaemon"),
        (_probe_port, "livenessProbe on 8002, the process listens on 65000"),
        (_listen_port, "readinessProbe on 8002, the process listens on 9002"),
        (_scrape_port, "prometheus.io/port 65003, --metrics 10.0.0.7:65002"),
        (_no_limits, "dandelion-dfdaemon/containerd-config: resources.limits needs cpu and memory"),
        (_cache_off_volume, "/var/cache/dandelion is on the image's read-only file system"),
    ],
)
def test_the_checks_catch_a_broken_manifest(breakage: Any, expected: str) -> None:
    documents = copy.deepcopy(load_documents())
    breakage(documents)
    found = problems(documents)
    assert any(expected in line for line in found), found


def test_the_dfdaemon_runs_on_the_nodes_network_with_its_mirror_on_loopback() -> None:
    documents = load_documents()
    dfdaemon = container(documents, "DaemonSet/dandelion-dfdaemon/dfdaemon")
    assert dfdaemon.pod["hostNetwork"] is True
    assert dfdaemon.pod["dnsPolicy"] == "ClusterFirstWithHostNet"  # else the supernodes' names do not resolve
    ns = parse(dfdaemon)
    assert ns is not None and not ns.seed
    assert ns.mirror == "127.0.0.1:65001"
    assert ns.listen == SAMPLE_FIELDS["status.hostIP"]  # other nodes fetch pieces at the node's address
    volumes = {v["name"]: v for v in dfdaemon.pod["volumes"]}
    for path, host_path in ((str(ns.data_dir), "/var/lib/dandelion"), (ns.daemon_listen[5:], "/run/dandelion")):
        mount = dfdaemon.mount_for(path)
        assert mount is not None and volumes[mount["name"]]["hostPath"]["path"] == host_path


def test_the_init_container_points_containerd_at_the_mirror_and_the_undo_takes_it_back(tmp_path: Path) -> None:
    documents = load_documents()
    dfdaemon = parse(container(documents, "DaemonSet/dandelion-dfdaemon/dfdaemon"))
    assert dfdaemon is not None
    certs = tmp_path / "certs.d"
    for name, check in (
        ("DaemonSet/dandelion-dfdaemon/containerd-config", True),
        ("DaemonSet/dandelion-node-config-undo/containerd-config-undo", False),
    ):
        init = container(documents, name)
        assert init.init and init.spec["securityContext"]["runAsUser"] == 0
        ns = parse(init)
        assert ns is not None and ns.runtime == "containerd"
        mount = init.mount_for(str(ns.write))
        assert mount is not None and mount["mountPath"] == str(ns.write)
        hosts = {v["name"]: v for v in init.pod["volumes"]}[mount["name"]]["hostPath"]["path"]
        assert hosts == "/etc/containerd/certs.d"
        argv = [a for a in init.argv[2:] if not a.startswith("--write=")]
        assert client_config([*argv, f"--write={certs}"], init.env) == 0  # the real command, into tmp_path
        if check:
            hub = tomllib.loads((certs / "docker.io" / "hosts.toml").read_text())
            assert hub["host"] == {f"http://{dfdaemon.mirror}": {"capabilities": ["pull", "resolve"]}}
    assert list(certs.iterdir()) == []


def test_the_peers_find_the_supernodes_by_the_headless_service() -> None:
    documents = load_documents()
    statefulset = find(documents, "StatefulSet", "dandelion-supernode")
    service = find(documents, "Service", statefulset["spec"]["serviceName"])
    namespace = statefulset["metadata"]["namespace"]
    assert service["spec"]["clusterIP"] == "None"  # headless: one A record per ready pod
    assert not service["spec"].get("publishNotReadyAddresses")  # a supernode not ready is not a member
    assert service["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    supernode = parse(container(documents, "StatefulSet/dandelion-supernode/supernode"))
    assert supernode is not None
    port = int(supernode.listen.rsplit(":", 1)[1])
    assert port in {p["port"] for p in service["spec"]["ports"]}
    expected = [f"dns:///{service['metadata']['name']}.{namespace}.svc.cluster.local:{port}"]
    for name in ("DaemonSet/dandelion-dfdaemon/dfdaemon", "StatefulSet/dandelion-seed/seed"):
        ns = parse(container(documents, name))
        assert ns is not None and parse_supernodes(ns.supernode) == expected


def test_seed_peers_keep_their_cache_on_a_claim_of_their_own() -> None:
    documents = load_documents()
    seed = container(documents, "StatefulSet/dandelion-seed/seed")
    ns = parse(seed)
    assert ns is not None and ns.seed and ns.mirror == "off"
    assert ns.advertise_ip == SAMPLE_FIELDS["status.podIP"]
    claims = {c["metadata"]["name"] for c in seed.workload["spec"]["volumeClaimTemplates"]}
    mount = seed.mount_for(str(ns.data_dir))
    assert mount is not None and mount["name"] in claims
    assert find(documents, "Service", seed.workload["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
