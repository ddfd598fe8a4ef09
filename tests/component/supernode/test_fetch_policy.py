"""The SSRF table with real processes: what a supernode (and a dfdaemon) listening beyond loopback refuses to fetch
by default, what it fetches once configured, and that a remote caller cannot tell a refused address from a closed
or open port.

The supernodes listen on 0.0.0.0 (that is what makes loopback origins refused) but every byte of traffic goes over
loopback. Each origin below counts its requests, so "refused" means "never asked", not "asked and failed".
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port

BODY = b"private bytes of a loopback-only service\n" * 1000
UNREACHABLE = "origin unreachable or not allowed: "


class _Origin:
    """An HTTP server on ip:0: /file is BODY, /redirect sends to `target`; every request (GET, HEAD) is counted."""

    def __init__(self, ip: str, target: str = "") -> None:
        self.hits: Counter[str] = Counter()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(head=False)

            def do_HEAD(self) -> None:  # the access probes of the supernode and the dfdaemons
                self._answer(head=True)

            def _answer(self, head: bool) -> None:
                origin.hits[self.path] += 1
                path = self.path.split("?")[0]
                if path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200 if path == "/file" else 404)
                body = BODY if path == "/file" else b"no"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer((ip, 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _NotHttp:
    """An open port that answers anything with a line that is not HTTP (an SSH or Redis port, say)."""

    def __init__(self, ip: str) -> None:
        self.sock = socket.create_server((ip, 0))
        self.port = int(self.sock.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    def close(self) -> None:
        self.sock.close()


@dataclass
class Cluster:
    """Origins on loopback and two supernodes on 0.0.0.0: one with the default policy, one configured."""

    origin: _Origin  # 127.0.0.1: a loopback-only service
    redirector: _Origin  # 127.0.0.2 (allowed on both supernodes): redirects to the loopback service
    default: tuple[str, int, ManagedProcess]  # gRPC address, metrics port, process
    configured: tuple[str, int, ManagedProcess]


def _start_supernode(group: ProcessGroup, workdir: Path, name: str, allow: str) -> tuple[str, int, ManagedProcess]:
    port, metrics = free_port("127.0.0.1"), free_port("127.0.0.1")
    argv = [
        console_script("supernode"),
        *("--listen", f"0.0.0.0:{port}", "--advertise-ip", "127.0.0.1", "--data-dir", str(workdir / name)),
        *("--metrics", f"127.0.0.1:{metrics}", "--origin-allow", allow.format(port=port, metrics=metrics)),
    ]
    proc = group.start(name, argv)
    proc.wait_for_tcp("127.0.0.1", port, timeout=30)
    proc.wait_until(lambda: "origin fetch policy" in proc.log(), "the policy line", timeout=30)
    return f"127.0.0.1:{port}", metrics, proc


@pytest.fixture(scope="module")
def cluster(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("fetchpolicy")
    origin = _Origin("127.0.0.1")
    redirector = _Origin("127.0.0.2", f"http://127.0.0.1:{origin.port}/file")
    try:
        default = _start_supernode(module_process_group, workdir, "sn-default", "127.0.0.2")
        configured = _start_supernode(
            module_process_group, workdir, "sn-configured", "127.0.0.0/8,127.0.0.1:{port},127.0.0.1:{metrics}"
        )
        yield Cluster(origin, redirector, default, configured)
    finally:
        origin.close()
        redirector.close()


def preheat(address: str, url: str) -> scheduler_pb2.PreheatTaskResponse:
    with grpc.insecure_channel(address) as chan:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
        reply: scheduler_pb2.PreheatTaskResponse = stub.PreheatTask(
            scheduler_pb2.PreheatTaskRequest(url_meta=common_pb2.UrlMeta(url=url)), timeout=30
        )
        return reply


def refused(address: str, url: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        preheat(address, url)
    return caught.value


# (row, URL on the default supernode's view, what its log says): the {origin}, {redirector}, {grpc}, {metrics}
# ports are filled in per supernode.
ROWS = [
    ("loopback", "http://127.0.0.1:{origin}/file", "loopback address, and the supernode listens beyond loopback"),
    ("a name resolving to 127.0.0.1", "http://localhost:{origin}/file", "origin localhost ("),
    ("the supernode's own gRPC port", "http://127.0.0.1:{grpc}/", "the supernode's own gRPC address"),
    ("the supernode's own metrics", "http://127.0.0.1:{metrics}/metrics", "the supernode's own metrics address"),
    ("a redirect to loopback", "http://127.0.0.2:{redirector}/redirect", "origin 127.0.0.1:{origin} not allowed"),
]


def _url(template: str, cluster: Cluster, which: tuple[str, int, ManagedProcess]) -> str:
    grpc_port = int(which[0].rsplit(":", 1)[1])
    return template.format(
        origin=cluster.origin.port, redirector=cluster.redirector.port, grpc=grpc_port, metrics=which[1]
    )


@pytest.mark.parametrize(("template", "logged"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_refused_by_default_and_allowed_when_configured(cluster: Cluster, template: str, logged: str) -> None:
    address, _, proc = cluster.default
    url = _url(template, cluster, cluster.default)
    before = cluster.origin.hits["/file"]
    error = refused(address, url)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert error.details() == UNREACHABLE + url  # type: ignore[attr-defined]
    assert cluster.origin.hits["/file"] == before, "the loopback service was asked"
    assert logged.format(origin=cluster.origin.port) in proc.log()

    address, _, proc = cluster.configured
    url = _url(template, cluster, cluster.configured)
    if "{grpc}" in template:  # allowed now, but a gRPC port is no HTTP origin: the fetch gets as far as asking
        assert refused(address, url).code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        line = next(line for line in proc.log().splitlines() if f"url={url} failed" in line)
        assert "not allowed" not in line
        return
    reply = preheat(address, url)
    if "{metrics}" in template:
        assert reply.task.content_length != 0  # the configured supernode read its own metrics: that is what was allowed
    else:
        assert reply.task.content_length == len(BODY)


def test_link_local_is_refused_before_any_connect(cluster: Cluster) -> None:
    """The metadata address is refused on the policy's word alone, at once (the unit tests show that nothing is
    connected to; here no packet may leave for 169.254.169.254 either, so only the refusal is looked at)."""
    for address, _, proc in (cluster.default, cluster.configured):
        url = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        began = time.monotonic()
        error = refused(address, url)
        assert time.monotonic() - began < 5
        assert error.details() == UNREACHABLE + url  # type: ignore[attr-defined]
        assert "origin 169.254.169.254:80 not allowed: link-local address" in proc.log()


def test_a_remote_caller_cannot_tell_refused_closed_and_open_ports_apart(cluster: Cluster) -> None:
    """On 127.0.0.2 (allowed on the default supernode): a closed port, an open port that speaks no HTTP; and a
    refused address. Same code, same message, but the URL; the supernode's own log tells them apart."""
    address, _, proc = cluster.default
    not_http = _NotHttp("127.0.0.2")
    try:
        urls = {
            "closed": f"http://127.0.0.2:{free_port('127.0.0.2')}/x",
            "open, not HTTP": f"http://127.0.0.2:{not_http.port}/x",
            "refused": f"http://127.0.0.1:{cluster.origin.port}/closedtest",
        }
        seen = {what: refused(address, url) for what, url in urls.items()}
    finally:
        not_http.close()
    for what, error in seen.items():
        assert error.code() == grpc.StatusCode.UNAVAILABLE, what  # type: ignore[attr-defined]
        assert error.details() == UNREACHABLE + urls[what], what  # type: ignore[attr-defined]
    log = proc.log()
    assert "connection refused" in log and "bad HTTP response" in log


