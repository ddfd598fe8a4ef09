"""`dfinspect`: the supernode's tasks, their peers and piece maps, and its hosts, for people (or --json)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from dfcommon.errors import DandelionError
from dfcommon.piecemap import DEFAULT_WIDTH
from dfcommon.sizes import parse_hostport
from dfcommon.tls import TLS_FLAGS, add_tls_arguments, tls_from_args
from dfcommon.version import add_version_flag
from dfinspect import render
from dfinspect.client import InspectError, SupernodeClient, match_hosts

DEFAULT_SUPERNODE = "127.0.0.1:8002"
ENV_SUPERNODE = "DFINSPECT_SUPERNODE"
EXAMPLES = f"""examples:
  dfinspect tasks                                   # every task: state, seed's pieces, peers, size, URL
  dfinspect task 3f2a9c1b0d4e                       # one task (id, any unique prefix, or its URL) and its peers
  dfinspect task http://origin/big.bin --json       # the same as JSON
  dfinspect hosts                                   # registered hosts
  dfinspect --supernode 10.0.0.5:8002 --tls-cert admin.pem --tls-key admin-key.pem --tls-ca ca.pem tasks

Piece maps: one character per piece, or per run of pieces when there are more than --width:
  # all held, + at least half, - some, . none.
The supernode answers loopback callers, or with TLS admin certificates, unless it runs with --open-inspection.
--supernode defaults to ${ENV_SUPERNODE}, else {DEFAULT_SUPERNODE}.
"""


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dfinspect: error: {message}\n")


def _add_common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Flags every sub-command takes, before or after its name (suppress: no defaults, the main parser's win)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--supernode",
        default=default(os.environ.get(ENV_SUPERNODE, DEFAULT_SUPERNODE)),
        help=f"supernode HOST:PORT (default ${ENV_SUPERNODE} or {DEFAULT_SUPERNODE})",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="print JSON")
    parser.add_argument("--timeout", type=float, default=default(10.0), help="seconds per call (default 10)")
    parser.add_argument(
        "--width", type=int, default=default(DEFAULT_WIDTH), help=f"piece map characters (default {DEFAULT_WIDTH})"
    )
    if not suppress:
        add_tls_arguments(parser, "the calls to the supernode (give an admin certificate)")
        return
    for flag in (*TLS_FLAGS, "--tls-server-name"):
        parser.add_argument(
            flag, default=argparse.SUPPRESS, metavar="PEM" if flag in TLS_FLAGS else "NAME", help="as above"
        )


def build_parser() -> argparse.ArgumentParser:
    """The dfinspect command line."""
    parser = _OneLineParser(
        prog="dfinspect",
        description="Inspect a Dandelion supernode: its tasks, their peers and piece maps, its hosts.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_flag(parser)
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{tasks,task,hosts}")
    tasks = commands.add_parser("tasks", help="list every task")
    task = commands.add_parser("task", help="one task with its peers and their piece maps")
    task.add_argument("task", metavar="ID|PREFIX|URL", help="a task id, a unique prefix of one, or the task's URL")
    hosts = commands.add_parser("hosts", help="list the registered hosts")
    hosts.add_argument("host", nargs="?", default="", metavar="ID|PREFIX|NAME|IP", help="only these hosts")
    for sub in (tasks, task, hosts):
        _add_common(sub, suppress=True)
    return parser


def run(ns: argparse.Namespace) -> str:
    """What the command prints; InspectError when the supernode cannot answer."""
    if not 8 <= ns.width <= 1024:
        raise DandelionError("--width must be between 8 and 1024")
    parse_hostport(ns.supernode)
    tls = tls_from_args(ns)
    with SupernodeClient(ns.supernode, tls, ns.timeout) as client:
        data: Any
        text: Callable[[Any], str]
        if ns.command == "tasks":
            data = [render.task_dict(t) for t in sorted(client.tasks(), key=lambda t: t.url)]
            text = render.tasks_text
        elif ns.command == "task":
            reply = client.task(ns.task)
            hostnames = {h.host_id: h.hostname for h in client.hosts()}
            data = render.task_detail_dict(reply, ns.width, hostnames)
            text = render.task_detail_text
        else:
            found = match_hosts(client.hosts(), ns.host)
            if ns.host and not found:
                raise InspectError(f"no host matches {ns.host!r} on {ns.supernode}")
            data = [render.host_dict(h) for h in found]
            text = render.hosts_text
    return json.dumps(data, indent=2) if ns.json else text(data)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the dfinspect command: exit 0, 1 when the supernode cannot answer, 2 on a bad flag."""
    ns = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = run(ns)
    except InspectError as exc:
        print(f"dfinspect: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except DandelionError as exc:
        print(f"dfinspect: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("dfinspect: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    try:
        print(out)
    except BrokenPipeError:  # dfinspect tasks | head
        sys.stderr.close()
        raise SystemExit(0) from None


if __name__ == "__main__":
    main()
