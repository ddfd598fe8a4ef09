"""The supernode's live web view in a real headless Chromium, during a real swarm download (origin, supernode,
three dfdaemons, dfget), and the same view's JSON as dfinspect's piece maps. Screenshots: tmp dir of the test."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.browser import Page, chromium, chromium_binary
from fixtures.origin import sha256_file, start_origin, write_random_file
from fixtures.processes import ProcessGroup, free_port
from p2p_cluster import Swarm, finish

from dfcommon.pieces import piece_count, piece_size_for

pytestmark = pytest.mark.e2e

MiB = 1 << 20
SIZE = 24 * MiB
PIECES = piece_count(SIZE, piece_size_for(SIZE, MiB))  # --piece-size 1MiB
ORIGIN_RATE = 4 * MiB  # bytes/s: the download takes about 6 s, long enough to see it under way
PEER_IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]

# The page's state for the task of URL, read from its DOM.
TASK_STATE = """
(() => {
  const section = [...document.querySelectorAll("section.task")]
    .find((s) => s.querySelector(".url").textContent === URL);
  if (!section) return null;
  const hosts = [...document.querySelectorAll("#hosts tbody tr")].map((r) => ({
    id: r.dataset.hostId, recv: r.querySelector(".recv").textContent, send: r.querySelector(".send").textContent }));
  return {
    taskId: section.dataset.taskId,
    share: Number(section.querySelector(".origin-share").dataset.share),
    updates: Number(document.body.dataset.updates || 0),
    hosts,
    peers: [...section.querySelectorAll("tr.peer")].map((r) => ({
      id: r.dataset.peerId, seed: r.classList.contains("seed"), pieces: Number(r.dataset.pieces),
      progress: r.querySelector(".progress").textContent,
      held: r.querySelectorAll(".strip > i.h").length, cells: r.querySelectorAll(".strip > i").length })),
  };
})()
"""


def task_state(url: str) -> str:
    """TASK_STATE for one URL."""
    return TASK_STATE.replace("URL", json.dumps(url))


@pytest.fixture
def swarm(process_group: ProcessGroup, tmp_path: Path) -> Iterator[tuple[Swarm, int]]:
    """A supernode with --web and three dfdaemons; the web view's port."""
    web_port = free_port()
    swarm = Swarm(process_group, tmp_path)
    swarm.start_supernode(["--web", f"127.0.0.1:{web_port}", "--piece-size", "1MiB"])
    for ip in PEER_IPS:
        swarm.start_peer(ip)
    swarm.wait_hosts(len(PEER_IPS))
    yield swarm, web_port


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_shows_the_swarm_download_live(
    swarm: tuple[Swarm, int], process_group: ProcessGroup, tmp_path: Path
) -> None:
    """Loaded before the download, the page shows the task appear, its three peers part-way with their piece strips
    and a host receiving, then, without a reload, every peer complete and the origin read for a quarter of the
    bytes received (the seed once, three peers from the swarm)."""
    cluster, web_port = swarm
    content = tmp_path / "content"
    digest = write_random_file(content / "layer.bin", SIZE, seed=16)
    origin = start_origin(process_group, content, rate=ORIGIN_RATE)
    url = origin.url("layer.bin")
    with chromium(process_group, tmp_path) as page:
        watch_download(cluster, page, url, digest, web_port, tmp_path)


def watch_download(cluster: Swarm, page: Page, url: str, digest: str, web_port: int, tmp_path: Path) -> None:
    """The page before, during and after three dfgets of url."""
    page.navigate(f"http://127.0.0.1:{web_port}/")
    page.wait_for("Number(document.body.dataset.updates || 0) >= 1", "its first update")
    assert page.evaluate("document.querySelectorAll('#hosts tbody tr').length") == 1 + len(PEER_IPS)

    outputs = [tmp_path / f"out-{i}.bin" for i in range(len(PEER_IPS))]
    runs = [
        cluster.dfget_start(url, out, peer, "--quiet")
        for out, peer in zip(outputs, cluster.peers.values(), strict=True)
    ]
    under_way = (
        f"(() => {{ const t = {task_state(url)}; return t && t.peers.filter((p) => !p.seed).length === 3"
        f" && t.peers.some((p) => !p.seed && p.pieces > 0 && p.pieces < {PIECES})"
        " && t.hosts.some((h) => h.recv !== '0 B/s') ? t : null; })()"
    )
    mid = page.wait_for(under_way, "three peers part-way", timeout=30)
    page.screenshot(tmp_path / "web-view-during.png")
    partial = [p for p in mid["peers"] if not p["seed"] and 0 < p["pieces"] < PIECES]
    for peer in partial:  # the strip shows as many held cells as the peer holds pieces (one cell per piece)
        assert peer["cells"] == PIECES and peer["held"] == peer["pieces"], peer
        assert peer["progress"].startswith(f"{peer['pieces']}/{PIECES} ")
    # dfinspect shows the same swarm, with a strip consistent with each peer's count
    shown = subprocess.run(
        [sys.executable, "-m", "dfinspect", "--supernode", cluster.supernode.target, "--json", "task", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    for peer in json.loads(shown.stdout)["peers"]:
        assert len(peer["piece_map"]) == PIECES and peer["piece_map"].count("#") == peer["piece_count"], peer

    for run, out in zip(runs, outputs, strict=True):
        status, _, err = finish(run, timeout=60)
        assert status == 0, err
        assert sha256_file(out) == digest
    done = (
        f"(() => {{ const t = {task_state(url)}; return t && t.peers.filter((p) => !p.seed && p.pieces === {PIECES}"
        f" && p.held === {PIECES}).length === 3 && t.share > 0 ? t : null; }})()"
    )
    final = page.wait_for(done, "every peer complete", timeout=15)
    page.screenshot(tmp_path / "web-view-done.png")
    assert final["updates"] > mid["updates"]  # the same page load, updated live
    assert abs(final["share"] - 0.25) < 0.02, final["share"]
    swarm_ids = {p.peer_id for p in cluster.get_task(final["taskId"]).peers}
    assert {p["id"] for p in final["peers"]} == swarm_ids
