"""What a full cache disk looks like to clients, with real processes: the disk filling exactly when the finished
content's metadata is written fails dfget with the cause and leaves no task behind; a registry mirror asked for a
blob that does not fit its cache disk answers 507 with a registry error naming the cause (not 429: docker would
retry forever), and the daemon goes on serving."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import httpx
import pytest
from fault_procs import leftovers, start_supernode, tmpfs
from fixtures.images import MiB, build_and_push
from fixtures.origin import start_origin, write_random_file
from fixtures.processes import ProcessGroup, free_port
from fixtures.registry import run_registry
from peer_procs import dfget, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

PAGE = 4096  # tmpfs allocates whole pages
LENGTH = 3 * MiB


def free(directory: Path) -> int:
    info = os.statvfs(directory)
    return info.f_bavail * info.f_frsize


def test_disk_full_when_the_metadata_is_written_fails_cleanly(process_group: ProcessGroup, tmp_path: Path) -> None:
    """Room for the content, its piece bitmap and its first metadata, not one page more: every piece is stored
    and verified, then writing the metadata that marks it complete fails. dfget gets one line naming the cause
    and the cache directory; nothing of the task stays (it is never served as complete); with room again the
    download works."""
    origin_root = tmp_path / "origin"
    origin_root.mkdir()
    write_random_file(origin_root / "f.bin", LENGTH, seed=77)
    origin = start_origin(process_group, origin_root)
    supernode, _ = start_supernode(process_group, tmp_path, "sn")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with tmpfs(tmp_path / "peer", "8m"):
        daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.76", supernode)
        # data pages + the bitmap's page + meta.json's page (written when the task is created)
        room = LENGTH + 2 * PAGE
        filler = daemon.data_dir / "filler"
        filler.write_bytes(b"\0" * (free(daemon.data_dir) - room))
        assert free(daemon.data_dir) == room

        result = dfget(origin.url("f.bin"), "-o", str(out_dir / "f.bin"), "--daemon", daemon.endpoint, timeout=60)
        assert result.returncode != 0, daemon.proc.tail()
        assert result.stderr.strip().splitlines() == [
            f"dfget: no space left on device in the cache directory {daemon.data_dir}"
        ], result.stderr
        # (no "needed N bytes": the write that failed was the metadata's, not the content's)
        assert not (out_dir / "f.bin").exists() and leftovers(out_dir) == []
        assert list((daemon.data_dir / "tasks").iterdir()) == []  # no task, complete or not, was kept
        assert daemon.proc.popen.poll() is None

        filler.unlink()
        again = dfget(origin.url("f.bin"), "-o", str(out_dir / "f.bin"), "--daemon", daemon.endpoint, timeout=60)
        assert again.returncode == 0, again.stderr + daemon.proc.tail()
        assert (out_dir / "f.bin").read_bytes() == (origin_root / "f.bin").read_bytes()
        assert "served from the local cache" not in daemon.proc.log()  # downloaded again, not the failed copy
        daemon.proc.stop()


def test_mirror_blob_larger_than_the_cache_disk_gets_507_naming_the_cause(
    process_group: ProcessGroup, tmp_path: Path
) -> None:
    """A layer bigger than the mirror's cache disk: HTTP 507 with a registry error JSON naming the full cache
    directory, at once; the smaller layer and the manifest are served afterwards by the same daemon."""
    with run_registry(tmp_path / "registry") as registry:
        image = build_and_push(tmp_path / "image", registry.addr, "dandelion/full", (300_000, 10 * MiB))
        supernode, _ = start_supernode(process_group, tmp_path, "sn")
        mirror_ip = "127.0.0.77"
        mirror_port = free_port(mirror_ip)
        with tmpfs(tmp_path / "peer", "6m"):
            daemon = start_daemon(
                process_group,
                tmp_path,
                "peer",
                "127.0.0.77",
                supernode,
                *("--mirror", f"{mirror_ip}:{mirror_port}", "--registry", registry.url, "--no-prefetch"),
            )
            daemon.proc.wait_for_tcp(mirror_ip, mirror_port, timeout=30)
            base = f"http://{mirror_ip}:{mirror_port}/v2/{image.repository}"
            small, big = image.layer_digests
            with httpx.Client(timeout=60) as client:
                refused = client.get(f"{base}/blobs/{big}")
                assert refused.status_code == 507, refused.text
                assert refused.headers["content-type"].startswith("application/json")
                (entry,) = refused.json()["errors"]
                assert entry["code"] == "UNAVAILABLE"
                assert f"no space left on device in the cache directory {daemon.data_dir} (needed " in entry["message"]
                assert "Error" not in entry["message"]  # no Python class name

                served = client.get(f"{base}/blobs/{small}")
                assert served.status_code == 200, served.text
                assert "sha256:" + hashlib.sha256(served.content).hexdigest() == small
                manifest = client.get(f"{base}/manifests/{image.tag}", headers={"Accept": image.manifest_media_type})
                assert manifest.status_code == 200, manifest.text
            assert daemon.proc.popen.poll() is None
            assert len(list((daemon.data_dir / "tasks").iterdir())) == 1  # the small layer only
            daemon.proc.stop()
