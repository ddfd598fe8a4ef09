"""Shared pytest fixtures: process groups that always stop what they start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.processes import ProcessGroup


def pytest_addoption(parser: pytest.Parser) -> None:
    """--soak-seconds: length of the chaos soak's fault phase (same as DANDELION_SOAK_SECONDS)."""
    parser.addoption("--soak-seconds", type=float, default=None, help="length of the soak's fault phase")


def pytest_configure(config: pytest.Config) -> None:
    """Hand --soak-seconds to the soak through its environment variable."""
    seconds = config.getoption("--soak-seconds")
    if seconds is not None:
        os.environ["DANDELION_SOAK_SECONDS"] = str(seconds)


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes for one test, logging under tmp_path/logs, stopped by PID at teardown."""
    group = ProcessGroup(tmp_path / "logs")
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="module")
def module_process_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessGroup]:
    """Processes shared by one test module, stopped by PID after its last test."""
    group = ProcessGroup(tmp_path_factory.mktemp("logs"))
    try:
        yield group
    finally:
        group.stop_all()
