"""The edge's decision, as a table: (settings, request) -> refused with what, or passed."""

from __future__ import annotations

import pytest

from toolbridge.config import Http
from toolbridge.serve.edge import refusal

DEFAULT = Http()
LISTED = Http(
    allowed_hosts=("api.example", "*.internal", "edge:8443"),
    allowed_origins=("https://app.example",),
)


@pytest.mark.parametrize(
    ("http", "open_mode", "method", "host", "origin", "site", "expected"),
    [
        # open mode: loopback names only, on any port
        (DEFAULT, True, "GET", "localhost:8080", None, None, None),
        (DEFAULT, True, "GET", "127.0.0.1", None, None, None),
        (DEFAULT, True, "GET", "[::1]:8080", None, None, None),
        (DEFAULT, True, "GET", "evil.example", None, None, 421),
        (DEFAULT, True, "POST", "localhost.evil.example", None, None, 421),
        (DEFAULT, True, "GET", None, None, None, None),  # HTTP/1.0 without Host: not a browser
        # open mode: loopback origins and the gateway's own
        (DEFAULT, True, "POST", "localhost:8080", "http://localhost:3000", None, None),
        (DEFAULT, True, "POST", "localhost:8080", "http://127.0.0.1:5173", None, None),
        (DEFAULT, True, "POST", "localhost:8080", "https://evil.example", None, 403),
        (DEFAULT, True, "POST", "localhost:8080", "null", None, 403),
        # cross-site and same-site requests that change state need an allowed Origin
        (DEFAULT, True, "POST", "localhost:8080", None, "cross-site", 403),
        (DEFAULT, True, "DELETE", "localhost:8080", None, "same-site", 403),
        (DEFAULT, True, "GET", "localhost:8080", None, "cross-site", None),
        (DEFAULT, True, "POST", "localhost:8080", None, "same-origin", None),
        (DEFAULT, True, "POST", "localhost:8080", None, "none", None),
        # with callers: any host, and only the gateway's own origin by default
        (DEFAULT, False, "GET", "gateway.example", None, None, None),
        (DEFAULT, False, "POST", "gateway.example", "http://gateway.example", None, None),
        (DEFAULT, False, "POST", "gateway.example", "http://localhost:3000", None, 403),
        # listed hosts and origins replace the defaults
        (LISTED, True, "GET", "api.example", None, None, None),
        (LISTED, True, "GET", "a.b.internal:9000", None, None, None),
        (LISTED, True, "GET", "edge:8443", None, None, None),
        (LISTED, True, "GET", "edge:9999", None, None, 421),
        (LISTED, False, "GET", "localhost", None, None, 421),
        (LISTED, False, "POST", "api.example", "https://app.example", "cross-site", None),
        (LISTED, True, "POST", "api.example", "http://localhost:3000", None, 403),
    ],
)
def test_the_edge_decides_by_host_origin_and_fetch_site(
    http: Http,
    open_mode: bool,
    method: str,
    host: str | None,
    origin: str | None,
    site: str | None,
    expected: int | None,
) -> None:
    found = refusal(http, open_mode, method=method, host=host, origin=origin, site=site)
    assert (found[0] if found else None) == expected


def test_a_refusal_says_what_was_refused_and_which_key_allows_it() -> None:
    assert refusal(DEFAULT, True, method="GET", host="evil.example", origin=None, site=None) == (
        421,
        "misdirected_request",
        "the Host 'evil.example' is not served here (http.allowed_hosts; in open mode, "
        "loopback names only)",
    )
    assert refusal(
        DEFAULT, False, method="POST", host="gw", origin="https://evil.example", site=None
    ) == (
        403,
        "forbidden",
        "requests from the origin 'https://evil.example' are not accepted (http.allowed_origins)",
    )
