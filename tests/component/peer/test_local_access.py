"""Local callers get from the cache or the swarm only what the origin would give them: real processes (a supernode
with its seed peer, two dfdaemons, the one-shot peer), real dfget, an origin that wants a Bearer token on
/private/. The tester's two attacks (another host's cached private file without the token or with a wrong one, and a
private layer's digest under a URL that does not exist) are refused with one line; the token's holder still gets the
file from the swarm; public content is asked about once and then flows with the origin stopped; private content with
the origin stopped does not."""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fault_procs import leftovers, start_supernode
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup
from peer_procs import Daemon, dfget, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

TOKEN = "e2e-access-token-5b7f"
SECRET_SIZE = 3 * (4 << 20) + 11
PUBLIC_SIZE = (4 << 20) + 3
SECRET = "private/secret.bin"
PUBLIC = "pub.bin"


@dataclass
class Cluster:
    """An origin, a supernode (with its in-process seed peer) and dfdaemons on host A and host B."""

    origin: OriginServer
    supernode: str
    a: Daemon
    b: Daemon
    secret_sha: str
    work: Path

    def get(self, daemon: Daemon, path: str, name: str, *extra: str) -> tuple[int, str, Path]:
        """dfget path through daemon into work/out/name: (exit status, stderr, output path)."""
        out = self.work / "out" / name
        result = dfget(self.origin.url(path), "-o", str(out), "--daemon", daemon.endpoint, *extra)
        return result.returncode, result.stderr, out

    def heads(self, path: str) -> int:
        return int(self.origin.stats()["heads_by_path"].get("/" + path, 0))


def start_cluster(group: ProcessGroup, work: Path) -> Cluster:
    root = work / "origin"
    secret_sha = write_random_file(root / SECRET, SECRET_SIZE, seed=31)
    write_random_file(root / PUBLIC, PUBLIC_SIZE, seed=32)
    (work / "out").mkdir()
    origin = start_origin(group, root, token=TOKEN)
    supernode, _ = start_supernode(group, work, "sn")
    # Grants are not kept (TTL 0): every download of private content asks the origin, as one after the TTL would.
    a = start_daemon(group, work, "host-a", "127.0.0.91", supernode, "--access-grant-ttl", "0")
    b = start_daemon(group, work, "host-b", "127.0.0.92", supernode, "--access-grant-ttl", "0")
    return Cluster(origin, supernode, a, b, secret_sha, work)


