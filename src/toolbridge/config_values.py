"""The kinds of value `toolbridge.yaml`'s keys take, beyond pydantic's own: HTTP methods, allowed
hosts, proxy URLs, and numbers that are not booleans.

Pure checks over values already read from YAML (or an admin API entry); each raises ValueError
with what was expected and what was found, which config_file.py puts at the key's line.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from toolbridge.hosts import HostError, host_port

METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


def _method(value: str) -> str:
    if value.upper() not in METHODS:
        raise ValueError(f"unknown HTTP method {value!r} (expected one of {', '.join(METHODS)})")
    return value.upper()


def _allowed_host(value: str) -> str:
    try:
        host_port(value)
    except HostError as exc:
        raise ValueError(str(exc)) from None
    return value


def _proxy_url(value: str) -> str:
    scheme, _, rest = value.partition("://")
    host = rest.rpartition("@")[2].split("/")[0]
    if scheme.lower() not in ("http", "https") or not host:
        raise ValueError(
            "expected an http:// or https:// proxy URL with a host (socks proxies are not "
            "supported)"
        )
    return value


HttpMethod = Annotated[str, AfterValidator(_method)]
AllowedHost = Annotated[str, AfterValidator(_allowed_host)]
ProxyUrl = Annotated[str, AfterValidator(_proxy_url)]


def _not_a_boolean(value: Any) -> Any:
    """YAML reads `true` (or `yes`, `on`) as a boolean, which pydantic's lax mode would take for
    the number 1; a string such as a `${VAR}`'s "30" is still read as a number."""
    if isinstance(value, bool):
        raise ValueError("expected a number, found a boolean")
    return value


Int = Annotated[int, BeforeValidator(_not_a_boolean)]
"""An integer key's value: a boolean is refused, not read as 0 or 1."""
Float = Annotated[float, BeforeValidator(_not_a_boolean)]
"""A number key's value: a boolean is refused, not read as 0 or 1."""
