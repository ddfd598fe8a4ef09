"""No credential a client hands Dandelion is ever written down or shown: real processes, real registries.

A supernode, a seed peer and two dfdaemons (with mirrors and /metrics) move private blobs of a Basic-auth registry
(htpasswd) and a token-auth registry: through the mirror with Basic credentials and with a Bearer token, with
`dfget --header 'Authorization: ...'` for both kinds, and with `dfget preheat --password-stdin`. Then every byte the
cluster left behind is scanned for the password, the tokens and their base64 forms (at every alignment, standard and
URL-safe): every file under the working directory (data dirs, state, logs of every process, binary-safe), the output
of dfget and dfget preheat, /metrics of the supernode and every dfdaemon, `dfinspect tasks|task|hosts --json`, and
the raw ListTasks, GetTask, ListHosts and ListCache answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from contextlib import ExitStack
from pathlib import Path

import grpc
import httpx
import pytest
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.clients import loopback_env, short_dir
from fixtures.images import MiB, PushedImage, build_and_push
from fixtures.processes import console_script, free_port
from fixtures.registry import Registry, TokenAuth
from fixtures.token_server import TokenServer
from mirror_support import PASSWORD, USER
from mirror_swarm import MirrorNode, start_dfdaemon, start_supernode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PEERS = (("dfdaemon-1", "127.0.0.11", ()), ("dfdaemon-2", "127.0.0.12", ()))
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def encoded_forms(secret: str, what: str) -> dict[bytes, str]:
    """secret, and the part of its base64 (standard and URL-safe) that shows wherever it starts in a longer text,
    each with a label that says which form it is (never the secret itself: failure output is logged too)."""
    raw = secret.encode()
    forms = {raw: f"{what}, raw"}
    for encode, kind in ((base64.b64encode, "base64"), (base64.urlsafe_b64encode, "url-safe base64")):
        for offset, skip in ((0, 0), (1, 2), (2, 3)):
            encoded = encode(b"\0" * offset + raw).rstrip(b"=")
            forms[encoded[skip : len(encoded) - 3]] = f"{what}, {kind} at offset {offset}"  # last chars mix in more
    return forms


def find_secrets(where: str, data: bytes, needles: dict[bytes, str]) -> list[str]:
    """One line per secret form found in data."""
    return [f"{what}: in {where}" for needle, what in needles.items() if needle in data]


def bearer_token(server: TokenServer, repository: str) -> str:
    """A pull token for repository, fetched from the token server with Basic credentials."""
    params = {"service": server.service, "scope": f"repository:{repository}:pull"}
    reply = httpx.get(server.realm, params=params, auth=(USER, PASSWORD), trust_env=False, timeout=30)
    assert reply.status_code == 200, reply.text
    token = reply.json()["token"]
    assert isinstance(token, str)
    return token


def mirror_blob(node: MirrorNode, image: PushedImage, layer: int, headers: dict[str, str]) -> int:
    """GET a layer through node's mirror with headers; the body must be that layer when the status is 200."""
    digest = image.layer_digests[layer]
    with node.client() as client:
        response = client.get(f"/v2/{image.repository}/blobs/{digest}", headers=headers)
    if response.status_code == 200:
        assert "sha256:" + hashlib.sha256(response.content).hexdigest() == digest
    return response.status_code


def daemon_socket(node: MirrorNode) -> str:
    """The dfdaemon's dfget endpoint (unix:PATH), as it was started."""
    return node.proc.argv[node.proc.argv.index("--daemon-listen") + 1]


