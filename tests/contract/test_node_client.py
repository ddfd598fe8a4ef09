"""The .proto files are a usable contract: Node.js (@grpc/grpc-js + proto-loader) drives a real supernode."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.origin import start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port

from dfcommon.pieces import piece_count, piece_size_for

NODE_DIR = Path(__file__).parent / "node"
SIZE = 9 * (1 << 20) + 123  # small content: pieces halved from the 4 MiB base, the last one short
PIECE = piece_size_for(SIZE)


def node_ready() -> str | None:
    """Why the Node.js client cannot run, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        return f"run `npm ci` in {NODE_DIR}"
    return None


def test_node_client_registers_host_and_task_and_reads_it_back_with_its_grant(
    tmp_path: Path, process_group: ProcessGroup
) -> None:
    reason = node_ready()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "origin"
    root.mkdir()
    write_random_file(root / "blob.bin", SIZE, seed=7)
    origin = start_origin(process_group, root)
    port = free_port()
    supernode = process_group.start(
        "supernode",
        [
            console_script("supernode"),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "supernode")),
            *("--advertise-ip", "127.0.0.1"),
        ],
    )
    supernode.wait_for_tcp("127.0.0.1", port)

    result = subprocess.run(
        ["node", str(NODE_DIR / "register_and_read.js"), f"127.0.0.1:{port}", origin.url("blob.bin")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + supernode.tail()
    read = json.loads(result.stdout)
    assert read["url"] == origin.url("blob.bin")
    assert read["content_length"] == SIZE
    assert read["piece_size"] == PIECE
    assert read["piece_count"] == piece_count(SIZE, PIECE)
    assert read["peer_id"] in {p["peer_id"] for p in read["peers"]}
    assert any(p["is_seed"] for p in read["peers"])
    assert "node-client" in read["hostnames"]
    assert read["unknown_task_status"] == "NOT_FOUND"
    # The access grant RegisterTask gave opens the seed peer's PeerService; without it nothing comes.
    assert len(read["grant_key_id"]) == 16
    assert read["granted"] == {"bytes": SIZE % PIECE, "status": "OK"}  # the last piece: 123 bytes
    assert read["ungranted"] == {"bytes": 0, "status": "PERMISSION_DENIED"}
    assert supernode.alive
