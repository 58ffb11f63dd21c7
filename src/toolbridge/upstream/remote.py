"""One remote call: `invoke` builds the request (`request`), sends it, follows redirects that stay
on the base URL's origin and under its base path, sends an idempotent request once more when
the upstream asks to be retried (503 or 429 with `Retry-After`) within the call's deadline, and
shapes the answer (`answers`).

The only I/O is `Upstream.send` (and the wait before a retry). Nothing here validates arguments
against the input schema (the gateway did that) or decides credentials (`AuthParts` arrive
ready-made); where requests may go is the `Upstream`'s to check (`routes`).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from toolbridge.blocking import off_loop
from toolbridge.errors import UpstreamUnavailable
from toolbridge.tools import HttpOperation, ToolResult
from toolbridge.upstream.answers import shape_result
from toolbridge.upstream.request import Base, build_request, inside, split_base
from toolbridge.upstream.seam import (
    IDEMPOTENT,
    AuthParts,
    Headers,
    Timeouts,
    Upstream,
    UpstreamRequest,
    UpstreamResponse,
    timed_out,
)
from toolbridge.upstream.styles import path_enc

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""The default cap on an upstream answer's body; more is cut and marked truncated."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRIED = frozenset({429, 503})
"""Statuses after which an idempotent request is sent once more, when `Retry-After` says when
and that moment falls within the call's deadline."""


async def invoke(
    op: HttpOperation,
    arguments: Mapping[str, Any],
    *,
    upstream: Upstream,
    base_url: str | None,
    auth: AuthParts = AuthParts(),  # noqa: B008 - frozen, so one shared default is safe
    headers: Headers = (),
    timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen, so one shared default is safe
    max_bytes: int = MAX_RESPONSE_BYTES,
    max_redirects: int = 5,
    tool: str | None = None,
    caller: str | None = None,
) -> ToolResult:
    """Build the request, send it, follow redirects that stay on the base URL, retry once when
    asked to, shape the answer. Everything happens within `timeouts.total` of the start.

    Raises UpstreamUnavailable (no usable base URL, or the upstream cannot be reached) and
    InvalidArguments; an upstream 4xx/5xx, or a redirect off the base URL, is a result.
    `caller`: whose own credentials `auth` holds (`per_user`, `forward`), if anyone's: their
    requests share connections with no one else's (`UpstreamRequest.pool`).
    """
    if base_url is None or urlsplit(base_url).scheme not in ("http", "https"):
        found = (
            "the document names no server"
            if base_url is None
            else f"the server URL {base_url!r} is not an absolute http(s) URL"
        )
        raise UpstreamUnavailable(
            op.server, f"no base URL: set base_url in the config for this server ({found})"
        )
    request = build_request(
        op, arguments, base_url=base_url, auth=auth, headers=headers, tool=tool, caller=caller
    )
    base = split_base(op, base_url)
    try:
        return await _exchange(
            request, base, upstream, timeouts, max_bytes, max_redirects, auth.query
        )
    except UpstreamUnavailable as exc:
        if not exc.sent or op.method.upper() in IDEMPOTENT:
            raise
        # A request that may have arrived got no answer: the model must not assume either way.
        method = op.method.upper()
        unknown = f"; the outcome is unknown: the {method} may or may not have taken effect"
        raise UpstreamUnavailable(
            op.server, exc.reason + unknown, timeout=exc.timeout, sent=True
        ) from None


async def _exchange(
    request: UpstreamRequest,
    base: Base,
    upstream: Upstream,
    timeouts: Timeouts,
    max_bytes: int,
    max_redirects: int,
    credential_query: Headers = (),
) -> ToolResult:
    """Send, follow redirects, retry once when asked, all within `timeouts.total`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.total
    response = await upstream.send(request, timeouts=timeouts, max_bytes=max_bytes)
    redirects, retried = 0, False
    while True:
        following = (
            _redirect(request, response, base, credential_query)
            if redirects < max_redirects
            else None
        )
        if following is not None:
            redirects += 1
        elif not retried and (delay := retry_delay(request, response)) is not None:
            if delay >= deadline - loop.time():
                break  # the upstream's wait does not fit in this call: its answer stands
            retried = True
            await asyncio.sleep(delay)
            following = request
        else:
            break
        request = following
        left = deadline - loop.time()
        if left <= 0:
            raise timed_out(request, timeouts.total, False)
        rest = Timeouts(connect=min(timeouts.connect, left), total=left)
        response = await upstream.send(request, timeouts=rest, max_bytes=max_bytes)
    result = await off_loop(len(response.body), shape_result, response)
    if response.status in REDIRECTS:
        # Its Location (and a Content-Location) may hold what the upstream put in the query:
        # `_unfollowed` says where it led without it.
        kept = tuple(h for h in result.headers if h[0] not in ("location", "content-location"))
        result = replace(result, headers=kept)
        if result.result is None:
            said = _unfollowed(request, response, base, redirects >= max_redirects)
            result = replace(result, result=said)
    return result


def _unfollowed(
    request: UpstreamRequest, response: UpstreamResponse, base: Base, too_many: bool
) -> str:
    """What the model reads of a redirect that was not followed (its answer had no body)."""
    location = (response.header("location") or "").strip()
    if not location:
        return f"the upstream answered {response.status} (a redirect) without a Location"
    target = urlsplit(urljoin(request.url, location))
    shown = f"{target.scheme}://{target.netloc.rpartition('@')[2]}{target.path}"
    if too_many:
        why = "it is one redirect too many"
    else:
        why = f"it leaves {base.origin}{base.path or '/'}, where this server's calls stay"
    return f"the upstream redirected to {shown}; not followed: {why}"


def retry_delay(request: UpstreamRequest, response: UpstreamResponse) -> float | None:
    """Seconds to wait before sending `request` again, when its answer asks for a retry (503
    or 429 with `Retry-After`: seconds or an HTTP date) and sending it twice is harmless."""
    if response.status not in RETRIED or request.method.upper() not in IDEMPOTENT:
        return None
    value = (response.header("retry-after") or "").strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 5.6.7: an HTTP date is in GMT; without a zone it is no date
    return max(0.0, when.timestamp() - time.time())


def _redirect(
    request: UpstreamRequest,
    response: UpstreamResponse,
    base: Base,
    credential_query: Headers = (),
) -> UpstreamRequest | None:
    """The request a redirect asks for, when it stays on the base URL; else None. A query
    credential (an API key `in: query`) goes along, as header and cookie ones do."""
    if response.status not in REDIRECTS:
        return None
    location = response.header("location")
    if not location:
        return None
    target = urljoin(request.url, location.strip())
    if not inside(target, base):
        return None
    method, body, headers = request.method, request.body, request.headers
    # 303 always, and 301/302 after a POST, continue as GET without the body (as curl does).
    if response.status == 303 or (response.status in (301, 302) and method == "POST"):
        method = "GET" if method != "HEAD" else "HEAD"
        body = None
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-type")
    target = target.split("#", 1)[0]
    if credential_query:
        given = {unquote(pair.partition("=")[0]) for pair in urlsplit(target).query.split("&")}
        added = "&".join(
            f"{path_enc(name)}={path_enc(value)}"
            for name, value in credential_query
            if name not in given
        )
        if added:
            target += ("&" if urlsplit(target).query else "?") + added
    return UpstreamRequest(
        server=request.server,
        method=method,
        url=target,
        headers=headers,
        body=body,
        pool=request.pool,
    )
