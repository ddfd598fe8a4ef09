"""Container health probe: `python -m dfcommon.healthcheck grpc HOST:PORT [--tls-cert ...]` or `... http URL`.

Exits 0 when the server answers healthy, 1 otherwise, with one line on stderr. A gRPC port with mutual TLS
needs the node's --tls-cert, --tls-key and --tls-ca (and --tls-server-name when the cluster uses one).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfcommon.errors import DandelionError
from dfcommon.tls import TlsConfig, add_tls_arguments, tls_from_args

TIMEOUT_SECONDS = 5.0


def _channel(target: str, tls: TlsConfig | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, tls.channel_credentials(), options=tls.channel_options())


def check_grpc(target: str, tls: TlsConfig | None = None) -> str | None:
    """None when grpc.health.v1 reports SERVING at target, else why not."""
    with _channel(target, tls) as channel:
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
    parser = argparse.ArgumentParser(prog="python -m dfcommon.healthcheck", description="One health probe.")
    parser.add_argument("kind", choices=("grpc", "http"))
    parser.add_argument("target", help="HOST:PORT (grpc) or URL (http)")
    add_tls_arguments(parser, "the gRPC probe")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        tls = tls_from_args(args)
    except DandelionError as err:
        print(f"healthcheck: {err}", file=sys.stderr)
        return 2
    problem = check_grpc(args.target, tls) if args.kind == "grpc" else check_http(args.target)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
