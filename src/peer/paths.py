"""Default locations shared by dfdaemon and dfget."""

from __future__ import annotations

import os
from pathlib import Path

from dfcommon.errors import InvalidArgument
from dfcommon.sizes import hostport, parse_hostport


def default_daemon_endpoint() -> str:
    """The local DaemonService endpoint: /run/dandelion for root, else the user's runtime dir."""
    if os.geteuid() == 0:
        base = Path("/run/dandelion")
    elif runtime := os.environ.get("XDG_RUNTIME_DIR"):
        base = Path(runtime) / "dandelion"
    else:
        base = Path(f"/tmp/dandelion-{os.getuid()}")
    return f"unix:{base / 'dfdaemon.sock'}"


def quickstart_daemon_endpoint() -> str:
    """The socket scripts/quickstart.sh gives its dfdaemon: $DANDELION_HOME/run (~/.local/share/dandelion/run)."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    home = os.environ.get("DANDELION_HOME") or str(Path(data) / "dandelion")
    return f"unix:{Path(home) / 'run' / 'dfdaemon.sock'}"


def daemon_endpoints() -> list[str]:
    """Where dfget looks for a dfdaemon without --daemon, in order: the default socket, then the quick start's."""
    return list(dict.fromkeys([default_daemon_endpoint(), quickstart_daemon_endpoint()]))


def endpoint_socket_path(endpoint: str) -> Path | None:
    """The filesystem path of a "unix:PATH" endpoint, None for HOST:PORT."""
    if endpoint.startswith("unix:"):
        return Path(endpoint[len("unix:") :].removeprefix("//"))
    return None


def validate_endpoint(text: str) -> str:
    """ "unix:PATH" or "HOST:PORT"."""
    if text.startswith("unix:"):
        if len(text) <= len("unix:"):
            raise InvalidArgument(f"invalid endpoint {text!r}: want unix:PATH or HOST:PORT")
        return text
    return hostport(*parse_hostport(text))
