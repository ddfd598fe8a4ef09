"""The registry mirror's HTTP face: Docker Registry v2 pull routes translated into upstream calls and transfers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sys
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError
from dfcommon.metrics import MIRROR_REQUESTS
from mirror import aborts
from mirror.admission import DownloadGate, GatedBody
from mirror.config import MirrorConfig
from mirror.errors import error_response, transfer_error
from mirror.listing import CATALOG_SCOPE, listing_response, pagination_params
from mirror.prefetch import Prefetcher, layer_digests
from mirror.ranges import parse_range
from mirror.refresh import RefreshingStream
from mirror.streaming import BlobResponse, verified_chunks
from mirror.transfer import BlobStream, BlobTransferer
from registryclient.credentials import Credentials
from registryclient.errors import API_VERSION_HEADER, RegistryError
from registryclient.names import validate_digest, validate_name, validate_reference
from registryclient.selection import REGISTRY_HEADER
from registryclient.upstream import Upstream, pull_scope

log = logging.getLogger(__name__)
access_log = logging.getLogger("mirror.access")

_MANIFEST = re.compile(r"^v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_UPLOAD = re.compile(r"^v2/(?P<name>.+)/blobs/uploads(?:/.*)?$")
_BLOB = re.compile(r"^v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")
_TAGS = re.compile(r"^v2/(?P<name>.+)/tags/list$")
_CATALOG = "v2/_catalog"
_READ_METHODS = ("GET", "HEAD")
_EMPTY_SHA256 = "sha256:" + hashlib.sha256(b"").hexdigest()


class MirrorApp:
    """Request handlers; one instance per server, holding the upstream client and the transferer."""

    def __init__(
        self, config: MirrorConfig, transferer: BlobTransferer, upstream: Upstream, prefetcher: Prefetcher | None
    ) -> None:
        self.config = config
        self.transferer = transferer
        self.upstream = upstream
        self.prefetcher = prefetcher
        # With ordered_layers off no blob is held back (every one is below the gate's size).
        self.gate = DownloadGate() if config.ordered_layers else DownloadGate(min_size=sys.maxsize)

    async def dispatch(self, request: Request) -> Response:
        """Route by path (repository names contain '/'), answering errors as registry JSON."""
        method = request.method
        try:
            return await self._route(request, request.url.path.lstrip("/"))
        except RegistryError as exc:
            if exc.status >= 500:
                log.warning("%s %s: %d %s", method, request.url.path[:300], exc.status, exc.message)
            return error_response(exc, head_only=method == "HEAD")

    async def _route(self, request: Request, path: str) -> Response:
        method = request.method
        if path in ("v2", "v2/"):
            self._require_read(method, path)
            return await self.version_check(request)
        if _UPLOAD.match(path):
            raise RegistryError.unsupported(method, path)
        match = _MANIFEST.match(path)
        if match:
            self._require_read(method, path)
            return await self.manifest(request, match["name"], match["reference"])
        match = _BLOB.match(path)
        if match:
            self._require_read(method, path)
            return await self.blob(request, match["name"], match["digest"])
        match = _TAGS.match(path)
        if match:
            self._require_read(method, path)
            return await self.tags(request, match["name"])
        if path == _CATALOG:
            self._require_read(method, path)
            return await self.catalog(request)
        if path.startswith("v2/") and method not in _READ_METHODS:
            raise RegistryError.unsupported(method, path)
        raise RegistryError.not_found("/" + path)

    @staticmethod
    def _require_read(method: str, path: str) -> None:
        if method not in _READ_METHODS:
            raise RegistryError.unsupported(method, "/" + path)

    def _upstream(self, request: Request, name: str = "") -> tuple[str, str]:
        """(canonical base URL, repository name there) of the upstream the request selects (registryclient.registries);
        403 DENIED unless it is allowed."""
        base, remote = self.upstream.registries.select(
            request.query_params.get("ns"), request.headers.get(REGISTRY_HEADER), name
        )
        return self.upstream.allowed.admit(base), remote

    async def version_check(self, request: Request) -> Response:
        """GET /v2/: 200 if the upstream lets this client in, else 401 with a Basic challenge (docker login)."""
        await self.upstream.check_login(self._upstream(request)[0], _credentials(request))
        return Response(
            b"{}" if request.method == "GET" else b"",
            headers={
                API_VERSION_HEADER[0]: API_VERSION_HEADER[1],
                "Content-Type": "application/json",
                "Content-Length": "2",
            },
        )

    async def manifest(self, request: Request, name: str, reference: str) -> Response:
        """Manifests by tag or digest, passed through with every Accept line the client sent."""
        validate_name(name)
        validate_reference(reference)
        base, remote = self._upstream(request, name)
        credentials = _credentials(request)
        manifest = await self.upstream.manifest(
            request.method, base, remote, reference, request.headers.getlist("accept"), credentials
        )
        layers = layer_digests(manifest.media_type, manifest.body) if manifest.body else []
        if layers:
            self.gate.expect(layers)
            if self.prefetcher is not None:
                self.prefetcher.schedule(base, remote, credentials, layers)
        headers = {
            API_VERSION_HEADER[0]: API_VERSION_HEADER[1],
            "Content-Type": manifest.media_type,
            "Content-Length": str(manifest.length),
        }
        if manifest.digest:
            headers["Docker-Content-Digest"] = manifest.digest
        if manifest.etag:
            headers["ETag"] = manifest.etag
        return Response(manifest.body, headers=headers)

    async def tags(self, request: Request, name: str) -> Response:
        """A repository's tags (n/last paging) from the upstream, with the client's credentials."""
        validate_name(name)
        params = pagination_params(request.query_params)
        base, remote = self._upstream(request, name)
        listing = await self.upstream.listing(
            base, f"/v2/{remote}/tags/list", params, pull_scope(remote), _credentials(request), "tags"
        )
        return listing_response(listing, request.method, request.query_params.get("ns"), (remote, name))

    async def catalog(self, request: Request) -> Response:
        """The upstream's repository list (n/last paging); registries that refuse it (Docker Hub) say so."""
        params = pagination_params(request.query_params)
        base = self._upstream(request)[0]
        listing = await self.upstream.listing(
            base, "/v2/_catalog", params, CATALOG_SCOPE, _credentials(request), "catalog"
        )
        return listing_response(listing, request.method, request.query_params.get("ns"))

    async def blob(self, request: Request, name: str, digest: str) -> Response:
        """Blobs: the upstream authorises the client, the swarm delivers the bytes (Range → 206)."""
        validate_name(name)
        validate_digest(digest, ("sha256",))
        base, remote = self._upstream(request, name)
        grant = await self.upstream.authorize_blob(base, remote, digest, _credentials(request))
        headers = {
            API_VERSION_HEADER[0]: API_VERSION_HEADER[1],
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": digest,
            "Accept-Ranges": "bytes",
            "ETag": f'"{digest}"',
        }
        range_header = request.headers.get("range")
        byte_range = parse_range(range_header, grant.length) if range_header else None
        status = 206 if byte_range else 200
        start, size = (byte_range.start, byte_range.size) if byte_range else (0, grant.length)
        headers["Content-Length"] = str(size)
        if byte_range:
            headers["Content-Range"] = byte_range.content_range
        if request.method == "HEAD":
            return Response(b"", status_code=status, headers=headers)
        if grant.length == 0:
            if digest != _EMPTY_SHA256:
                raise RegistryError(502, "UNAVAILABLE", f"upstream {base} says blob {digest} is empty")
            return Response(b"", headers=headers)
        content = grant.content(digest)
        ticket = None if self.transferer.holds(content) else await self.gate.admit(size, digest)
        creds = _credentials(request)

        async def reauthorize() -> ContentRequest:
            fresh = await self.upstream.authorize_blob(base, remote, digest, creds, fresh=True)
            return fresh.content(digest)

        async def reopen(again: ContentRequest, offset: int) -> BlobStream:
            return await self._open(again, offset, base, digest, grant.length)

        try:
            stream: BlobStream = RefreshingStream(await reopen(content, start), content, start, reauthorize, reopen)
        except BaseException:
            self.gate.release(ticket)
            raise
        # A whole blob is checked against its digest before its last byte leaves: by the swarm where it does
        # so (the peer's transferer does), else here.
        verify = start == 0 and size == grant.length and not stream.verifies_digest
        body = GatedBody(verified_chunks(stream, digest, size, verify), stream.downloaded, self.gate, ticket)
        return BlobResponse(body, status, headers)

    async def _open(self, content: ContentRequest, start: int, base: str, digest: str, length: int) -> BlobStream:
        """The swarm's stream of a blob from start, its length checked against the upstream's."""
        try:
            async with asyncio.timeout(self.config.blob_open_timeout_s):
                stream = await self.transferer.open(content, start)
        except DandelionError as exc:
            raise transfer_error(exc, base) from None
        except TimeoutError:
            raise RegistryError.unavailable(
                f"the swarm did not start delivering {digest} within {self.config.blob_open_timeout_s:g} s", 504
            ) from None
        if stream.content_length >= 0 and stream.content_length != length:
            await stream.aclose()
            raise RegistryError(
                502,
                "UNAVAILABLE",
                f"the swarm has {stream.content_length} bytes for {digest}, upstream {base} says {length}",
            )
        return stream


