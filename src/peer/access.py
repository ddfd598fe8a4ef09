"""Local callers' access: before content from this host's cache or the swarm goes to a local caller (dfget), the
origin is asked, with the caller's own headers, whether it lets that caller read that URL.

The question, the public marks and the callers' grants are dfcommon.origin_access's (shared with the supernode's
check of registrations), asked through the peer's origin client, so the fetch policy, the origin TLS settings and
the redirect rules of back-to-source apply. What is the peer's own: the codes a refusal carries to dfget (401
UNAUTHENTICATED, 404 NOT_FOUND, else PERMISSION_DENIED), and the length check of content named by digest.

Only DaemonService.Download and the one-shot peer ask: the registry mirror asks its upstream itself before it
calls the transferer in-process, and preheat and the seed role are no local callers.
"""

from __future__ import annotations

import grpc

from dfcommon import origin_access
from dfcommon.origin_access import check_same_content

__all__ = ["AccessCheck", "check_same_content"]


class AccessCheck(origin_access.AccessCheck):
    """Decides whether a local caller may have content from this host's cache or the swarm."""

    def refusal_code(self, status: int) -> grpc.StatusCode:
        """401 UNAUTHENTICATED, 404 and 410 NOT_FOUND, any other refusal PERMISSION_DENIED."""
        return {
            401: grpc.StatusCode.UNAUTHENTICATED,
            404: grpc.StatusCode.NOT_FOUND,
            410: grpc.StatusCode.NOT_FOUND,
        }.get(status, grpc.StatusCode.PERMISSION_DENIED)
