"""Prometheus counters of a real swarm: bytes from the origin, from peers, served to peers; pieces; durations."""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path

from fixtures.metrics import metrics_text, samples
from fixtures.origin import start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port
from peer_procs import dfget, start_daemon

from dfcommon.pieces import piece_count, piece_size_for

SIZE = 9 * (1 << 20) + 17  # small content: pieces halved from the 4 MiB base
PIECES = piece_count(SIZE, piece_size_for(SIZE))


def scrape(address: str) -> dict[str, float]:
    """Sample name with labels -> value."""
    return samples(metrics_text(address))


def test_counters_follow_the_bytes(process_group: ProcessGroup, tmp_path: Path) -> None:
    write_random_file(tmp_path / "origin" / "f.bin", SIZE, seed=11)
    origin = start_origin(process_group, tmp_path / "origin")
    port, sn_metrics = free_port(), free_port()
    supernode = process_group.start(
        "supernode",
        [
            console_script("supernode"),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "sn"), "--advertise-ip", "127.0.0.1"),
            *("--metrics", f"127.0.0.1:{sn_metrics}"),
        ],
    )
    supernode.wait_for_tcp("127.0.0.1", port)
    metrics = [free_port(), free_port()]
    daemons = [
        start_daemon(
            process_group, tmp_path, f"m{i}", f"127.0.0.{41 + i}", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{m}"
        )
        for i, m in enumerate(metrics)
    ]
    for index, daemon in enumerate(daemons):
        out = tmp_path / f"out{index}"
        done = dfget(origin.url("f.bin"), "-o", str(out), "--daemon", daemon.endpoint)
        assert done.returncode == 0, done.stderr

    seed = scrape(f"127.0.0.1:{sn_metrics}")
    first = scrape(f"127.0.0.1:{metrics[0]}")
    # The dfdaemon observes a task's duration as it reports the task done, just after dfget has its last byte.
    duration = 'dandelion_task_duration_seconds_count{component="dfdaemon",result="ok"}'
    deadline = time.monotonic() + 10
    while duration not in (second := scrape(f"127.0.0.1:{metrics[1]}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seed['dandelion_origin_bytes_total{component="supernode"}'] == SIZE
    assert seed['dandelion_piece_reports_total{component="supernode",result="ok"}'] >= 6
    assert seed['dandelion_active_peers{component="supernode"}'] >= 2
    assert first['dandelion_peer_bytes_received_total{component="dfdaemon"}'] == SIZE  # from the seed
    assert second['dandelion_peer_bytes_received_total{component="dfdaemon"}'] == SIZE
    served = first.get('dandelion_peer_bytes_served_total{component="dfdaemon"}', 0.0)
    from_seed = seed['dandelion_peer_bytes_served_total{component="supernode"}']
    assert served + from_seed == 2 * SIZE  # every byte either peers or the seed served
    assert first['dandelion_pieces_total{component="dfdaemon",result="ok"}'] == PIECES
    assert second[duration] == 1
    assert 'dandelion_origin_bytes_total{component="dfdaemon"}' not in second  # no back-to-source
    # Each binary its own families, every sample labelled with its component, the version in build_info.
    version = metadata.version("dandelion")
    for scraped, component in ((seed, "supernode"), (first, "dfdaemon"), (second, "dfdaemon")):
        assert scraped[f'dandelion_build_info{{component="{component}",version="{version}"}}'] == 1
        assert all(f'component="{component}"' in name for name in scraped), scraped
    assert not any(
        name.startswith(("dandelion_peer_bytes_received", "dandelion_mirror_", "dandelion_cache_")) for name in seed
    )
    assert not any(
        name.startswith(("dandelion_active_hosts", "dandelion_active_peers", "dandelion_piece_reports"))
        for name in first
    )
    used = first['dandelion_cache_used_bytes{component="dfdaemon"}']
    assert SIZE <= used < SIZE + (64 << 10)  # one complete task, in disk blocks
    assert first['dandelion_cache_quota_bytes{component="dfdaemon"}'] == 20 * 1024**3
    assert first['dandelion_active_tasks{component="dfdaemon"}'] == 1
