"""What a caller asks the swarm for, independent of the wire format."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ContentRequest:
    """Content to download: the origin URL and how to fetch and verify it.

    headers go to the origin only (credentials): never stored on disk, never logged.
    """

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    digest: str = ""  # "sha256:<hex>" or "md5:<hex>"; when set, the task identity
    filtered_query_params: tuple[str, ...] = ()
    byte_range: str = ""  # "START-END" of the origin content, inclusive; empty for all

    def __repr__(self) -> str:
        # Keeps credentials out of logs and tracebacks.
        return f"ContentRequest(url={self.url!r}, digest={self.digest!r}, headers=<{len(self.headers)} hidden>)"