def test_register_task_tells_nothing_of_a_refused_origin(cluster: Cluster) -> None:
    """The supernode cannot ask an origin its policy refuses whether the caller may read a URL: RegisterTask is
    refused UNAVAILABLE (a dfdaemon then reads the origin itself) with the message of any origin that gives no HTTP
    answer, whether refused by the policy, closed or not HTTP; no task is made, and the origin is never asked."""
    address, _, proc = cluster.default
    not_http = _NotHttp("127.0.0.2")
    urls = {
        "refused": f"http://127.0.0.1:{cluster.origin.port}/file?register=1",
        "closed": f"http://127.0.0.2:{free_port('127.0.0.2')}/x",
        "open, not HTTP": f"http://127.0.0.2:{not_http.port}/x",
    }
    host = scheduler_pb2.HostInfo(hostname="caller", ip="127.0.0.1", port=free_port("127.0.0.1"), upload_slots=1)
    try:
        with grpc.insecure_channel(address) as chan:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
            host_id = stub.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host), timeout=10).host_id
            for what, url in urls.items():
                request = scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=common_pb2.UrlMeta(url=url))
                with pytest.raises(grpc.RpcError) as caught:
                    stub.RegisterTask(request, timeout=30)
                error = caught.value
                assert error.code() == grpc.StatusCode.UNAVAILABLE, what  # type: ignore[attr-defined]
                assert error.details() == (  # type: ignore[attr-defined]
                    f"{UNREACHABLE}{url} (the supernode cannot check access: read it from the origin)"
                ), what
            tasks = stub.ListTasks(scheduler_pb2.ListTasksRequest(), timeout=10).tasks
    finally:
        not_http.close()
    assert not [t for t in tasks if t.url in urls.values()]
    assert cluster.origin.hits["/file?register=1"] == 0
    assert f"registration refused: origin 127.0.0.1:{cluster.origin.port} not allowed: loopback" in proc.log()


