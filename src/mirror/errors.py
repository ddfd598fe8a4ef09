"""Registry errors at the mirror's edge: the HTTP response a client sees, and swarm failures as registry errors."""

from __future__ import annotations

from starlette.responses import Response

from dfcommon.errors import DandelionError, DigestMismatch, InvalidArgument, LocalDiskError, LocalDiskFull, OriginError
from registryclient.errors import API_VERSION_HEADER, RegistryError


def error_response(error: RegistryError, head_only: bool = False) -> Response:
    """The HTTP response (headers only for HEAD, as registries do)."""
    body = error.body()
    headers = {
        **error.headers,
        API_VERSION_HEADER[0]: API_VERSION_HEADER[1],
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": str(len(body)),
    }
    return Response(b"" if head_only else body, status_code=error.status, headers=headers)


def transfer_error(exc: DandelionError, base: str) -> RegistryError:
    """A swarm failure (before any byte was sent) as the registry error a client understands."""
    if isinstance(exc, OriginError) and exc.http_status is not None:
        status = exc.http_status
        if status == 401:
            return RegistryError(401, "UNAUTHORIZED", f"upstream {base} refused the blob: {exc}")
        if status == 403:
            return RegistryError(403, "DENIED", f"upstream {base} denied the blob: {exc}")
        if status in (404, 410):
            return RegistryError(404, "BLOB_UNKNOWN", f"blob unknown to upstream {base}: {exc}")
        if status == 429:
            return RegistryError(429, "TOOMANYREQUESTS", f"upstream {base} is rate limiting: {exc}")
        return RegistryError(502, "UNAVAILABLE", f"fetching the blob from {base} failed: {exc}")
    if isinstance(exc, DigestMismatch):
        return RegistryError(502, "UNAVAILABLE", f"blob content does not match its digest: {exc}")
    if isinstance(exc, InvalidArgument):
        return RegistryError(400, "UNSUPPORTED", str(exc))
    if isinstance(exc, LocalDiskFull):
        # Not 429 (docker would wait and ask again, forever) nor 503 (a passing outage): 507 Insufficient Storage.
        # docker retries a 5xx a few times, then fails the pull showing the status line, which names the cause
        # (its client does not read the body of a 5xx); other clients read the message.
        return RegistryError(507, "UNAVAILABLE", f"the mirror cannot cache the blob: {exc}")
    if isinstance(exc, LocalDiskError):
        return RegistryError(500, "UNKNOWN", f"the mirror cannot cache the blob: {exc}")
    return RegistryError.unavailable(f"the swarm cannot deliver the blob from {base}: {exc}")
