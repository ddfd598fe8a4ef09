"""The upstream registry: authentication (Basic pass-through, Bearer tokens) and manifest pass-through."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlencode, urlsplit

import httpx

from registryclient.allowlist import AllowList
from registryclient.answers import Answer, BlobGrant, Listing, Manifest
from registryclient.challenges import Challenge, find_challenge, parse_challenges
from registryclient.config import ClientConfig
from registryclient.credentials import Credentials
from registryclient.errors import RegistryError, upstream_error
from registryclient.names import is_digest_reference
from registryclient.registries import UpstreamTls

log = logging.getLogger(__name__)
_K = TypeVar("_K")
_V = TypeVar("_V")

MIRROR_REALM = "Dandelion registry mirror"
SIGNED_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
_MAX_TOKEN_REPLY = 1024 * 1024
_MAX_CACHED = 4096
_DEFAULT_TOKEN_LIFETIME_S = 60  # what the token spec says to assume when expires_in is missing
_MANIFEST_HEADERS = ("content-type", "docker-content-digest", "etag")
MAX_LISTING_BYTES = 16 * 1024 * 1024  # one page of tags/list or _catalog, read whole


def _ssl_context(config: ClientConfig, own: UpstreamTls | None = None) -> ssl.SSLContext | bool:
    """httpx's verify for one upstream: its own settings on top of the mirror-wide ones."""
    if config.insecure or (own is not None and own.insecure):
        return False
    context = ssl.create_default_context()
    for ca_file in (config.registry_ca, own.ca_file if own is not None else None):
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    return context


