"""Blocking HTTP/1.1 GETs for origin fetches (the seed's, and a peer's back-to-source): TLS, redirects, kept-alive
connections, and bodies read straight into the caller's buffers.

The seed and the peer read origin bodies in worker threads with this client instead of on the event loop with
httpx. httpx passes every read through h11 and anyio in Python: about 1.7 CPU-s per GB on these machines (2 vCPU),
all of it on the event loop that also serves the swarm's gRPC streams. http.client's readinto() fills the caller's
buffer with one kernel copy and no Python object per read: about 0.25 CPU-s per GB, with the GIL released while it
waits.

Only what an origin fetch needs: GET (and HEAD, for the dfdaemon's access probe), caller headers, redirects like
httpx's (Authorization dropped when the redirect leaves the origin, except an upgrade to https on the same host), no
cookies, no proxies. Every connection (the first origin's and each redirect target's) goes to an address the fetch
policy allowed after resolving the name (dfcommon.fetchpolicy): what was checked is what is connected to.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import FetchPolicy, OriginRefused, connect_checked

MAX_REDIRECTS = 20  # httpx's default
IDLE_PER_ORIGIN = 8  # kept-alive connections per scheme://host:port
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DRAIN_LIMIT = 64 << 10  # a redirect's body up to this size is read so its connection can be reused
# How a kept-alive connection that the origin closed meanwhile fails; a new connection is tried once.
_STALE = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


class HttpFailure(Exception):
    """The exchange failed below HTTP status level; str() says how in a few words (never a header value)."""


class PolicyRefused(HttpFailure):
    """The fetch policy refused the address a connection was about to go to; str() is the policy's one line."""


