"""Default locations shared by dfdaemon and dfget."""

from __future__ import annotations

import os
from pathlib import Path


def default_daemon_endpoint() -> str:
    """The local DaemonService endpoint: /run/dandelion for root, else the user's runtime dir."""
    if os.geteuid() == 0:
        base = Path("/run/dandelion")
    elif runtime := os.environ.get("XDG_RUNTIME_DIR"):
        base = Path(runtime) / "dandelion"
    else:
        base = Path(f"/tmp/dandelion-{os.getuid()}")
    return f"unix:{base / 'dfdaemon.sock'}"


def endpoint_socket_path(endpoint: str) -> Path | None:
    """The filesystem path of a "unix:PATH" endpoint, None for HOST:PORT."""
    if endpoint.startswith("unix:"):
        return Path(endpoint[len("unix:") :].removeprefix("//"))
    return None