class Upstream:
    """Talks to upstream registries on behalf of clients, with their credentials and cached tokens."""

    def __init__(
        self,
        config: ClientConfig,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.registries = config.registries()
        # Every operation first checks its upstream here (the routes do too): none is contacted unless allowed.
        self.allowed = AllowList(self.registries.default, config.allowed_registries, self.registries.targets())
        self._clock = clock
        limits = httpx.Limits(max_connections=config.max_upstream_connections)
        # An upstream with its own CA or insecure flag gets its own connection pool (redirects elsewhere, e.g. to
        # blob storage, use the mirror-wide settings).
        mounts: dict[str, httpx.AsyncBaseTransport] = {
            origin.url: httpx.AsyncHTTPTransport(verify=_ssl_context(config, own), limits=limits)
            for origin, own in self.registries.tls.items()
            if transport is None
        }
        self._client = httpx.AsyncClient(
            verify=_ssl_context(config),
            transport=transport,
            mounts=mounts or None,
            follow_redirects=True,
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            limits=limits,
            trust_env=False,
        )
        # (base, credentials key, scope) → (token, monotonic expiry)
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        # (base, credentials key, repository, digest) → (grant, monotonic expiry)
        self._grants: dict[tuple[str, str, str, str], tuple[BlobGrant, float]] = {}
        self._token_locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        # The HEADs in flight, by grant key: a second ask for the same blob and client (the prefetch and the
        # client's own GET, two layers' clients at once) waits for the first instead of asking again.
        self._asking: dict[tuple[str, str, str, str], asyncio.Future[BlobGrant]] = {}

    async def aclose(self) -> None:
        """Close upstream connections."""
        await self._client.aclose()

    # ---- public operations -------------------------------------------------------------------

    async def check_login(self, base: str, creds: Credentials) -> None:
        """GET /v2/ as the client would: returns if the upstream lets it in, RegistryError 401/503 otherwise.

        401 carries a Basic challenge (Basic upstreams, refused Basic credentials: `docker login` to the
        mirror) or, to an anonymous client of a token upstream, the upstream's Bearer challenge.
        """
        base = self.allowed.admit(base)
        answer = await self._send("GET", f"{base}/v2/", base, creds, scope="", headers=[], anonymous_tokens=False)
        if answer.status != 200:
            raise self._refusal(answer, base, creds, "registry")

    async def manifest(
        self, method: str, base: str, name: str, reference: str, accept: Sequence[str], creds: Credentials
    ) -> Manifest:
        """GET or HEAD a manifest, every Accept line kept as its own header line."""
        base = self.allowed.admit(base)
        url = f"{base}/v2/{name}/manifests/{reference}"
        headers = [("Accept", value) for value in accept]
        answer = await self._send(method, url, base, creds, pull_scope(name), headers, self.config.max_manifest_bytes)
        if answer.status != 200:
            raise self._refusal(answer, base, creds, "manifest")
        media_type = answer.headers.get("content-type", "application/octet-stream")
        digest = answer.headers.get("docker-content-digest", "")
        etag = answer.headers.get("etag")
        if method == "HEAD":
            length = _content_length(answer.headers, base)
            if not digest and is_digest_reference(reference):
                digest = reference
            return Manifest(b"", media_type, digest, length, etag)
        if media_type.split(";")[0].strip() == SIGNED_SCHEMA1:
            # Its digest covers the payload without the JWS signatures, so the body cannot be checked here.
            return Manifest(answer.body, media_type, digest, len(answer.body), etag)
        computed = _digest_of(answer.body, reference if is_digest_reference(reference) else digest)
        if (is_digest_reference(reference) and computed != reference) or (digest and computed != digest):
            raise RegistryError(
                502, "MANIFEST_INVALID", f"upstream {base} sent a manifest that does not match its digest"
            )
        return Manifest(answer.body, media_type, computed, len(answer.body), etag)

    async def listing(
        self, base: str, path: str, params: Sequence[tuple[str, str]], scope: str, creds: Credentials, what: str
    ) -> Listing:
        """GET a listing (/v2/NAME/tags/list or /v2/_catalog) with the client's credentials and these query params.

        Always GET: distribution answers HEAD on listings with 405, so the mirror answers HEAD from a GET.
        """
        base = self.allowed.admit(base)
        url = f"{base}{path}" + (f"?{urlencode(params)}" if params else "")
        headers = [("Accept", "application/json")]
        answer = await self._send("GET", url, base, creds, scope, headers, MAX_LISTING_BYTES)
        if answer.status != 200:
            raise self._refusal(answer, base, creds, what)
        links = answer.headers.get_list("link")
        media_type = answer.headers.get("content-type", "application/json")
        return Listing(answer.body, media_type, ", ".join(links) if links else None, url)

    async def authorize_blob(
        self, base: str, name: str, digest: str, creds: Credentials, fresh: bool = False
    ) -> BlobGrant:
        """Ask the upstream (HEAD the blob with the client's credentials) whether this client may read it.

        Positive answers are remembered for auth_cache_ttl_s per credentials, repository and blob,
        so a blob other nodes hold is never served to a client the upstream would refuse. fresh: the
        upstream refused the grant's Authorization since; ask again, with a new token.
        """
        base = self.allowed.admit(base)
        key = (base, creds.key, name, digest)
        now = self._clock()
        if fresh:
            self._grants.pop(key, None)
            for stale in [k for k in self._tokens if k[:2] == (base, creds.key)]:
                del self._tokens[stale]
        cached = self._grants.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        asking = self._asking.get(key)
        if asking is not None and not fresh:
            try:
                return await asyncio.shield(asking)
            except asyncio.CancelledError:
                if not asking.cancelled():
                    raise  # this caller was cancelled
                # the first asker was cancelled: ask again below
        asking = asyncio.get_running_loop().create_future()
        self._asking[key] = asking
        try:
            grant = await self._ask_blob(base, name, digest, creds, key)
        except asyncio.CancelledError:
            asking.cancel()
            raise
        except BaseException as exc:
            asking.set_exception(exc)
            asking.exception()  # marked retrieved: nobody else may be waiting
            raise
        else:
            asking.set_result(grant)
        finally:
            if self._asking.get(key) is asking:
                del self._asking[key]
        return grant

    async def _ask_blob(
        self, base: str, name: str, digest: str, creds: Credentials, key: tuple[str, str, str, str]
    ) -> BlobGrant:
        url = f"{base}/v2/{name}/blobs/{digest}"
        answer = await self._send("HEAD", url, base, creds, pull_scope(name), [])
        if answer.status != 200:
            raise self._refusal(answer, base, creds, "blob")
        grant = BlobGrant(url, dict(answer.auth), _content_length(answer.headers, base))
        now = self._clock()
        _prune(self._grants, now)
        self._grants[key] = (grant, min(now + self.config.auth_cache_ttl_s, answer.auth_expires))
        return grant

    # ---- authentication ----------------------------------------------------------------------

    def _cached_token(self, base: str, creds: Credentials, scope: str) -> tuple[str, float] | None:
        cached = self._tokens.get((base, creds.key, scope))
        if cached is not None and cached[1] > self._clock():
            return cached
        return None

    async def _send(
        self,
        method: str,
        url: str,
        base: str,
        creds: Credentials,
        scope: str,
        headers: list[tuple[str, str]],
        limit: int = _MAX_TOKEN_REPLY,
        anonymous_tokens: bool = True,
    ) -> Answer:
        """One request with the best credentials known; on a Bearer challenge, get a token and retry once.

        Without anonymous_tokens an anonymous client gets the upstream's challenge back instead (the
        GET /v2/ ping: clients then fetch tokens themselves, with the credentials they logged in with).
        """
        auth: dict[str, str] = {}
        expires = float("inf")
        cached = self._cached_token(base, creds, scope)
        if cached is not None:
            auth, expires = {"Authorization": f"Bearer {cached[0]}"}, cached[1]
        elif creds.header is not None:
            auth = {"Authorization": creds.header}
        status, reply_headers, body = await self._request(method, url, base, [*headers, *auth.items()], limit)
        if status != 401 or creds.scheme == "bearer" or (creds.anonymous and not anonymous_tokens):
            return Answer(status, reply_headers, body, auth, expires)
        bearer = find_challenge(parse_challenges(reply_headers.get_list("www-authenticate")), "bearer")
        if bearer is None:
            return Answer(status, reply_headers, body, auth, expires)
        # One token request per credentials and scope at a time: a pull asks for its layers in parallel.
        lock = self._token_locks.setdefault((base, creds.key, scope), asyncio.Lock())
        async with lock:
            token = self._cached_token(base, creds, scope)
            if token is None or auth.get("Authorization") == f"Bearer {token[0]}":  # none, or just refused
                token = await self._token(base, bearer, creds, scope)
        if len(self._token_locks) >= _MAX_CACHED:
            self._token_locks = {k: v for k, v in self._token_locks.items() if v.locked()}
        if token is None:
            return Answer(status, reply_headers, body, auth, expires)
        auth, expires = {"Authorization": f"Bearer {token[0]}"}, token[1]
        status, reply_headers, body = await self._request(method, url, base, [*headers, *auth.items()], limit)
        return Answer(status, reply_headers, body, auth, expires)

    async def _token(self, base: str, challenge: Challenge, creds: Credentials, scope: str) -> tuple[str, float] | None:
        """A Bearer token from the challenge's realm, with the client's Basic credentials or anonymously.

        None when the token service refuses the credentials.
        """
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https") or not urlsplit(realm).hostname:
            raise RegistryError.unavailable(f"upstream {base} sent a Bearer challenge without a usable realm", 502)
        wanted = challenge.params.get("scope", scope)
        params = [("service", challenge.params["service"])] if "service" in challenge.params else []
        params += [("scope", item) for item in wanted.split(" ") if item]
        headers: list[tuple[str, str]] = []
        if creds.basic() is not None and creds.header is not None:
            headers.append(("Authorization", creds.header))
        token_url = realm + ("&" if "?" in realm else "?") + urlencode(params)
        status, _reply_headers, body = await self._request("GET", token_url, base, headers, _MAX_TOKEN_REPLY)
        if status in (401, 403):
            return None
        if status != 200:
            raise RegistryError.unavailable(f"token service of upstream {base} answered HTTP {status}", 502)
        try:
            reply = httpx.Response(200, content=body).json()
            token = str(reply.get("token") or reply.get("access_token") or "")
            lifetime = float(reply.get("expires_in") or _DEFAULT_TOKEN_LIFETIME_S)
        except (ValueError, AttributeError):
            token, lifetime = "", 0.0
        if not token:
            raise RegistryError.unavailable(f"token service of upstream {base} sent no token", 502)
        now = self._clock()
        expires = now + max(lifetime - self.config.token_expiry_margin_s, 1.0)
        _prune(self._tokens, now)
        for key_scope in {scope, wanted}:
            self._tokens[(base, creds.key, key_scope)] = (token, expires)
        return token, expires

    def _refusal(self, answer: Answer, base: str, creds: Credentials, what: str) -> RegistryError:
        if answer.status != 401:
            return upstream_error(answer.status, answer.body, base, what)
        message = f"upstream {base} " + ("requires authentication" if creds.anonymous else "refused the credentials")
        bearer = next(
            (v for v in answer.headers.get_list("www-authenticate") if v.strip().lower().startswith("bearer ")), None
        )
        if bearer is not None and creds.scheme != "basic":
            # Token clients (docker, containerd) get the upstream's own challenge and fetch tokens themselves.
            return RegistryError(401, "UNAUTHORIZED", message, None, {"WWW-Authenticate": bearer})
        return RegistryError.unauthorized(MIRROR_REALM, message)

    # ---- transport ---------------------------------------------------------------------------

    async def _request(
        self, method: str, url: str, base: str, headers: list[tuple[str, str]], limit: int
    ) -> tuple[int, httpx.Headers, bytes]:
        """Send one request and read at most limit bytes of the answer; httpx failures become 503/504."""
        try:
            async with self._client.stream(method, url, headers=headers) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise RegistryError.unavailable(f"upstream {base} sent an answer over {limit} bytes", 502)
                return response.status_code, response.headers, bytes(body)
        except httpx.ConnectTimeout:
            raise RegistryError.unavailable(
                f"upstream {base} did not accept a connection within {self.config.connect_timeout_s:g} s"
            ) from None
        except httpx.TimeoutException:
            raise RegistryError.unavailable(
                f"upstream {base} did not answer within {self.config.read_timeout_s:g} s", 504
            ) from None
        except httpx.ConnectError as exc:
            raise RegistryError.unavailable(f"upstream {base} is unreachable: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise RegistryError.unavailable(f"upstream {base} failed: {_reason(exc)}") from None


def pull_scope(name: str) -> str:
    """The token scope for reading a repository."""
    return f"repository:{name}:pull"


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]


def _content_length(headers: httpx.Headers, base: str) -> int:
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        length = -1
    if length < 0:
        raise RegistryError.unavailable(f"upstream {base} sent no valid Content-Length", 502)
    return length


def _digest_of(body: bytes, like: str) -> str:
    algorithm = like.partition(":")[0] if like.startswith(("sha256:", "sha512:")) else "sha256"
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def _prune(cache: dict[_K, tuple[_V, float]], now: float) -> None:
    """Drop expired entries once a cache is full (and everything if all are live: it is only a cache)."""
    if len(cache) >= _MAX_CACHED:
        for key in [k for k, (_, expiry) in cache.items() if expiry <= now]:
            del cache[key]
        if len(cache) >= _MAX_CACHED:
            cache.clear()
