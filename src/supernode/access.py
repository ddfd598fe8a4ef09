"""Who may register a task: before RegisterTask issues an access grant, the origin is asked whether the
registration's headers let the requester read the URL it registered (dfcommon.origin_access, the same question,
marks and caches as a dfdaemon's check of its local callers).

The question goes through an HTTP client with the supernode's fetch policy and origin TLS settings (--origin-ca,
--origin-insecure, --origin-allow/--origin-deny), with the short timeouts of a question, in threads of its own.
Content the origin serves to anyone is marked public for PUBLIC_TTL_S; a caller the origin let in is remembered
for GRANT_TTL_S under a keyed hash of its headers; registrations asking the same question at once share one probe.
The headers are never logged or stored.

- The origin lets the requester in: the grant is issued.
- It refuses (4xx): PERMISSION_DENIED, one line naming its status and the URL (without user info and filtered
  query parameters).
- Nobody could ask it (unreachable, refused by the fetch policy, 5xx, 408, 429) and the URL was never seen public:
  UNAVAILABLE with a message starting "origin ", which a dfdaemon takes as "read the origin yourself" without
  marking this supernode down (peer.supernode_answers.is_origin_failure); a URL marked public, even past its mark's
  TTL, is granted.

Seed peers (HostInfo.seed; with TLS only a --seed-cn certificate registers one) are not asked about: they read
origins for the swarm, on the supernode's orders (preheat included). Renewals on the SyncPieces stream ask nothing:
the registration's decision stands for the peer's life. A digest registered under a URL is checked against that
URL; when the task's length is known, the URL must state the same length.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from dfcommon.content import ContentRequest
from dfcommon.errors import PermissionDenied, Unavailable
from dfcommon.fetchpolicy import FetchPolicy, unreachable
from dfcommon.http_client import HttpClient, tls_context
from dfcommon.metrics import ACCESS_DECISIONS
from dfcommon.origin_access import AccessCheck, AccessRefused, AccessUndecided, check_same_content
from dfcommon.origin_probe import ProbeAnswer
from dfcommon.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0  # a registration waits for the answer: far less than a dfdaemon's RegisterTask deadline
READ_TIMEOUT_S = 5.0
PROBE_THREADS = 8  # questions asked at once (distinct ones: the same question is asked once however many wait)
EXEMPT = "exempt"
REFUSED, UNDECIDED = "refused", "undecided"
NO_CHECK = " (the supernode cannot check access: read it from the origin)"


def undecided(answer: ProbeAnswer, shown: str) -> Unavailable:
    """The error a requester gets when nobody could ask the origin: an origin without an HTTP answer is
    "unreachable or not allowed" whatever the reason (closed, filtered, not HTTP, refused by the fetch policy: the
    reason is in the supernode's log only), one that answered (5xx, 408, 429) is named with its status."""
    if answer.status is None:
        return Unavailable(f"{unreachable(shown)}{NO_CHECK}")
    return Unavailable(f"origin answered HTTP {answer.status} {answer.reason} for {shown}{NO_CHECK}")


class RegistrationCheck:
    """Asks the origin before a registration is granted (see the module doc)."""

    def __init__(self, policy: FetchPolicy, origin_ca: str | None = None, origin_insecure: bool = False) -> None:
        http = HttpClient(tls_context(origin_ca, origin_insecure), user_agent="dandelion-supernode", policy=policy)
        # Threads of their own: slow origins hold these, never the threads the in-process seed peer hashes and
        # writes in (the loop's default executor).
        self._threads = ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="access-probe")
        self.check = AccessCheck(
            http, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, executor=self._threads
        )
        self._log = RateLimitedLog(log)

    async def admit(self, request: ContentRequest, seed: bool, content_length: int = -1) -> None:
        """Nothing when the requester may have the content (seed: a seed peer's registration, not asked about;
        content_length: the task's, -1 while unknown); PermissionDenied or Unavailable (one line) otherwise."""
        if seed:
            ACCESS_DECISIONS.labels(EXEMPT).inc()
            return
        try:
            admission = await self.check.admit(request)
            check_same_content(request, admission.length, content_length)
        except AccessRefused as err:
            ACCESS_DECISIONS.labels(REFUSED).inc()
            raise PermissionDenied(str(err)) from None
        except AccessUndecided as err:
            ACCESS_DECISIONS.labels(UNDECIDED).inc()
            self._log.warning(UNDECIDED, f"registration refused: {err}")
            raise undecided(err.answer, err.shown) from None
        except PermissionDenied:
            ACCESS_DECISIONS.labels(REFUSED).inc()
            raise
        ACCESS_DECISIONS.labels(admission.how).inc()

    def close(self) -> None:
        """Close the probe's idle connections; questions still waiting are dropped."""
        self.check.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
