"""The Link header of a listing page, rewritten to point at the mirror under the name the client used."""

from __future__ import annotations

import pytest

from mirror.listing import mirror_link

UPSTREAM = "https://harbor.internal/v2/hub-cache/library/alpine/tags/list?n=2"
NEXT = 'rel="next"'


@pytest.mark.parametrize(
    ("header", "ns", "renamed", "expected"),
    [
        # The upstream's own API, relative or absolute, becomes a path on the mirror.
        (
            f"</v2/hub-cache/library/alpine/tags/list?last=b&n=2>; {NEXT}",
            None,
            None,
            f"</v2/hub-cache/library/alpine/tags/list?last=b&n=2>; {NEXT}",
        ),
        (f"<https://harbor.internal/v2/_catalog?last=x&n=2>; {NEXT}", None, None, f"</v2/_catalog?last=x&n=2>; {NEXT}"),
        # A project prefix (and library/) taken off again: the client asked for alpine; ?ns= stays on the link.
        (
            f"</v2/hub-cache/library/alpine/tags/list?last=b&n=2>; {NEXT}",
            "docker.io",
            ("hub-cache/library/alpine", "alpine"),
            f"</v2/alpine/tags/list?last=b&n=2&ns=docker.io>; {NEXT}",
        ),
        (
            f"</v2/hub-cache/library/alpine/tags/list?n=2&ns=quay.io>; {NEXT}",
            "docker.io",
            ("hub-cache/library/alpine", "alpine"),
            f"</v2/alpine/tags/list?n=2&ns=quay.io>; {NEXT}",
        ),
        # Links elsewhere stay as they are; a header with no link-value gives nothing.
        (
            f"<https://cdn.example/page2>; {NEXT}",
            "docker.io",
            ("hub-cache/library/alpine", "alpine"),
            f"<https://cdn.example/page2>; {NEXT}",
        ),
        ("garbage", None, None, None),
    ],
)
def test_the_next_page_link_points_at_the_mirror_under_the_clients_name(
    header: str, ns: str | None, renamed: tuple[str, str] | None, expected: str | None
) -> None:
    assert mirror_link(header, UPSTREAM, ns, renamed) == expected
