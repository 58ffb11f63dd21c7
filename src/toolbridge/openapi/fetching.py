"""Fetching documents by URL: through the server's own transport (its CA bundle, client
certificate, proxy), only to the destinations its policy allows, each fetch under one total
deadline and a size cap, and a source's fetches together under a budget.

A fetch runs in an event loop of its own with a new client (documents are read by synchronous
conversion code, in a worker thread during a reload), and the deadline bounds it whole: a
server that sends a byte a second, or spreads its headers out, is cut at the deadline however it
paces them. Redirects are followed to the document's origin or a host the policy allows;
credentials go only to the API's own origin. Trusts nothing it reads: the bytes go to the parser
(`documents`), which has limits of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from toolbridge.blocking import run_to_end
from toolbridge.errors import ConfigError, DocumentError, UpstreamUnavailable
from toolbridge.upstream.clients import USER_AGENT
from toolbridge.upstream.destinations import Destinations
from toolbridge.upstream.http11 import Http11Upstream
from toolbridge.upstream.seam import AuthParts, Timeouts, Upstream, UpstreamRequest, origin
from toolbridge.upstream.transport import Transport, open_client

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT = 30.0
"""Seconds one fetch may take in all: connecting, the headers and the whole body."""
SOURCE_BUDGET = 120.0
"""Seconds the fetches of one source (its document and every file its `$ref`s name) may take
together; past it, the fetches left fail (a `$ref` then stays unresolved, with a note)."""
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "application/json, application/yaml, application/x-yaml, text/yaml, */*;q=0.5"

Fetcher = Callable[[str], bytes]
"""Reads the bytes at an http(s) URL; raises DocumentError when it cannot."""


def http_fetcher(
    *,
    timeout: float = FETCH_TIMEOUT,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    auth: AuthParts | None = None,
    auth_origin: str | None = None,
    destinations: Destinations | None = None,
    transport: Transport | None = None,
    budget: float = SOURCE_BUDGET,
    server: str = "document",
) -> Fetcher:
    """A fetcher for document URLs: bounded in time and size, redirects only where allowed.

    Args:
        auth: credentials sent to `auth_origin` (`scheme://host:port` of the API itself: many
            services serve their description behind the same credentials); never elsewhere.
        destinations: where fetches and redirects may go (a server's policy); without it, a
            fetch stays on the origin of the URL it was asked for.
        transport: the server's CA bundle, client certificate and proxy.
        budget: seconds all fetches of this fetcher may take together.
    """
    ends = time.monotonic() + budget

    def fetch(url: str) -> bytes:
        left = min(timeout, ends - time.monotonic())
        if left <= 0:
            raise DocumentError(
                url, f"not fetched: this source's documents took over {budget:g} s in all"
            )
        policy = destinations or Destinations.of(server, [url])
        fetching = _fetch(url, policy, left, max_bytes, auth, auth_origin, transport, server)
        try:
            return run_to_end(fetching)
        except TimeoutError:
            raise DocumentError(
                url, f"no complete answer within {left:g} s (the deadline for one document)"
            ) from None

    return fetch


async def _fetch(
    url: str,
    policy: Destinations,
    seconds: float,
    max_bytes: int,
    auth: AuthParts | None,
    auth_origin: str | None,
    transport: Transport | None,
    server: str,
) -> bytes:
    try:
        client: Upstream = (
            open_client(transport, server)
            if transport is not None and not transport.plain
            else Http11Upstream(user_agent=USER_AGENT)
        )
    except ConfigError as exc:
        raise DocumentError(url, f"not fetched: {exc}") from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        async with asyncio.timeout_at(deadline):
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                refusal = policy.refusal(current)
                if refusal is not None:
                    what = "not fetched" if current == url else "redirected, and not followed"
                    raise DocumentError(url, f"{what}: {refusal}")
                headers, target = _with_auth(current, auth, auth_origin)
                request = UpstreamRequest(
                    server=server,
                    pool=f"document:{server}",
                    method="GET",
                    url=target,
                    headers=(("Accept", _ACCEPT), *headers),
                )
                left = max(0.001, deadline - loop.time())
                timeouts = Timeouts(connect=min(10.0, left), total=left)
                response = await client.send(request, timeouts=timeouts, max_bytes=max_bytes)
                location = response.header("location")
                if response.status in _REDIRECTS and location:
                    current = urljoin(current, location.strip()).split("#", 1)[0]
                    continue
                if response.status != 200:
                    raise DocumentError(url, f"fetch answered HTTP {response.status}, expected 200")
                if response.truncated:
                    raise DocumentError(
                        url, f"larger than the {max_bytes} byte limit for documents"
                    )
                _refuse_html(url, current, response.header("content-type"), response.body)
                return response.body
            raise DocumentError(url, f"more than {MAX_REDIRECTS} redirects")
    except UpstreamUnavailable as exc:
        if exc.timeout:
            raise TimeoutError from None
        raise DocumentError(url, f"could not be fetched: {exc.reason}") from None
    finally:
        await client.aclose()


def _refuse_html(url: str, final: str, content_type: str | None, body: bytes) -> None:
    """An HTML page where a document was expected is named as what it is: most often a login
    page that a document behind credentials redirects to."""
    start = body[:512].lstrip().lower()
    if not (
        (content_type or "").lower().startswith("text/html")
        or start.startswith((b"<!doctype html", b"<html"))
    ):
        return
    where = f" (redirected to {final})" if final != url else ""
    raise DocumentError(
        url,
        f"answered with an HTML page{where}, not an OpenAPI document; a login page? A document "
        "served behind the API's credentials is fetched with the server's `auth` and `headers` "
        "when it lies on the server's own origin (a `per_user` or `forward` server has no "
        "credential of its own to fetch it with: give `spec` a copy in a file)",
    )


def _with_auth(
    url: str, auth: AuthParts | None, auth_origin: str | None
) -> tuple[list[tuple[str, str]], str]:
    if auth is None or auth_origin is None or origin(url) != auth_origin:
        return [], url
    headers = list(auth.headers)
    if auth.cookies:
        headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in auth.cookies)))
    if auth.query:
        parts = urlsplit(url)
        query = "&".join(filter(None, [parts.query, urlencode(list(auth.query))]))
        url = urlunsplit(parts._replace(query=query))
    return headers, url
