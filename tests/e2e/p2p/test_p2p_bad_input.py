"""Bad input: dfget prints one line and leaves no file; raw gRPC misuse gets status codes; servers stay up."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.origin import OriginServer, sha256_file, start_origin, write_random_file
from fixtures.processes import ProcessGroup
from p2p_cluster import PeerHandle, Swarm, grpc_healthy

pytestmark = pytest.mark.e2e

MiB = 1 << 20
USER = "origin-user"
PASSWORD = "s3cret-Pa55-not-on-disk"


@dataclass
class Setup:
    """One origin (with a Basic-auth area), a supernode and one peer."""

    swarm: Swarm
    origin: OriginServer
    peer: PeerHandle
    sha: str
    private_sha: str


@pytest.fixture(scope="module")
def setup(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Start the servers once for the module."""
    base = tmp_path_factory.mktemp("badinput")
    content = base / "content"
    sha = write_random_file(content / "ok.bin", 3 * MiB, seed=21)
    private_sha = write_random_file(content / "private" / "secret.bin", 2 * MiB + 17, seed=22)
    origin = start_origin(module_process_group, content, user=USER, password=PASSWORD)
    swarm = Swarm(module_process_group, base)
    swarm.start_supernode()
    peer = swarm.start_peer("127.0.0.2")
    yield Setup(swarm=swarm, origin=origin, peer=peer, sha=sha, private_sha=private_sha)


def assert_one_line_failure(result_stderr: str, returncode: int, output: Path, *needles: str) -> None:
    """Nonzero exit, exactly one line on stderr mentioning every needle, and no output file."""
    assert returncode != 0
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {result_stderr!r}"
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result_stderr
    assert not output.exists(), "a failed download left an output file"
    assert not list(output.parent.glob(output.name + "*")), "a failed download left a partial file"


@pytest.mark.parametrize(
    ("make_url", "extra", "needles"),
    [
        (lambda o: "ftp://127.0.0.1/file.bin", [], ["scheme"]),
        (lambda o: o.url("missing.bin"), [], ["404"]),
        (lambda o: o.url("private/secret.bin"), [], ["401"]),
        (lambda o: o.url("ok.bin"), ["--digest", "sha256:" + "0" * 64], ["digest"]),
        (lambda o: o.url("ok.bin"), ["--digest", "sha256:not-hex"], ["digest"]),
    ],
    ids=["unknown-scheme", "http-404", "http-401", "wrong-digest", "malformed-digest"],
)
def test_dfget_bad_input(
    setup: Setup, tmp_path: Path, make_url: Callable[[OriginServer], str], extra: list[str], needles: list[str]
) -> None:
    """Each bad request fails with one clear line, a nonzero status and no output file."""
    out = tmp_path / "out.bin"
    result = setup.swarm.dfget(make_url(setup.origin), out, setup.peer, *extra, timeout=60)
    assert_one_line_failure(result.stderr, result.returncode, out, *needles)


def test_dfget_with_right_digest_and_auth_header(setup: Setup, tmp_path: Path) -> None:
    """The right digest passes; an Authorization header reaches the origin but is never written to disk or logs."""
    ok = setup.swarm.dfget(
        setup.origin.url("ok.bin"), tmp_path / "ok.bin", setup.peer, "--digest", "sha256:" + setup.sha
    )
    assert ok.returncode == 0, ok.stderr
    assert sha256_file(tmp_path / "ok.bin") == setup.sha
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    result = setup.swarm.dfget(
        setup.origin.url("private/secret.bin"),
        tmp_path / "secret.bin",
        setup.peer,
        "--header",
        f"Authorization: Basic {token}",
    )
    assert result.returncode == 0, result.stderr
    assert sha256_file(tmp_path / "secret.bin") == setup.private_sha
    for root in (setup.swarm.base_dir, *(p.log_path.parent for p in setup.swarm.group.processes)):
        for path in root.rglob("*"):
            if path.is_file() and path.suffix != ".bin" and path.name != "data":
                text = path.read_bytes()
                assert PASSWORD.encode() not in text and token.encode() not in text, f"credential leaked into {path}"


def test_dfget_without_daemon_uses_an_embedded_peer(setup: Setup, tmp_path: Path) -> None:
    """dfget --supernode (no dfdaemon socket) downloads through the swarm on its own."""
    assert setup.swarm.supernode is not None
    out = tmp_path / "embedded.bin"
    result = setup.swarm.dfget(
        setup.origin.url("ok.bin"),
        out,
        None,
        "--daemon",
        f"unix:{tmp_path / 'no-daemon.sock'}",
    )
    assert "--supernode" in setup.swarm.dfget_argv("u", out, None)
    assert result.returncode == 0, result.stderr
    assert sha256_file(out) == setup.sha


def expect_code(code: grpc.StatusCode | set[grpc.StatusCode], call: Callable[[], object]) -> None:
    """call() must fail with code (or one of a set of acceptable codes)."""
    codes = code if isinstance(code, set) else {code}
    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if hasattr(result, "__iter__"):
            list(result)  # type: ignore[call-overload]
    assert caught.value.code() in codes, f"expected {codes}, got {caught.value.code()}: {caught.value.details()}"


