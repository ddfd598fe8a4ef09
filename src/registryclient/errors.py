"""Registry errors as the Docker Registry v2 API reports them: a status and a JSON envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
_MAX_SHOWN = 80


def _shown(text: str) -> str:
    return repr(text[:_MAX_SHOWN] + ("..." if len(text) > _MAX_SHOWN else ""))


class RegistryError(Exception):
    """An error the client sees as {"errors":[{"code","message","detail"}]} with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        """The JSON envelope."""
        entry: dict[str, object] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()

    @classmethod
    def name_invalid(cls, name: str) -> RegistryError:
        """400: the repository name breaks the grammar."""
        return cls(400, "NAME_INVALID", f"invalid repository name {_shown(name)}", {"name": name[:_MAX_SHOWN]})

    @classmethod
    def tag_invalid(cls, tag: str) -> RegistryError:
        """400: the tag breaks the grammar."""
        return cls(400, "TAG_INVALID", f"invalid tag {_shown(tag)}", {"tag": tag[:_MAX_SHOWN]})

    @classmethod
    def digest_invalid(cls, digest: str, why: str) -> RegistryError:
        """400: the digest is malformed or unsupported."""
        return cls(400, "DIGEST_INVALID", f"invalid digest {_shown(digest)}: {why}", {"digest": digest[:_MAX_SHOWN]})

    @classmethod
    def unsupported(cls, method: str, path: str) -> RegistryError:
        """405: the mirror is read-only (no push, no delete)."""
        return cls(
            405,
            "UNSUPPORTED",
            f"{method} is not supported: this registry mirror is read-only (pull only)",
            {"method": method, "path": path[:200]},
            {"Allow": "GET, HEAD"},
        )

    @classmethod
    def pagination_invalid(cls, n: str) -> RegistryError:
        """400: the n query parameter of a listing is not a non-negative integer (as distribution answers)."""
        return cls(
            400,
            "PAGINATION_NUMBER_INVALID",
            f"invalid number of results requested: n={_shown(n)}, want a non-negative integer",
            {"n": n[:_MAX_SHOWN]},
        )

    @classmethod
    def not_found(cls, path: str) -> RegistryError:
        """404: no such registry endpoint."""
        return cls(404, "NOT_FOUND", f"no such endpoint {_shown(path)}")

    @classmethod
    def unauthorized(cls, realm: str, message: str = "authentication required") -> RegistryError:
        """401 with a Basic challenge, so clients (docker login) send credentials to the mirror."""
        return cls(401, "UNAUTHORIZED", message, None, {"WWW-Authenticate": f'Basic realm="{realm}"'})

    @classmethod
    def range_invalid(cls, header: str, length: int) -> RegistryError:
        """416: the Range header is malformed or outside the blob."""
        return cls(
            416,
            "RANGE_INVALID",
            f"invalid range {_shown(header)} for a blob of {length} bytes: want bytes=START- or bytes=START-END",
            None,
            {"Content-Range": f"bytes */{length}"},
        )

    @classmethod
    def unavailable(cls, message: str, status: int = 503) -> RegistryError:
        """503 (or 504 for timeouts): the upstream cannot be reached or did not answer in time."""
        return cls(status, "UNAVAILABLE", message)


UPSTREAM_CODES = {
    400: "UNSUPPORTED",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NOT_FOUND",
    429: "TOOMANYREQUESTS",
}

# What a bare 404 (no registry error body) from upstream means, by what was asked for.
_UNKNOWN_CODES = {"manifest": "MANIFEST_UNKNOWN", "tags": "NAME_UNKNOWN", "catalog": "NOT_FOUND"}


def upstream_error(status: int, body: bytes, upstream: str, what: str) -> RegistryError:
    """The upstream's error answer passed on, keeping its registry error code when it sent one."""
    code, message, detail = UPSTREAM_CODES.get(status, "UNAVAILABLE"), f"upstream {upstream} answered {status}", None
    try:
        entry = json.loads(body)["errors"][0]
        code, message, detail = str(entry["code"]), str(entry.get("message", message)), entry.get("detail")
    except (ValueError, KeyError, IndexError, TypeError):
        if status == 404:
            code = _UNKNOWN_CODES.get(what, "BLOB_UNKNOWN")
    passed = status if status in (400, 401, 403, 404, 429) else 502
    return RegistryError(passed, code, message, detail)
