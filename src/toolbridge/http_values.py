"""What a config's values must be for HTTP to carry them: header names and values a request
can hold, base URLs a request can go to. Pydantic validators (ValueError), pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from toolbridge.tools import HEADER_NAME, UNSENDABLE


def absolute_url(value: str | None) -> str | None:
    """An absolute http(s) URL; empty (`${BASE_URL:-}` unset) is none given. The value is
    never shown in the error: a URL may hold a password."""
    if value == "":
        return None
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                "expected an absolute http(s) URL, found a value that does not start with "
                "http:// or https://"
            )
        if not parts.hostname:
            raise ValueError("expected an absolute http(s) URL, found no host")
        if "@" in parts.netloc:
            # Calls would not send it (curl lines would): credentials are `auth`'s to say.
            raise ValueError(
                "expected a URL without user:password@; give the credentials in `auth` "
                "(type: basic)"
            )
    return value


def sendable_headers(value: Mapping[str, str]) -> Mapping[str, str]:
    """Names HTTP allows; values without line breaks or control characters (never shown: a
    header value may be a secret)."""
    for name, text in value.items():
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is no header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            )
        if UNSENDABLE.search(text):
            raise ValueError(
                f"the value of {name!r} holds a line break or control character, which no "
                "HTTP header can carry"
            )
    return value
