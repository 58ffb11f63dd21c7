"""The call context an HTTP request carries for local tools and filters: the documented
`X-Toolbridge-*` headers (`local.context.HEADERS`), the request's URL for `__request__`, and
the caller's own bearer token for `__oauth_token__` when it signed in with a JWT.

Trust: the headers are the caller's and only describe its call; credentials never reach
`__request__` (`local.context.Headers` drops them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolbridge.local.context import CallContext, context_from_headers, oauth_token
from toolbridge.policy import Principal


def request_context(
    principal: Principal, headers: Mapping[str, str], *, url: str | None, method: str = "POST"
) -> CallContext:
    """The context of a call that came in an HTTP request. Raises BadRequest for a context
    header of the wrong shape."""
    token = oauth_token(headers.get("authorization"), principal.token_expires_at)
    return context_from_headers(headers, url=url, method=method, oauth_token=token)


def scope_url(scope: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """The URL an ASGI request was sent to, as the client wrote it (Host header first)."""
    scheme = scope.get("scheme", "http")
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    path = scope.get("root_path", "") + scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
