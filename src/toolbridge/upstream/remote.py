"""One remote call: `invoke` builds the request (`request`), sends it, follows redirects that stay
on the base URL's origin and under its base path, and shapes the answer (`answers`).

The only I/O is `Upstream.send`. Nothing here validates arguments against the input schema (the
gateway did that) or decides credentials (`AuthParts` arrive ready-made).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from toolbridge.errors import UpstreamUnavailable
from toolbridge.tools import HttpOperation, ToolResult
from toolbridge.upstream.answers import shape_result
from toolbridge.upstream.request import Base, build_request, inside, split_base
from toolbridge.upstream.seam import (
    AuthParts,
    Headers,
    Timeouts,
    Upstream,
    UpstreamRequest,
    UpstreamResponse,
)

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""The default cap on an upstream answer's body; more is cut and marked truncated."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})


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
) -> ToolResult:
    """Build the request, send it, follow redirects that stay on the base URL, shape the answer.

    Raises UpstreamUnavailable (no usable base URL, or the upstream cannot be reached) and
    InvalidArguments; an upstream 4xx/5xx, or a redirect off the base URL, is a result.
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
    request = build_request(op, arguments, base_url=base_url, auth=auth, headers=headers, tool=tool)
    base = split_base(op, base_url)
    response = await upstream.send(request, timeouts=timeouts, max_bytes=max_bytes)
    for _ in range(max_redirects):
        following = _redirect(request, response, base)
        if following is None:
            break
        request = following
        response = await upstream.send(request, timeouts=timeouts, max_bytes=max_bytes)
    return shape_result(response)


def _redirect(
    request: UpstreamRequest, response: UpstreamResponse, base: Base
) -> UpstreamRequest | None:
    """The request a redirect asks for, when it stays on the base URL; else None."""
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
    return UpstreamRequest(
        server=request.server, method=method, url=target, headers=headers, body=body
    )
