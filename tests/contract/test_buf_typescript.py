"""buf.gen.yaml makes a usable TypeScript client: buf generates it with protoc-gen-es, tsc compiles it (strict),
and Node.js exchanges encoded messages with Python's generated code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).parent / "node"
BIN = NODE_DIR / "node_modules" / ".bin"


def es_template(out: Path) -> dict[str, Any]:
    """buf.gen.yaml with only its TypeScript plugin, pointed at the test's protoc-gen-es and output folder."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "buf.gen.yaml").read_text())
    plugins = [p for p in config["plugins"] if p.get("local") == "protoc-gen-es"]
    assert len(plugins) == 1, config["plugins"]
    plugins[0] = {**plugins[0], "local": str(BIN / "protoc-gen-es"), "out": str(out)}
    inputs = [{"directory": str(ROOT / i["directory"])} for i in config["inputs"]]
    return {**config, "inputs": inputs, "plugins": plugins}


def run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{argv[0]}: {done.stdout}{done.stderr}"
    return done.stdout


def test_typescript_client_from_buf_gen_yaml(tmp_path: Path) -> None:
    missing = [name for name in ("buf", "protoc-gen-es", "tsc") if not (BIN / name).exists()]
    if missing:
        pytest.skip(f"run `npm ci` in {NODE_DIR} ({', '.join(missing)} missing)")
    (tmp_path / "node_modules").symlink_to(NODE_DIR / "node_modules")
    template = tmp_path / "buf.gen.yaml"
    template.write_text(yaml.safe_dump(es_template(tmp_path / "gen")))
    run([str(BIN / "buf"), "generate", "--template", str(template)], ROOT)
    assert (tmp_path / "gen" / "dandelion" / "scheduler" / "v1" / "scheduler_pb.ts").is_file()
    (tmp_path / "check.ts").write_text((NODE_DIR / "buf_ts_check.ts").read_text())
    tsc = [str(BIN / "tsc"), "--strict", "--module", "commonjs", "--target", "es2022", "--types", "node"]
    run([*tsc, "--outDir", str(tmp_path / "out"), str(tmp_path / "check.ts")], tmp_path)

    from_python = peer_pb2.DownloadPiecesRequest(task_id="abc", piece_numbers=[1, 7], requester_peer_id="me")
    out = run(["node", str(tmp_path / "out" / "check.js"), from_python.SerializeToString().hex()], tmp_path)
    seen = json.loads(out)
    assert seen["parsed"] == {"taskId": "abc", "pieceNumbers": [1, 7], "requesterPeerId": "me"}
    request = peer_pb2.DownloadPiecesRequest(task_id="t1", piece_numbers=[0, 2, 5], requester_peer_id="p1")
    assert bytes.fromhex(seen["request"]) == request.SerializeToString()
    meta = common_pb2.UrlMeta(url="https://h/x", digest="sha256:00", filtered_query_params=["sig"], range="0-9")
    assert common_pb2.UrlMeta.FromString(bytes.fromhex(seen["urlMeta"])) == meta
    assert {"downloadPieces", "streamTask"} <= set(seen["peerMethods"])
    assert {"registerHost", "registerTask", "syncPieces", "getTask", "listTasks"} <= set(seen["schedulerMethods"])
    assert seen["downloadPiecesKind"] == "server_streaming"
