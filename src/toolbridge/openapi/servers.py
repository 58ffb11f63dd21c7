"""The base URL an operation is sent to, as its document states it.

The first `servers` entry of the operation, else of its path item, else of the document (2.0:
`schemes` + `host` + `basePath`), with variables at their defaults and a relative URL (or,
naming none, `/`) resolved against a document read from a URL. A `base_url` from the config
overrides this; that choice is `convert`'s.
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
    """The operation's base URL, or None when the document names none."""
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
        return urljoin(uri, "/" if url is None else url)
    return url


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
