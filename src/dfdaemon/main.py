"""The dfdaemon's composition root: a peer node, the registry mirror on its transferer, and metrics, from flags."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import uvloop

from dfcommon.configfile import parse_args_with_config
from dfcommon.errors import DandelionError
from dfcommon.logs import setup_logging
from dfcommon.malloc import limit_malloc_arenas, tune_malloc
from dfcommon.metrics import ACTIVE_TASKS, CACHE_QUOTA, CACHE_USED, start_metrics_server
from dfcommon.preload import preload_http_client
from dfdaemon.flags import build_parser, config_from_args, mirror_config
from mirror.config import MirrorConfig
from mirror.server import serve_mirror
from peer.config import PeerConfig
from peer.node import PeerNode

log = logging.getLogger(__name__)


async def run(config: PeerConfig, mconfig: MirrorConfig | None) -> int:
    """Serve until SIGTERM/SIGINT, then leave the swarm and stop; returns the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    node = PeerNode(config)
    storage = node.storage
    # Read from the metrics thread: entries() copies the task list in one step, the sum then walks the copy.
    CACHE_USED.set_function(lambda: sum(entry.footprint() for entry in storage.entries()))
    CACHE_QUOTA.set(storage.quota_bytes)
    ACTIVE_TASKS.labels("dfdaemon").set_function(lambda: len(storage.entries()))
    transferer = await node.start()
    status = 0
    mirror_task: asyncio.Task[None] | None = None
    if mconfig is not None:
        mirror_task = asyncio.create_task(serve_mirror(mconfig, transferer, stop), name="mirror")
    log.info(
        "dfdaemon ready: peer %s:%d (advertised %s), daemon %s",
        config.listen_ip,
        node.port,
        config.advertise_ip or config.listen_ip,
        config.daemon_listen,
    )
    waiter = asyncio.create_task(stop.wait())
    waits: set[asyncio.Task[Any]] = {waiter} | ({mirror_task} if mirror_task else set())
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if mirror_task is not None and mirror_task.done() and not stop.is_set():
        exc = mirror_task.exception()
        log.error("registry mirror stopped: %s", exc)
        print(f"dfdaemon: {exc}", file=sys.stderr)
        status = 1
        stop.set()
    log.info("stopping")
    if mirror_task is not None and not mirror_task.done():
        try:
            async with asyncio.timeout(10):
                await mirror_task
        except Exception as exc:
            log.warning("registry mirror did not stop cleanly: %s", exc)
            mirror_task.cancel()
    waiter.cancel()
    await node.stop()
    return status


def main(argv: list[str] | None = None) -> None:
    """Entry point of the dfdaemon command (`dfdaemon client-config ...` prints runtime configuration instead)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["client-config"]:
        from mirror.clientconfig_cli import main as client_config

        raise SystemExit(client_config(args[1:]))
    tune_malloc()
    limit_malloc_arenas()
    try:
        ns = parse_args_with_config(build_parser(), argv, "DFDAEMON_")
        setup_logging("dfdaemon", ns.log_level, ns.log_format)
        config = config_from_args(ns)
        mconfig = mirror_config(ns)
        metrics = start_metrics_server(ns.metrics, "dfdaemon")[0] if ns.metrics else None
        preload_http_client()
    except DandelionError as exc:
        print(f"dfdaemon: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as exc:
        print(f"dfdaemon: cannot serve metrics on {ns.metrics}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        status = uvloop.run(run(config, mconfig))
    except OSError as exc:
        print(f"dfdaemon: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        status = 0
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
    raise SystemExit(status)


if __name__ == "__main__":
    main()
