"""The base URL an operation is sent to, as its document states it.

The first `servers` entry of the operation, else of its path item, else of the document (2.0:
`schemes` + `host` + `basePath`), with variables at their defaults and any `user:password@`
left out. A document with no `servers` (2.0: no `host`) is served from `/`, as the
specifications say, and a relative URL is resolved against where the document came from: for a
document read from a URL that is its origin; a document read from a file names no host, so its
operations have no base URL until the config gives `base_url` (`NO_BASE_URL` says so). A
`base_url` from the config overrides this; that choice is `convert`'s.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from toolbridge.openapi import swagger2
from toolbridge.openapi.definitions import Version


def server_url(
    operation: dict[str, Any],
    path_item: dict[str, Any],
    document: dict[str, Any],
    version: Version,
    uri: str,
) -> str | None:
    """The operation's absolute base URL, or None when a file document names no host."""
    if version == "2.0":
        url = swagger2.server_url(document)
    else:
        url = None
        for holder in (operation, path_item, document):
            servers = holder.get("servers")
            if isinstance(servers, list) and servers and isinstance(servers[0], dict):
                url = _expand_server(servers[0])
                break
    if urlsplit(uri).scheme in ("http", "https"):
        # OpenAPI: without `servers`, the server is `/`, relative to the document's URL.
        return _without_userinfo(urljoin(uri, "/" if url is None else url))
    url = url or "/"
    return _without_userinfo(url) if urlsplit(url).scheme in ("http", "https") else None


def _without_userinfo(url: str) -> str:
    """`url` without a `user:password@` (a document's, never sent: calls carry the config's
    credentials only), so that no note, listing or error can show it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


NO_BASE_URL = (
    "the document names no server host (no `servers`, or a relative one) and was read from a "
    "file: its tools can be listed but not called until the config gives this server a `base_url`"
)


def _expand_server(server: dict[str, Any]) -> str | None:
    url = server.get("url")
    if not isinstance(url, str):
        return None
    variables = server.get("variables")
    if isinstance(variables, dict):
        for name, variable in variables.items():
            if isinstance(variable, dict) and "default" in variable:
                url = url.replace("{" + str(name) + "}", str(variable["default"]))
    return url