class Cancel:
    """Stops a blocking exchange from another thread: the connection it uses (waiting for the status line or
    reading the body) is shut down, and every later step fails with HttpFailure("cancelled")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self.cancelled = False

    def watch(self, conn: http.client.HTTPConnection) -> None:
        """The exchange now uses conn; HttpFailure when it was cancelled already."""
        with self._lock:
            if self.cancelled:
                raise HttpFailure("cancelled")
            self._conn = conn

    def cancel(self) -> None:
        """From any thread: make the exchange fail at once."""
        with self._lock:
            self.cancelled = True
            conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Origin(NamedTuple):
    scheme: str
    host: str
    port: int


def _origin_of(url: str) -> tuple[_Origin, str, str]:
    """(origin, request target, Basic credentials from user info or "") of an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise HttpFailure(f"unsupported URL {scheme or 'without scheme'}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise HttpFailure("invalid port in URL") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    basic = ""
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        basic = "Basic " + base64.b64encode(pair.encode()).decode()
    return _Origin(scheme, parts.hostname, port), target, basic


def _keeps_auth(old: _Origin, new: _Origin) -> bool:
    """httpx's rule: credentials follow a redirect on the same origin, or from http:80 to https:443 on one host."""
    if old == new:
        return True
    return old.host == new.host and (old.scheme, old.port) == ("http", 80) and (new.scheme, new.port) == ("https", 443)


def describe(exc: BaseException) -> str:
    """A few words for a transport failure, for one-line errors."""
    if isinstance(exc, HttpFailure):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS {exc.reason}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS {exc.reason or type(exc).__name__}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed by the origin"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP response ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


class Response:
    """An origin's response whose body is read with readinto(); close() returns its connection to the pool."""

    def __init__(self, client: HttpClient, origin: _Origin, conn: http.client.HTTPConnection, cancel: Cancel) -> None:
        self._client = client
        self._origin = origin
        self._conn = conn
        self._cancel = cancel
        self._raw: http.client.HTTPResponse | None = None
        self._failed = False  # reading the body raised: the connection is in an unknown state

    def _start(self) -> None:
        self._raw = self._conn.getresponse()

    @property
    def raw(self) -> http.client.HTTPResponse:
        """The http.client response (status line and headers read)."""
        assert self._raw is not None
        return self._raw

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.raw.status

    @property
    def reason(self) -> str:
        """The status line's reason phrase."""
        return self.raw.reason

    def header(self, name: str) -> str:
        """A response header's value ("" when absent)."""
        return self.raw.getheader(name) or ""

    def readinto(self, view: memoryview) -> int:
        """Read body bytes into view; 0 at the end of the body. Raises HttpFailure."""
        if self._cancel.cancelled:
            raise HttpFailure("cancelled")
        try:
            n = self.raw.readinto(view)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._failed = True
            if self._cancel.cancelled:
                raise HttpFailure("cancelled") from None
            raise HttpFailure(f"reading the body failed: {describe(exc)}") from None
        return n

    def close(self) -> None:
        """Release the connection: back to the pool when the body was read to its end, else closed."""
        raw = self._raw
        # http.client marks a response closed at the end of its body, but also when a body was cut short (then a
        # declared length is left over) or its chunk framing broke (then readinto raised).
        whole = raw is not None and raw.isclosed() and not raw.length and not self._failed
        if raw is not None and whole and not raw.will_close and not self._cancel.cancelled:
            self._client._release(self._origin, self._conn)
        else:
            if raw is not None:
                raw.close()
            self._conn.close()


class HttpClient:
    """Blocking GETs with redirects and a small pool of kept-alive connections; safe to share between threads."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        user_agent: str = "dandelion",
        policy: FetchPolicy | None = None,
        origin_contexts: Mapping[tuple[str, int], ssl.SSLContext] | None = None,
    ) -> None:
        """origin_contexts: (host, port) → the TLS context for that HTTPS origin instead of ssl_context."""
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.origin_contexts = dict(origin_contexts or {})
        self.policy = policy or FetchPolicy()  # default: link-local refused, loopback allowed
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, headers: Mapping[str, str], cancel: Cancel | None = None) -> Response:
        """GET url with headers, following redirects; the response's status line and headers are read.

        Raises HttpFailure for transport errors, too many redirects and cancel; HTTP error statuses are responses.
        """
        return self.request("GET", url, headers, cancel)

    def request(self, method: str, url: str, headers: Mapping[str, str], cancel: Cancel | None = None) -> Response:
        """As get(), with method ("GET" or "HEAD"; a HEAD response has no body to read)."""
        cancel = cancel or Cancel()
        current = dict(headers)
        origin, target, basic = _origin_of(url)
        if basic and not any(k.lower() == "authorization" for k in current):
            current["Authorization"] = basic
        for _ in range(MAX_REDIRECTS + 1):
            response = self._exchange(method, origin, target, current, cancel)
            location = response.header("location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            self._drain(response)
            url = urljoin(url, location)
            new_origin, target, _ = _origin_of(url)
            if not _keeps_auth(origin, new_origin):
                current = {k: v for k, v in current.items() if k.lower() != "authorization"}
            origin = new_origin
        raise HttpFailure(f"more than {MAX_REDIRECTS} redirects")

    def _exchange(
        self, method: str, origin: _Origin, target: str, headers: Mapping[str, str], cancel: Cancel
    ) -> Response:
        conn = self._take(origin)
        if conn is not None:
            try:
                cancel.watch(conn)
                return self._send(method, origin, conn, target, headers, cancel)
            except _STALE:
                conn.close()  # the origin closed the idle connection meanwhile: once more on a new one
            except BaseException:
                conn.close()
                raise
        conn = self._connect(origin)
        try:
            cancel.watch(conn)
            return self._send(method, origin, conn, target, headers, cancel)
        except _STALE as exc:
            conn.close()
            raise HttpFailure(describe(exc)) from None
        except BaseException:
            conn.close()
            raise

    def _send(
        self,
        method: str,
        origin: _Origin,
        conn: http.client.HTTPConnection,
        target: str,
        headers: Mapping[str, str],
        cancel: Cancel,
    ) -> Response:
        try:
            skip_host = any(k.lower() == "host" for k in headers)
            conn.putrequest(method, target, skip_host=skip_host, skip_accept_encoding=True)
            if not any(k.lower() == "user-agent" for k in headers):
                conn.putheader("User-Agent", self.user_agent)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = Response(self, origin, conn, cancel)
            response._start()
            return response
        except _STALE:
            if cancel.cancelled:
                raise HttpFailure("cancelled") from None
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if cancel.cancelled:
                raise HttpFailure("cancelled") from None
            raise HttpFailure(describe(exc)) from None

    def _connect(self, origin: _Origin) -> http.client.HTTPConnection:
        """A connection to an address of origin.host that the policy allows (checked after resolution)."""
        conn: http.client.HTTPConnection
        context = self.origin_contexts.get((origin.host.lower(), origin.port), self.ssl_context)
        if origin.scheme == "https":
            conn = http.client.HTTPSConnection(origin.host, origin.port, timeout=self.connect_timeout, context=context)
        else:
            conn = http.client.HTTPConnection(origin.host, origin.port, timeout=self.connect_timeout)
        conn.auto_open = 0  # never reconnect behind the policy's back: a closed connection fails instead
        try:
            sock = connect_checked(origin.host, origin.port, self.connect_timeout, self.policy)
        except OriginRefused as exc:
            raise PolicyRefused(str(exc)) from None
        except (OSError, UnicodeError, ValueError) as exc:
            raise HttpFailure(f"cannot connect to {origin.host}:{origin.port}: {describe(exc)}") from None
        try:
            if origin.scheme == "https":
                sock = context.wrap_socket(sock, server_hostname=origin.host)
            sock.settimeout(self.read_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ValueError) as exc:
            sock.close()
            raise HttpFailure(f"cannot connect to {origin.host}:{origin.port}: {describe(exc)}") from None
        conn.sock = sock
        return conn

    def _drain(self, response: Response) -> None:
        """Read a redirect's small body so its connection can be reused, then release it."""
        buffer = memoryview(bytearray(16 << 10))
        read = 0
        try:
            while read <= _DRAIN_LIMIT and (n := response.readinto(buffer)):
                read += n
        except HttpFailure:
            pass
        response.close()

    def _take(self, origin: _Origin) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def _release(self, origin: _Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < IDLE_PER_ORIGIN:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def tls_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The TLS context for origin HTTPS: the system CAs plus ca_file, or no verification at all when insecure."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load CA bundle {ca_file}: {exc}") from None
    return context