def _credentials(request: Request) -> Credentials:
    return Credentials.from_header(request.headers.get("authorization"))


class AccessLog:
    """ASGI middleware: one line per request (method, path, status, bytes, time); never any header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and log how it ended."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status, sent = 0, 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        outcome = ""
        try:
            await self.app(scope, receive, counting_send)
        except BaseException as exc:
            outcome = f" aborted={aborts.describe(exc)}"
            raise
        finally:
            client = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"").decode("latin-1")[:200]
            target = scope.get("path", "")[:300] + (f"?{query}" if query else "")
            MIRROR_REQUESTS.labels(scope.get("method", ""), _kind(scope.get("path", "")), str(status)).inc()
            access_log.log(
                logging.WARNING if outcome else logging.INFO,
                '%s "%s %s" %d %d %.3fs%s',
                client[0],
                scope.get("method", ""),
                target,
                status,
                sent,
                time.monotonic() - started,
                outcome,
            )


def _kind(path: str) -> str:
    """What a registry path asks for, for metrics: version, manifest, blob, tags, catalog or other (bounded)."""
    if path in ("/v2", "/v2/"):
        return "version"
    if path == "/" + _CATALOG:
        return "catalog"
    if _TAGS.match(path.lstrip("/")):
        return "tags"
    for kind in ("manifests", "blobs"):
        if f"/{kind}/" in path:
            return kind.rstrip("s")
    return "other"


def build_app(
    config: MirrorConfig, transferer: BlobTransferer, upstream: Upstream, prefetcher: Prefetcher | None = None
) -> ASGIApp:
    """The ASGI application: one catch-all route (names contain '/') behind the access log; with a prefetcher,
    the layers of image manifests it serves start loading into the swarm."""
    handlers = MirrorApp(config, transferer, upstream, prefetcher)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    starlette = Starlette(routes=[Route("/{path:path}", handlers.dispatch, methods=methods)])
    return AccessLog(starlette)
