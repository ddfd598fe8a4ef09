"""supernode.access with a scripted origin and a fake clock: the TTLs of public marks and caller answers, the last
word of a public URL when the origin is gone, seed exemption, the digest's length, and the message an honest dfdaemon
reads as "read the origin yourself"."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import PermissionDenied, Unavailable
from dfcommon.fetchpolicy import FetchPolicy
from dfcommon.origin_access import GRANT_TTL_S, PUBLIC_TTL_S
from dfcommon.origin_probe import ProbeAnswer
from peer.supernode_answers import FAILOVER_CODES, is_origin_failure
from supernode.access import RegistrationCheck

URL = "http://origin.test/v2/app/blobs/sha256:ab"
TOKEN = {"Authorization": "Bearer t"}


class Origin:
    """Answers by (URL, Authorization): public URLs to anyone, private ones to TOKEN only; None: unreachable."""

    def __init__(self) -> None:
        self.public = {URL + "?pub": 100}
        self.private = {URL: 100}
        self.up = True
        self.asked: list[tuple[str, str]] = []

    async def ask(self, url: str, headers: Mapping[str, str]) -> ProbeAnswer:
        auth = headers.get("Authorization", "")
        self.asked.append((url, auth))
        if not self.up:
            return ProbeAnswer(None, "cannot connect to origin.test:80: connection refused")
        if url.endswith("?busy=1"):
            return ProbeAnswer(429, "Too Many Requests")
        if url.endswith("?failing=1") or (url.endswith("?hiccup=1") and len(self.asked) == 1):
            return ProbeAnswer(500, "Internal Server Error")
        if url.endswith("?hiccup=1"):
            return ProbeAnswer(200, "OK", 100)
        if url in self.public:
            return ProbeAnswer(200, "OK", self.public[url])
        if url in self.private:
            return (
                ProbeAnswer(200, "OK", self.private[url]) if auth == TOKEN["Authorization"] else ProbeAnswer(401, "No")
            )
        return ProbeAnswer(404, "Not Found")


@pytest.fixture
def now() -> list[float]:
    return [1000.0]


@pytest.fixture
def setup(now: list[float]) -> tuple[RegistrationCheck, Origin]:
    check = RegistrationCheck(FetchPolicy.build((), (), [("127.0.0.1", 8002, "gRPC")], "the supernode"))
    origin = Origin()
    check.check.probe.ask = origin.ask  # type: ignore[method-assign]
    check.check.clock = lambda: now[0]
    return check, origin


async def test_public_marks_and_caller_answers_live_their_ttl(
    setup: tuple[RegistrationCheck, Origin], now: list[float]
) -> None:
    check, origin = setup
    for _ in range(3):
        await check.admit(ContentRequest(URL + "?pub"), seed=False)
        await check.admit(ContentRequest(URL, headers=TOKEN), seed=False)
    assert origin.asked == [(URL + "?pub", ""), (URL, ""), (URL, "Bearer t")]
    now[0] += GRANT_TTL_S
    await check.admit(ContentRequest(URL, headers=TOKEN), seed=False)  # the private mark stands: only its question
    assert origin.asked[3:] == [(URL, "Bearer t")]
    now[0] += PUBLIC_TTL_S
    await check.admit(ContentRequest(URL + "?pub"), seed=False)
    assert origin.asked[4:] == [(URL + "?pub", "")]


async def test_a_gone_origin_leaves_public_urls_granted_and_private_ones_refused(
    setup: tuple[RegistrationCheck, Origin], now: list[float]
) -> None:
    check, origin = setup
    await check.admit(ContentRequest(URL + "?pub"), seed=False)
    origin.up = False
    now[0] += 10 * PUBLIC_TTL_S  # long expired: still its last word
    await check.admit(ContentRequest(URL + "?pub"), seed=False)
    with pytest.raises(Unavailable) as caught:
        await check.admit(ContentRequest("http://u:pw@origin.test/v2/app/blobs/sha256:ab", headers=TOKEN), seed=False)
    message = str(caught.value)
    assert message == (
        f"origin unreachable or not allowed: {URL} (the supernode cannot check access: read it from the origin)"
    )
    # An honest dfdaemon reads it as the origin's failure, not its supernode's: it reads the origin itself.
    error = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), message)
    assert error.code() in FAILOVER_CODES and is_origin_failure(error)


async def test_refusals_name_the_status_never_the_headers(setup: tuple[RegistrationCheck, Origin]) -> None:
    check, origin = setup
    origin.private[URL + "?sig=x"] = 100
    for headers in ({}, {"Authorization": "Bearer wrong-secret"}):
        with pytest.raises(PermissionDenied) as caught:
            await check.admit(ContentRequest(URL + "?sig=x", headers=headers, filtered_query_params=("sig",)), False)
        assert str(caught.value) == f"access refused: origin answered HTTP 401 No for {URL}"
    with pytest.raises(PermissionDenied, match="HTTP 404"):
        await check.admit(ContentRequest(URL + "?missing"), seed=False)


async def test_seed_peers_are_not_asked_about(setup: tuple[RegistrationCheck, Origin]) -> None:
    check, origin = setup
    await check.admit(ContentRequest(URL), seed=True)
    assert origin.asked == []


async def test_a_digest_under_a_url_of_other_content_is_refused(setup: tuple[RegistrationCheck, Origin]) -> None:
    check, _ = setup
    layer = ContentRequest(URL + "?pub", digest="sha256:" + "0" * 64)
    await check.admit(layer, seed=False, content_length=100)
    await check.admit(layer, seed=False)  # the task's length not known yet
    with pytest.raises(PermissionDenied, match="serves 100 bytes, not the 5000 bytes of sha256:0"):
        await check.admit(layer, seed=False, content_length=5000)


async def test_an_origin_asking_to_be_asked_later_decides_nothing(setup: tuple[RegistrationCheck, Origin]) -> None:
    check, _ = setup
    with pytest.raises(Unavailable) as caught:
        await check.admit(ContentRequest(URL + "?busy=1"), seed=False)
    assert str(caught.value) == (
        f"origin answered HTTP 429 Too Many Requests for {URL}?busy=1 "
        "(the supernode cannot check access: read it from the origin)"
    )


async def test_an_origin_that_failed_once_is_asked_again(setup: tuple[RegistrationCheck, Origin]) -> None:
    """A server error is no access decision (a pull-through cache answered 500 to a HEAD that met its own fetch of
    the blob): asked once more, the answer decides."""
    check, origin = setup
    await check.admit(ContentRequest(URL + "?hiccup=1"), seed=False)
    assert len(origin.asked) == 2


async def test_an_origin_that_keeps_failing_is_asked_twice_then_decides_nothing(
    setup: tuple[RegistrationCheck, Origin],
) -> None:
    check, origin = setup
    with pytest.raises(Unavailable, match="origin answered HTTP 500 Internal Server Error"):
        await check.admit(ContentRequest(URL + "?failing=1"), seed=False)
    assert len(origin.asked) == 2
