"""What a config's values must be for HTTP to carry them: header names and values a request
can hold, base URLs a request can go to. Pydantic validators (ValueError), pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from toolbridge.tools import CONNECTION_HEADERS, HEADER_NAME


def absolute_url(value: str | None) -> str | None:
    """An absolute http(s) URL. Empty is an error, not none given: a `${BASE_URL}` whose
    variable a deploy left empty would send the calls, with the server's credentials, wherever
    the document's own `servers` say. The value is never shown in the error: a URL may hold a
    password."""
    if value == "":
        raise ValueError(
            "expected an absolute http(s) URL, found an empty value (leave the key out to call "
            "the servers the document names)"
        )
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
    """Names HTTP allows, other than the connection's own (Host, framing, hop-by-hop: the
    gateway writes those, and would leave such a header out); values without line breaks or
    control characters (never shown: a header value may be a secret)."""
    for name, text in value.items():
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is no header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            )
        if name.lower() in CONNECTION_HEADERS:
            raise ValueError(
                f"{name!r} belongs to the gateway's own connection to the upstream, which sets "
                "it (Host from the server's URL); leave it out"
            )
        if header_problem(text) is not None:
            raise ValueError(
                f"the value of {name!r} holds a line break, a control character or one outside "
                "ISO-8859-1, which no HTTP header can carry"
            )
        if not text.strip():
            # Almost always a `${VAR:-}` whose variable is not set; and a document parameter
            # of that name is no argument any more (the config sets it), so every call would
            # send it empty.
            raise ValueError(f"the value of {name!r} is empty (is its environment variable set?)")
    return value


FORBIDDEN_IN_HEADERS = re.compile(r"[^\t\x20-\x7e\xa0-\xff]")
"""What no header value (nor a multipart part's Content-Type) may hold: control characters (CR,
LF and NUL would split or end the header; ESC, DEL and the rest have no business there) and
characters past U+00FF, which have no byte to be sent as. What is left is RFC 9110's field
value: tabs, spaces, visible ASCII and the Latin-1 letters."""


def header_problem(text: str) -> str | None:
    """Why `text` cannot be a header value (naming the first character that cannot), or None."""
    found = FORBIDDEN_IN_HEADERS.search(text)
    if found is None:
        return None
    char = found.group()
    what = "the control character" if ord(char) < 0xA0 else "the character"
    return (
        f"a header value cannot hold {what} U+{ord(char):04X} (at {found.start()}); "
        "tabs, spaces, visible ASCII and Latin-1 letters can be sent"
    )