def test_dfdaemon_back_to_source_follows_the_policy(
    cluster: Cluster, module_process_group: ProcessGroup, tmp_path: Path
) -> None:
    """A dfdaemon listening beyond loopback refuses a loopback origin for its local user with one clear line, and
    fetches it once the origin is allowed (the supernode's policy still refuses it, so the supernode cannot ask
    whether the caller may read it and grants nothing: the daemon goes to the origin itself, and says why)."""
    address = cluster.default[0]
    url = f"http://127.0.0.1:{cluster.origin.port}/file?daemon=1"
    for name, extra in (("p-default", ()), ("p-allowed", ("--origin-allow", f"127.0.0.1:{cluster.origin.port}"))):
        sock, port = tmp_path / f"{name}.sock", free_port("127.0.0.1")
        proc = module_process_group.start(
            name,
            [
                console_script("dfdaemon"),
                *("--supernode", address, "--listen", "0.0.0.0", "--port", str(port), "--mirror", "off"),
                *("--data-dir", str(tmp_path / name), "--daemon-listen", f"unix:{sock}", *extra),
            ],
        )
        proc.wait_for_unix(sock, timeout=30)
        before = cluster.origin.hits["/file?daemon=1"]
        out = tmp_path / f"{name}.out"
        done = subprocess.run(
            [console_script("dfget"), url, "-o", str(out), "--daemon", f"unix:{sock}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if name == "p-default":
            assert done.returncode != 0 and not out.exists()
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert f"origin 127.0.0.1:{cluster.origin.port} not allowed: loopback address" in lines[0]
            assert "this dfdaemon listens beyond loopback" in lines[0]
            assert cluster.origin.hits["/file?daemon=1"] == before
        else:
            assert done.returncode == 0, done.stderr
            assert out.read_bytes() == BODY
            # The dfdaemon's access probe (a HEAD) and its download (the supernode's policy refuses it: never asked).
            assert cluster.origin.hits["/file?daemon=1"] == before + 2
            assert f"going back to source: {UNREACHABLE}{url} (the supernode cannot check access" in proc.log()
        proc.stop()
