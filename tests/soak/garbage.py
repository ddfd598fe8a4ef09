"""Hostile clients: garbage to every port, and a blob download cut mid-way then resumed with Range.

Garbage is sent at three levels: raw random bytes and half-open connections (every port), malformed HTTP/1.1
(mirror and /metrics), and well-framed gRPC calls of every method the server lists by reflection, with random
bytes as the request message (gRPC ports).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import threading
import time
from collections import Counter

import grpc
import httpx
from fixtures.images import PushedImage
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from .cluster import Port, Service
from .workload import CORRUPT, FAILED, OK, STALLED, UNCLEAR, Ledger, Outcome

_CUT_DEADLINE = 60.0

MALFORMED_HTTP = (
    b"GET /\x00\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/ HTTP/9.9\r\n\r\n",
    b"POST /v2/ns/img/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc",
    b"GET /v2/" + b"a/" * 5000 + b"manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 200_000 + b"\r\n\r\n",
    b"GET /v2/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/ns/img/blobs/sha256:zz HTTP/1.1\r\nHost: x\r\nRange: bytes=9-2,,x\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # a TLS hello's start
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(range(256)),
)


def _blast(port: Port, payload: bytes, linger: float = 0.0) -> None:
    """Connect, send payload (ignoring resets), optionally linger with the connection open, close."""
    with contextlib.suppress(OSError), socket.create_connection((port.host, port.port), timeout=3) as sock:
        sock.sendall(payload)
        if linger:
            time.sleep(linger)
        with contextlib.suppress(OSError):
            sock.recv(4096)


def _grpc_junk(port: Port, rng: random.Random, codes: Counter[str]) -> None:
    """Call every method the server lists by reflection with random bytes; counts the status codes received."""
    target = f"{port.host}:{port.port}"
    with grpc.insecure_channel(target) as channel:
        try:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = [s for s in database.get_services() if not s.startswith("grpc.")]
            from google.protobuf.descriptor_pool import DescriptorPool

            pool = DescriptorPool(database)
            methods = [(s, m) for s in services for m in pool.FindServiceByName(s).methods]
        except Exception:
            codes["reflection failed"] += 1
            return
        for service, method in methods:
            path = f"/{service}/{method.name}"
            junk = rng.randbytes(rng.randint(1, 2048))
            try:
                if method.client_streaming:
                    stream = channel.stream_stream(path, None, None)(iter([junk, rng.randbytes(64)]), timeout=1)
                    for _ in stream:
                        pass
                elif method.server_streaming:
                    for _ in channel.unary_stream(path, None, None)(junk, timeout=1):
                        pass
                else:
                    channel.unary_unary(path, None, None)(junk, timeout=1)
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name if isinstance(exc, grpc.Call) else "?"] += 1


def send_garbage(services: list[Service], rng: random.Random) -> tuple[str, Counter[str]]:
    """Garbage of every kind to every port of services; returns a one-line account and the junk gRPC calls'
    status codes."""
    raw = malformed = 0
    codes: Counter[str] = Counter()
    lingering: list[threading.Thread] = []
    for service in services:
        for port in service.ports:
            for _ in range(3):
                _blast(port, rng.randbytes(rng.randint(1, 65536)))
                raw += 1
            # Half-open and slow-header connections stay open while the rest goes on.
            for payload in (b"", b"GET /v2/ HTTP/1.1\r\nHost: x\r\n"):
                thread = threading.Thread(target=_blast, args=(port, payload, rng.uniform(1, 4)), daemon=True)
                thread.start()
                lingering.append(thread)
            if port.protocol in ("http", "metrics"):
                for payload in rng.sample(MALFORMED_HTTP, 4):
                    _blast(port, payload)
                    malformed += 1
            if port.protocol == "grpc":
                _grpc_junk(port, rng, codes)
    for thread in lingering:
        thread.join(timeout=10)
    account = f"{raw} random-byte, {malformed} malformed-HTTP, {len(lingering)} half-open, junk gRPC → {dict(codes)}"
    return account, codes


def cut_client(ledger: Ledger, node: Service, image: PushedImage, index: int, rng: random.Random) -> str:
    """GET a layer through node's mirror, drop the connection after a random number of bytes, resume with
    Range from a new connection, and check the joined bytes against the digest; records one Outcome."""
    digest, size = image.layer_digests[index], image.layer_sizes[index]
    cut_at = rng.randint(1, max(1, size - 1))
    mirror = node.port("http")
    url = f"http://{mirror.host}:{mirror.port}/v2/{image.repository}/blobs/{digest}"
    started = ledger.now()
    first = bytearray()
    status, detail = OK, ""
    try:
        with httpx.Client(trust_env=False, timeout=httpx.Timeout(_CUT_DEADLINE / 2)) as client:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    response.read()
                    status, detail = _error_status(response)
                else:
                    for chunk in response.iter_bytes():
                        first += chunk
                        if len(first) >= cut_at:
                            del first[cut_at:]
                            break  # leaving the block closes the connection mid-blob
            if status == OK:
                rest = client.get(url, headers={"Range": f"bytes={len(first)}-"})
                if rest.status_code == 206:
                    whole = bytes(first) + rest.content
                elif rest.status_code == 200:
                    whole = rest.content
                else:
                    status, detail = _error_status(rest)
                    whole = b""
                if status == OK and "sha256:" + hashlib.sha256(whole).hexdigest() != digest:
                    status, detail = CORRUPT, f"cut at {cut_at}, resumed ({rest.status_code}): bytes do not match"
    except httpx.TimeoutException:
        status, detail = STALLED, f"no progress for {_CUT_DEADLINE / 2:.0f}s"
    except httpx.HTTPError as exc:
        status, detail = FAILED, f"{type(exc).__name__}: {exc}"[:300]
    duration = ledger.now() - started
    if status == OK and duration > _CUT_DEADLINE:
        status, detail = STALLED, f"took {duration:.0f}s"
    ledger.add(Outcome("cut_client", f"{image.repository}@{digest[:19]}", node.role, "faults", started, duration,
                       status, detail))  # fmt: skip
    return f"{image.repository} layer {index} cut at {cut_at}/{size}: {status} {detail}".strip()


def _error_status(response: httpx.Response) -> tuple[str, str]:
    """(FAILED, message) when the mirror answered with a registry error JSON or a gateway status, else UNCLEAR."""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors and isinstance(errors, list) and errors[0].get("code"):
            return FAILED, f"{response.status_code} {errors[0]['code']}: {errors[0].get('message', '')}"[:300]
    except ValueError:
        pass
    return UNCLEAR, f"{response.status_code} without a registry error body: {response.text[:200]!r}"
