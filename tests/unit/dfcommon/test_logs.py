"""Log lines: text and JSON with an ISO 8601 time and offset, DANDELION_LOG_* defaults, quieted noise."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime

import pytest

from dfcommon.errors import InvalidArgument
from dfcommon.logs import setup_logging
from dfdaemon import flags as daemon
from peer import dfget
from supernode.flags import build_parser as supernode_parser
from supernode.flags import from_args

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_line_has_time_with_offset(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("dfdaemon", "info", "text")
    logging.getLogger("peer.x").info("task=%s done", "abc")
    line = capsys.readouterr().err.strip()
    stamp, level, rest = line.split(" ", 2)
    assert ISO_WITH_OFFSET.match(stamp) and datetime.fromisoformat(stamp).tzinfo is not None
    assert (level, rest) == ("INFO", "dfdaemon: task=abc done")


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("supernode", "debug", "json")
    logging.getLogger("supernode.swarm").debug("peer=%s joined", "p1")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("supernode.app").exception("it broke")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert ISO_WITH_OFFSET.match(first["time"])
    assert {k: first[k] for k in ("level", "component", "logger", "message")} == {
        "level": "debug",
        "component": "supernode",
        "logger": "supernode.swarm",
        "message": "peer=p1 joined",
    }
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_environment_sets_every_commands_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANDELION_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("DANDELION_LOG_FORMAT", "json")
    sn = from_args(supernode_parser().parse_args(["--data-dir", "d"]))
    assert (sn.log_level, sn.log_format) == ("debug", "json")
    dd = daemon.build_parser().parse_args(["--supernode", "a:1", "--listen", "127.0.0.1", "--data-dir", "d"])
    assert (dd.log_level, dd.log_format) == ("debug", "json")
    dg = dfget.build_parser().parse_args(["http://x/y", "-o", "y"])
    assert (dg.log_level, dg.log_format) == ("debug", "json")
    flagged = dfget.build_parser().parse_args(["http://x/y", "-o", "y", "--log-level", "error"])
    assert flagged.log_level == "error"  # a flag wins


def test_bad_environment_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANDELION_LOG_LEVEL", "loud")
    with pytest.raises(InvalidArgument, match="DANDELION_LOG_LEVEL"):
        ns = daemon.build_parser().parse_args(["--supernode", "a:1", "--listen", "127.0.0.1", "--data-dir", "d"])
        setup_logging("dfdaemon", ns.log_level, ns.log_format)
    with pytest.raises(InvalidArgument, match="log level"):
        from_args(supernode_parser().parse_args(["--data-dir", "d"]))


@pytest.mark.parametrize("level", ["info", "debug"])
def test_noise_is_quiet(level: str, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("dfdaemon", level)
    logging.getLogger("grpc._cython.cygrpc").debug("[_cygrpc] Loaded running loop")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("uvicorn.error").warning("something else")
    err = capsys.readouterr().err
    assert "Loaded running loop" not in err
    assert "WARNING dfdaemon: something else" in err
    probe = [line for line in err.splitlines() if "Invalid HTTP request" in line]
    assert probe == ([] if level == "info" else [probe[0]]) and all(" DEBUG " in line for line in probe)