@pytest.fixture(scope="module")
def cluster(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(module_process_group, tmp_path_factory.mktemp("access"))
    # Host A holds the private file as a task of its URL and as a task of its digest (a private layer's way).
    for name, extra in (("a-secret", ()), ("a-layer", ("--digest", f"sha256:{cluster.secret_sha}"))):
        status, stderr, out = cluster.get(cluster.a, SECRET, name, "--header", f"Authorization: Bearer {TOKEN}", *extra)
        assert status == 0, stderr + cluster.a.proc.tail()
        assert out.read_bytes() == (cluster.origin.root / SECRET).read_bytes()
    yield cluster


def assert_refused(status: int, stderr: str, out: Path, *needles: str) -> None:
    """Nonzero exit, one line naming every needle, no output file, no temp file."""
    assert status != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists() and leftovers(out.parent) == []


def test_another_hosts_private_file_needs_the_origins_yes(cluster: Cluster) -> None:
    sent = cluster.origin.bytes_served(SECRET)
    for name, extra in (("none", ()), ("wrong", ("--header", "Authorization: Bearer WRONG"))):
        status, stderr, out = cluster.get(cluster.b, SECRET, f"b-{name}", *extra)
        url = cluster.origin.url(SECRET)
        assert_refused(status, stderr, out, f"dfget: access refused: origin answered HTTP 401 Unauthorized for {url}")
    status, stderr, out = cluster.get(cluster.b, SECRET, "b-token", "--header", f"Authorization: Bearer {TOKEN}")
    assert status == 0, stderr + cluster.b.proc.tail()
    assert out.read_bytes() == (cluster.origin.root / SECRET).read_bytes()
    assert cluster.origin.bytes_served(SECRET) == sent, "host B got it from the swarm, not the origin"
    for daemon in (cluster.a, cluster.b):
        assert TOKEN not in daemon.proc.log() and "WRONG" not in daemon.proc.log()


def test_a_dfdaemon_without_its_check_gets_no_grant_from_the_supernode(
    cluster: Cluster, module_process_group: ProcessGroup
) -> None:
    """A dfdaemon started with --no-access-check (or modified software) asks the origin nothing for its caller, but
    the supernode does, with the registration's headers: without the token the registration is refused, and so is
    the private layer's digest under a URL that does not exist (the tester's two attacks); with the token the file
    comes from the swarm. (The control, both checks off: test_register_access.py, supernode --no-access-check.)"""
    c = start_daemon(module_process_group, cluster.work, "host-c", "127.0.0.93", cluster.supernode, "--no-access-check")
    sent = cluster.origin.bytes_served(SECRET)
    heads = cluster.heads(SECRET)
    url = cluster.origin.url(SECRET)
    status, stderr, out = cluster.get(c, SECRET, "c-none")
    assert_refused(status, stderr, out, f"dfget: access refused: origin answered HTTP 401 Unauthorized for {url}")
    assert f"url={url} failed: access refused: origin answered HTTP 401" in c.proc.log(), "the supernode's refusal"
    assert cluster.heads(SECRET) == heads + 1, "the supernode asked the origin (the private mark then stands)"
    digest = ("--digest", f"sha256:{cluster.secret_sha}", "--no-back-source")
    status, stderr, out = cluster.get(c, "does-not-exist", "c-nx", *digest)
    assert_refused(status, stderr, out, "access refused: origin answered HTTP 404 Not Found")
    status, stderr, out = cluster.get(c, SECRET, "c-token", "--header", f"Authorization: Bearer {TOKEN}")
    assert status == 0, stderr + c.proc.tail()
    assert out.read_bytes() == (cluster.origin.root / SECRET).read_bytes()
    assert cluster.origin.bytes_served(SECRET) == sent, "from the swarm"
    assert TOKEN not in c.proc.log()
    c.proc.stop()


def test_a_private_digest_under_another_url_is_refused(cluster: Cluster) -> None:
    digest = f"sha256:{cluster.secret_sha}"
    for daemon in (cluster.a, cluster.b):  # A holds the digest's task in its cache, B would have it from the swarm
        status, stderr, out = cluster.get(daemon, "does-not-exist", "nx", "--digest", digest, "--no-back-source")
        assert_refused(status, stderr, out, "access refused: origin answered HTTP 404 Not Found")
        # A URL anyone may read, but whose content is another: its length gives it away.
        status, stderr, out = cluster.get(daemon, PUBLIC, "other", "--digest", digest, "--no-back-source")
        assert_refused(status, stderr, out, f"serves {PUBLIC_SIZE} bytes, not the {SECRET_SIZE} bytes of {digest}")


def test_the_one_shot_peer_asks_too(cluster: Cluster) -> None:
    """dfget --supernode with no dfdaemon: an embedded peer joins the swarm, and asks the origin first."""
    nobody = f"unix:{cluster.work / 'nobody.sock'}"
    for name, extra in (("none", ()), ("token", ("--header", f"Authorization: Bearer {TOKEN}"))):
        out = cluster.work / "out" / f"oneshot-{name}"
        argv = (cluster.origin.url(SECRET), "-o", str(out), "--daemon", nobody, "--supernode", cluster.supernode)
        result = dfget(*argv, *extra)
        if name == "none":
            assert_refused(result.returncode, result.stderr, out, "HTTP 401 Unauthorized")
        else:
            assert result.returncode == 0, result.stderr
            assert out.read_bytes() == (cluster.origin.root / SECRET).read_bytes()


def test_added_latency_of_one_probe(cluster: Cluster) -> None:
    """The same cached file on host A: public (marked, no probe) against private (grant TTL 0: one HEAD each time)."""
    assert cluster.get(cluster.a, PUBLIC, "warm")[0] == 0
    took: dict[str, list[float]] = {"public": [], "private": []}
    for i in range(3):
        for kind, path, extra in (
            ("public", PUBLIC, ()),
            ("private", SECRET, ("--header", f"Authorization: Bearer {TOKEN}")),
        ):
            began = time.perf_counter()
            status, stderr, _ = cluster.get(cluster.a, path, f"lat-{kind}-{i}", *extra)
            took[kind].append(time.perf_counter() - began)
            assert status == 0, stderr
    public, private = (statistics.median(took[k]) for k in ("public", "private"))
    print(f"\ndfget of a cached file: public {public * 1e3:.0f} ms, private (one probe) {private * 1e3:.0f} ms")


def test_public_content_flows_without_its_origin_private_does_not(process_group: ProcessGroup, tmp_path: Path) -> None:
    cluster = start_cluster(process_group, tmp_path)
    for daemon, name in ((cluster.a, "a1"), (cluster.a, "a2"), (cluster.b, "b1")):
        status, stderr, _ = cluster.get(daemon, PUBLIC, name)
        assert status == 0, stderr
    # Each host asked once, anonymously, and the supernode once for both registrations (then public for it too);
    # A's second download, from its cache, asked nothing.
    assert cluster.heads(PUBLIC) == 3
    token = ("--header", f"Authorization: Bearer {TOKEN}")
    assert cluster.get(cluster.a, SECRET, "secret-a", *token)[0] == 0
    cluster.origin.process.stop()
    for daemon, name in ((cluster.a, "a3"), (cluster.b, "b2")):
        status, stderr, out = cluster.get(daemon, PUBLIC, name, "--no-back-source")
        assert status == 0, stderr + daemon.proc.tail()
        assert out.read_bytes() == (cluster.origin.root / PUBLIC).read_bytes()
    status, stderr, out = cluster.get(cluster.a, SECRET, "secret-a2", *token)
    assert_refused(status, stderr, out, f"origin unreachable: cannot check access to {cluster.origin.url(SECRET)}")
