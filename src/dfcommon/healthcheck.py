"""Container health probe: `python -m dfcommon.healthcheck grpc HOST:PORT` or `... http URL`.

Exits 0 when the server answers healthy, 1 otherwise, with one line on stderr.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 5.0


def check_grpc(target: str) -> str | None:
    """None when grpc.health.v1 reports SERVING at target, else why not."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as err:
            return f"{target}: {err.code().name} {err.details()}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def check_http(url: str) -> str | None:
    """None when url answers with a status below 500 (a registry's /v2/ may answer 401)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:
            status = int(reply.status)
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError as err:
        return f"{url}: {err}"
    return None if status < 500 else f"{url}: HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    """Run one probe from the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("grpc", "http"):
        print("usage: python -m dfcommon.healthcheck grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    problem = check_grpc(args[1]) if args[0] == "grpc" else check_http(args[1])
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