def run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a client to completion (no proxies from the environment)."""
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, env=loopback_env())


def test_credentials_never_reach_disk_logs_metrics_or_inspection(
    tmp_path: Path,
    basic_registry: Registry,
    token_registry: Registry,
) -> None:
    """Private blobs move by every door that takes a credential; nothing the cluster wrote or shows holds one."""
    assert isinstance(token_registry.auth, TokenAuth)
    token_server = token_registry.auth.server
    creds = f"{USER}:{PASSWORD}"
    basic_image = build_and_push(tmp_path / "img", basic_registry.addr, "ns/basic", [MiB, MiB], creds=creds)
    token_image = build_and_push(tmp_path / "img", token_registry.addr, "ns/token", [MiB, MiB], creds=creds)
    preheated = build_and_push(tmp_path / "img", basic_registry.addr, "ns/preheated", [MiB], creds=creds)
    mirror_token, dfget_token = bearer_token(token_server, "ns/token"), bearer_token(token_server, "ns/token")
    assert mirror_token != dfget_token
    needles: dict[bytes, str] = {}
    for secret, what in ((PASSWORD, "password"), (mirror_token, "mirror token"), (dfget_token, "dfget token")):
        needles.update(encoded_forms(secret, what))
    needles.update(encoded_forms(BASIC.removeprefix("Basic "), "the Basic header's base64"))

    workdir = tmp_path / "cluster"
    workdir.mkdir()
    shown: dict[str, bytes] = {}  # what clients were told: name -> bytes
    with ExitStack() as stack:
        sockets = stack.enter_context(short_dir("dfc-"))
        metrics = {"supernode": f"127.0.0.1:{free_port()}"}
        # The `--seed` dfdaemon is the only seed peer: with the in-process one too, rendezvous hashing gives that one
        # about half the tasks, and at times all five, which left this one's cache empty.
        supernode_addr, supernode = start_supernode(workdir, ("--metrics", metrics["supernode"], "--no-seed-peer"))
        stack.callback(supernode.stop)
        started: list[MirrorNode] = []
        for name, ip, role in (("seed-peer", "127.0.0.10", ("--seed",)), *PEERS):
            metrics[name] = f"{ip}:{free_port(ip)}"
            extra = ("--metrics", metrics[name], "--allow-registry", token_registry.addr, *role)
            node = start_dfdaemon(workdir, name, ip, supernode_addr, basic_registry.url, sockets, extra)
            stack.callback(node.proc.stop)
            started.append(node)
        seed_peer, *nodes = started
        supernode.wait_until(lambda: "seed peer takes orders" in supernode.log(), "the seed peer takes orders")

        # The mirror, Basic: refused without credentials, then the layer on one node and from it on the other.
        assert mirror_blob(nodes[0], basic_image, 0, {}) == 401
        for node in nodes:
            assert mirror_blob(node, basic_image, 0, {"Authorization": BASIC}) == 200, node.proc.tail()
        # The mirror, Bearer, on the token registry picked with the header.
        pick = {"X-Dandelion-Registry": token_registry.addr}
        assert mirror_blob(nodes[0], token_image, 0, pick) == 401
        for node in nodes:
            assert mirror_blob(node, token_image, 0, {**pick, "Authorization": f"Bearer {mirror_token}"}) == 200

        # dfget with an Authorization header, Basic and Bearer, on both nodes.
        fetches: list[tuple[PushedImage, str, Registry]] = [
            (basic_image, BASIC, basic_registry),
            (token_image, f"Bearer {dfget_token}", token_registry),
        ]
        for image, header, registry in fetches:
            url = f"{registry.url}/v2/{image.repository}/blobs/{image.layer_digests[1]}"
            direct = httpx.get(url, trust_env=False, timeout=30)
            assert direct.status_code == 401, "the origin must demand the credential this test looks for"
            for node in nodes:
                out = tmp_path / f"dfget-{image.repository.replace('/', '_')}-{node.name}"
                argv = [console_script("dfget"), url, "-o", str(out), "--daemon", daemon_socket(node)]
                result = run([*argv, "--header", f"Authorization: {header}"])
                assert result.returncode == 0, result.stderr + node.proc.tail()
                assert "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest() == image.layer_digests[1]
                shown[f"dfget {url} on {node.name}"] = (result.stdout + result.stderr).encode()

        # dfget preheat with the password on stdin.
        argv = [console_script("dfget"), "preheat", preheated.reference, "--supernode", supernode_addr]
        result = run([*argv, "--username", USER, "--password-stdin"], stdin=PASSWORD)
        assert result.returncode == 0, result.stderr + supernode.tail()
        shown["dfget preheat"] = (result.stdout + result.stderr).encode()

        # What the cluster shows: /metrics, dfinspect, the raw inspection answers.
        for name, addr in metrics.items():
            response = httpx.get(f"http://{addr}/metrics", trust_env=False, timeout=30)
            assert response.status_code == 200 and b"# TYPE" in response.content
            shown[f"{name} /metrics"] = response.content
        inspect = [console_script("dfinspect"), "--supernode", supernode_addr]
        for command in (["tasks"], ["hosts"]):
            result = run([*inspect, *command, "--json"])
            assert result.returncode == 0, result.stderr
            shown[f"dfinspect {command[0]}"] = result.stdout.encode()
        tasks = json.loads(shown["dfinspect tasks"])
        assert len(tasks) >= 5, tasks  # 2 mirror layers, 2 dfget layers, the preheated image's blobs
        with grpc.insecure_channel(supernode_addr) as channel:
            scheduler = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            shown["ListTasks"] = scheduler.ListTasks(scheduler_pb2.ListTasksRequest()).SerializeToString()
            shown["ListHosts"] = scheduler.ListHosts(scheduler_pb2.ListHostsRequest()).SerializeToString()
            for task in tasks:
                result = run([*inspect, "task", task["task_id"], "--json"])
                assert result.returncode == 0, result.stderr
                shown[f"dfinspect task {task['url']}"] = result.stdout.encode()
                request = scheduler_pb2.GetTaskRequest(task_id=task["task_id"])
                shown[f"GetTask {task['url']}"] = scheduler.GetTask(request).SerializeToString()
        hosts = json.loads(shown["dfinspect hosts"])
        assert [h["seed"] for h in hosts].count(True) >= 1, hosts
        for node in started:
            with grpc.insecure_channel(daemon_socket(node)) as channel:
                cache = peer_pb2_grpc.DaemonServiceStub(channel).ListCache(peer_pb2.ListCacheRequest())
            assert len(cache.entries) >= (len(tasks) if node is seed_peer else 4), cache  # the seed peer read each
            shown[f"{node.name} ListCache"] = cache.SerializeToString()
    # Every process has stopped (and written whatever it writes on the way out): scan everything it left.

    hits = [hit for where, data in shown.items() for hit in find_secrets(where, data, needles)]
    scanned = 0
    for path in sorted(workdir.rglob("*")):
        if path.is_file():
            scanned += 1
            hits += find_secrets(str(path.relative_to(tmp_path)), path.read_bytes(), needles)
    assert scanned >= 10, f"only {scanned} files under {workdir}: the scan looked at nothing"
    assert not hits, "credentials leaked:\n" + "\n".join(hits)


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"Authorization: Basic "])
def test_the_scan_finds_a_secret_written_in_any_form(prefix: bytes) -> None:
    """The needles catch a secret written raw or in base64 at any offset, inside binary data."""
    needles = encoded_forms(PASSWORD, "password")
    for written in (
        PASSWORD.encode(),
        base64.b64encode(prefix + PASSWORD.encode() + b"\n"),
        base64.urlsafe_b64encode(prefix + f"{USER}:{PASSWORD}".encode()),
    ):
        assert find_secrets("blob", b"\x00\xff" + written + b"\x00", needles), (prefix, written)
    assert not find_secrets("blob", base64.b64encode(prefix + b"something else entirely"), needles)
