"""`dfdaemon client-config`: print or write a runtime's configuration for this node's mirror (mirror.clientconfig)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dfcommon.configfile import load_config_file
from dfcommon.errors import DandelionError, InvalidArgument
from dfcommon.fetchpolicy import split_entries
from mirror.clientconfig import (
    RUNTIMES,
    ClientFile,
    Routed,
    containerd_config,
    default_name,
    docker_config,
    notes,
    podman_config,
    route,
)
from mirror.clientconfig_undo import undo_containerd, undo_docker, undo_podman
from mirror.config import DEFAULT_LISTEN, OFF, MirrorConfig
from registryclient.config import DEFAULT_REGISTRY
from registryclient.registries import RegistryMap, registry_name

EXAMPLES = """examples:
  dfdaemon client-config --runtime containerd --write /etc/containerd/certs.d      # docker.io + mapped names
  dfdaemon client-config --runtime podman --config /etc/dandelion/dfdaemon.yaml ghcr.io 127.0.0.1:5000
  dfdaemon client-config --runtime docker --mirror 127.0.0.1:65001 --write /etc/docker   # merged into daemon.json
  dfdaemon client-config --runtime containerd --undo --write /etc/containerd/certs.d   # remove what it wrote

The node's mirror address, default registry and --registry-map come from the dfdaemon's config file (--config or
DFDAEMON_CONFIG) and DFDAEMON_MIRROR / DFDAEMON_REGISTRY / DFDAEMON_REGISTRY_MAP; --mirror overrides the address.
"""


def build_parser() -> argparse.ArgumentParser:
    """The client-config command line."""
    parser = argparse.ArgumentParser(
        prog="dfdaemon client-config",
        description="Print (or write) the configuration that makes docker, containerd or podman pull through this "
        "node's registry mirror.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runtime", required=True, choices=RUNTIMES, help="the container runtime to configure")
    parser.add_argument("--mirror", metavar="HOST:PORT", help="the mirror's address (default: the node's)")
    parser.add_argument("--config", metavar="FILE", default=None, help="the dfdaemon's config file to read")
    parser.add_argument(
        "--write",
        metavar="DIR",
        type=Path,
        default=None,
        help="write the files under DIR (docker: DIR/daemon.json, merged into an existing one; containerd: "
        "DIR/NAME/hosts.toml; podman: DIR/registries.conf) instead of printing them",
    )
    parser.add_argument(
        "--undo",
        action="store_true",
        help="take back what --write DIR wrote: remove the hosts.toml files and registries.conf that carry "
        "client-config's header (only those of the NAMEs given, if any), take the mirror out of daemon.json",
    )
    parser.add_argument(
        "names",
        metavar="NAME",
        nargs="*",
        help="registries to route through the mirror, as in image names (default: docker.io, the --registry's "
        "host and every --registry-map NAME)",
    )
    return parser


def node_settings(config_path: str | None, environ: dict[str, str]) -> tuple[str, MirrorConfig]:
    """The node's mirror address and upstream settings, from its config file and environment."""
    path = config_path or environ.get("DFDAEMON_CONFIG")
    values = load_config_file(Path(path)) if path else {}

    def setting(key: str, default: object) -> object:
        env = environ.get("DFDAEMON_" + key.upper().replace("-", "_"))
        return env if env is not None else values.get(key, default)

    listen = str(setting("mirror", DEFAULT_LISTEN)).strip()
    mapping = setting("registry-map", [])
    if isinstance(mapping, dict):
        mapping = [f"{k}={v}" for k, v in mapping.items()]
    entries = split_entries(mapping if isinstance(mapping, list) else [str(mapping)])
    return listen, MirrorConfig(registry=str(setting("registry", DEFAULT_REGISTRY)).strip(), registry_map=entries)


def files_for(runtime: str, mirror: str, routes: Sequence[Routed], existing: Path | None) -> list[ClientFile]:
    """The runtime's files (docker's daemon.json merged into existing when it exists)."""
    if runtime == "docker":
        current: dict[str, object] | None = None
        if existing is not None and existing.exists():
            try:
                loaded = json.loads(existing.read_text())
            except (OSError, ValueError) as exc:
                raise InvalidArgument(f"cannot merge into {existing}: {exc}") from None
            if not isinstance(loaded, dict):
                raise InvalidArgument(f"cannot merge into {existing}: not a JSON object")
            current = loaded
        return [docker_config(mirror, current)]
    if runtime == "containerd":
        return containerd_config(mirror, [r.name for r in routes])
    return [podman_config(mirror, routes)]


def client_address(mirror: str) -> str:
    """The address clients on this node reach the mirror at (a mirror on every address: loopback)."""
    if mirror.lower() == OFF:
        raise InvalidArgument("the node's mirror is off (--mirror off): nothing to point clients at")
    host, port = MirrorConfig(listen=mirror).hostport()
    if host in ("0.0.0.0", "::"):
        return f"127.0.0.1:{port}" if host == "0.0.0.0" else f"[::1]:{port}"
    return mirror


def undo(runtime: str, root: Path, mirror: str, names: Sequence[str]) -> int:
    """Remove what --write root wrote for runtime (mirror: docker's entry to take out); reports on stderr."""
    if runtime == "containerd":
        removed = undo_containerd(root, [registry_name(n) for n in split_entries(names)])
    elif runtime == "podman":
        removed = undo_podman(root)
    else:
        removed = undo_docker(root, client_address(mirror))
    for path in removed:
        print(f"{'updated' if runtime == 'docker' else 'removed'} {path}", file=sys.stderr)
    if not removed:
        print(f"nothing of client-config's to undo under {root}", file=sys.stderr)
    return 0


def run(argv: Sequence[str], environ: dict[str, str]) -> int:
    """Print or write the files (or undo them); notes on stderr. Returns the exit status."""
    args = build_parser().parse_args(list(argv))
    listen, mconfig = node_settings(args.config, environ)
    if args.undo:
        if args.write is None:
            raise InvalidArgument("--undo needs --write DIR: the directory client-config wrote to")
        return undo(args.runtime, args.write, (args.mirror or listen).strip(), args.names)
    mirror = client_address((args.mirror or listen).strip())
    registries: RegistryMap = mconfig.registries()
    names = [registry_name(n) for n in split_entries(args.names)] or [
        default_name(registries),
        *([] if default_name(registries) == "docker.io" else ["docker.io"]),
        *sorted(registries.mapped),
    ]
    routes = [route(name, registries) for name in dict.fromkeys(names)]
    files = files_for(args.runtime, mirror, routes, args.write / "daemon.json" if args.write else None)
    for note in notes(args.runtime, mirror, routes, registries):
        print(f"note: {note}", file=sys.stderr)
    for file in files:
        if args.write is None:
            if len(files) > 1:
                print(f"# ---- {file.path}")
            print(file.text, end="")
            continue
        target = args.write / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.text)
        print(f"wrote {target}", file=sys.stderr)
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point of `dfdaemon client-config`; bad input is one line and exit status 2."""
    try:
        return run(argv, dict(os.environ))
    except DandelionError as exc:
        print(f"dfdaemon client-config: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"dfdaemon client-config: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1
