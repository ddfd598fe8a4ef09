"""Listings passed through to the upstream: GET/HEAD /v2/NAME/tags/list and /v2/_catalog, with n/last paging.

The upstream answers with the client's credentials (as for manifests); its body, status and Content-Type go back
as they are, and its Link header (the next page) is rewritten to point at the mirror, keeping ?ns=.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from starlette.responses import Response

from registryclient.answers import Listing
from registryclient.errors import API_VERSION_HEADER, RegistryError

CATALOG_SCOPE = "registry:catalog:*"
# distribution parses n with strconv.Atoi and refuses a negative or unparsable one; 18 digits fit an int64.
_COUNT = re.compile(r"[0-9]{1,18}")
# One link-value of RFC 8288: <URI-reference> followed by ;-parameters (rel="next", quoted values may hold commas).
_PARAM = r'\s*;\s*[^\s;,=<>"]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^\s;,<>"]*))?'
_LINK = re.compile(rf"<(?P<uri>[^<>]*)>(?P<params>(?:{_PARAM})*)")


def pagination_params(query: Mapping[str, str]) -> list[tuple[str, str]]:
    """The n and last the client sent, in that order, to forward upstream; PAGINATION_NUMBER_INVALID for a bad n."""
    params: list[tuple[str, str]] = []
    n = query.get("n", "")
    if n:  # empty means absent, as for distribution
        if not _COUNT.fullmatch(n):
            raise RegistryError.pagination_invalid(n)
        params.append(("n", n))
    last = query.get("last", "")
    if last:
        params.append(("last", last))
    return params


def mirror_link(header: str, upstream_url: str, ns: str | None, renamed: tuple[str, str] | None = None) -> str | None:
    """The upstream's Link header with each link to its own /v2/ API made relative, so it points at the mirror.

    ns (the request's ?ns=) is added to those links so the next page comes from the same upstream; renamed
    (upstream name, client's name) puts back the name the client used (Docker Hub's library/ prefix).
    Links to other hosts stay as they are. None when nothing usable is left.
    """
    upstream = urlsplit(upstream_url)
    values: list[str] = []
    for match in _LINK.finditer(header):
        target = urlsplit(urljoin(upstream_url, match["uri"].strip()))
        uri = target.geturl()
        if target.netloc == upstream.netloc and target.path.startswith("/v2/"):
            path = target.path
            if renamed is not None and path == f"/v2/{renamed[0]}/tags/list":
                path = f"/v2/{renamed[1]}/tags/list"
            query = parse_qsl(target.query, keep_blank_values=True)
            if ns and not any(key == "ns" for key, _ in query):
                query.append(("ns", ns))
            uri = path + (f"?{urlencode(query)}" if query else "")
        values.append(f"<{uri}>{match['params'].rstrip()}")
    return ", ".join(values) or None


def listing_response(listing: Listing, method: str, ns: str | None, renamed: tuple[str, str] | None = None) -> Response:
    """The client's answer: the upstream's body and Content-Type, the Link rewritten (headers only for HEAD)."""
    headers = {
        API_VERSION_HEADER[0]: API_VERSION_HEADER[1],
        "Content-Type": listing.media_type,
        "Content-Length": str(len(listing.body)),
    }
    link = mirror_link(listing.link, listing.url, ns, renamed) if listing.link else None
    if link:
        headers["Link"] = link
    return Response(b"" if method == "HEAD" else listing.body, headers=headers)
