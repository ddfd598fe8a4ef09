"""Per-origin TLS in the origin client: an upstream with its own CA is trusted for that origin only."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fixtures.certs import Identity, identity, make_certs

from dfcommon.http_client import HttpFailure
from peer.origin import OriginTls, new_client


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    directory = tmp_path_factory.mktemp("certs")
    make_certs(directory, "reg=127.0.0.1")
    return identity(directory, "reg")


@pytest.fixture
def https_origin(certs: Identity) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 whose certificate only the test CA vouches for; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, per_origin: list[OriginTls]) -> bytes:
    client = new_client(per_origin=per_origin).http
    response = client.get(f"https://127.0.0.1:{port}/blob", {})
    try:
        buffer = bytearray(16)
        size = response.readinto(memoryview(buffer))
        return bytes(buffer[:size])
    finally:
        response.close()
        client.close()


def test_an_origin_with_its_own_ca_is_trusted(https_origin: int, certs: Identity) -> None:
    assert _get(https_origin, [OriginTls("127.0.0.1", https_origin, str(certs.ca))]) == b"hello"


def test_an_origin_marked_insecure_is_not_verified(https_origin: int) -> None:
    assert _get(https_origin, [OriginTls("127.0.0.1", https_origin, None, insecure=True)]) == b"hello"


def test_the_ca_of_another_origin_does_not_count(https_origin: int, certs: Identity) -> None:
    with pytest.raises(HttpFailure, match="certificate"):
        _get(https_origin, [OriginTls("127.0.0.1", https_origin + 1, str(certs.ca))])
    with pytest.raises(HttpFailure, match="certificate"):
        _get(https_origin, [])