def test_raw_grpc_misuse_gets_status_codes(setup: Setup) -> None:
    """Malformed, oversized and unknown-id requests get proper status codes; both servers stay healthy."""
    assert setup.swarm.supernode is not None
    target = setup.swarm.supernode.target
    big = 2 * MiB
    ok_url = setup.origin.url("ok.bin")
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 8 * MiB)]) as channel:
        sched = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        seed_pieces = peer_pb2_grpc.PeerServiceStub(channel)
        host = sched.RegisterHost(
            scheduler_pb2.RegisterHostRequest(
                host=scheduler_pb2.HostInfo(hostname="raw-client", ip="127.0.0.9", port=1, upload_slots=1)
            ),
            timeout=10,
        )
        host_id = host.host_id
        assert host_id

        def register(meta: common_pb2.UrlMeta, hid: str = host_id) -> object:
            return sched.RegisterTask(scheduler_pb2.RegisterTaskRequest(host_id=hid, url_meta=meta), timeout=30)

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        expect_code(invalid, lambda: register(common_pb2.UrlMeta(url="gopher://127.0.0.1/x")))
        expect_code(invalid, lambda: register(common_pb2.UrlMeta(url="not a url")))
        expect_code(invalid, lambda: register(common_pb2.UrlMeta(url=ok_url, digest="md5:zz")))
        expect_code(invalid, lambda: register(common_pb2.UrlMeta(url=ok_url + "?" + "a" * 100_000)))
        expect_code(
            invalid,
            lambda: register(common_pb2.UrlMeta(url=ok_url, headers={f"X-H{i}": "v" * 64 for i in range(5000)})),
        )
        expect_code(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            lambda: register(common_pb2.UrlMeta(url=ok_url, headers={"X-Big": "v" * big})),
        )
        not_found = grpc.StatusCode.NOT_FOUND
        expect_code(not_found, lambda: register(common_pb2.UrlMeta(url=ok_url), hid="no-such-host"))
        expect_code(not_found, lambda: sched.HeartbeatHost(scheduler_pb2.HeartbeatHostRequest(host_id="nope")))
        expect_code(not_found, lambda: sched.GetTask(scheduler_pb2.GetTaskRequest(task_id="no-such-task"), timeout=10))
        expect_code(
            not_found,
            lambda: sched.ReportPeerResult(scheduler_pb2.ReportPeerResultRequest(peer_id="ghost", success=True)),
        )
        expect_code(
            not_found,
            lambda: sched.SyncPieces(iter([scheduler_pb2.SyncPiecesRequest(peer_id="ghost", window=4)]), timeout=10),
        )
        expect_code(  # no access grant: refused before the task is looked up
            grpc.StatusCode.PERMISSION_DENIED,
            lambda: seed_pieces.DownloadPieces(
                peer_pb2.DownloadPiecesRequest(task_id="no-such-task", piece_numbers=[0]), timeout=10
            ),
        )
        real = sched.RegisterTask(
            scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=common_pb2.UrlMeta(url=ok_url)), timeout=30
        )
        expect_code(
            invalid,
            lambda: sched.SyncPieces(
                iter([scheduler_pb2.SyncPiecesRequest(peer_id=real.peer_id, window=10**9)]), timeout=10
            ),
        )
        expect_code(
            {not_found, invalid, grpc.StatusCode.OUT_OF_RANGE},
            lambda: seed_pieces.DownloadPieces(
                peer_pb2.DownloadPiecesRequest(
                    task_id=real.task.task_id, piece_numbers=[10**6], requester_host_id=host_id, grant=real.grant
                ),
                timeout=10,
            ),
        )
        garbage = channel.unary_unary(
            "/dandelion.scheduler.v1.SchedulerService/RegisterTask",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError):
            garbage(b"\xff\xff\xff\xff garbage", timeout=10)

    with grpc.insecure_channel(setup.peer.target) as channel:
        pieces = peer_pb2_grpc.PeerServiceStub(channel)
        expect_code(
            grpc.StatusCode.PERMISSION_DENIED,
            lambda: pieces.DownloadPieces(peer_pb2.DownloadPiecesRequest(task_id="no-such-task", piece_numbers=[0])),
        )
    with grpc.insecure_channel(setup.peer.daemon_endpoint) as channel:
        daemon = peer_pb2_grpc.DaemonServiceStub(channel)
        expect_code(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: daemon.Download(peer_pb2.DownloadRequest(url_meta=common_pb2.UrlMeta(url="ftp://x/y")), timeout=10),
        )
        expect_code(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: daemon.Download(
                peer_pb2.DownloadRequest(url_meta=common_pb2.UrlMeta(url=ok_url, digest="sha256:xyz")), timeout=10
            ),
        )

    assert grpc_healthy(target)
    assert grpc_healthy(setup.peer.target)
    assert grpc_healthy(setup.peer.daemon_endpoint)
    assert setup.swarm.supernode.process.alive() and setup.peer.process.alive()
    after = setup.swarm.dfget(ok_url, setup.swarm.base_dir / "after.bin", setup.peer)
    assert after.returncode == 0, after.stderr
