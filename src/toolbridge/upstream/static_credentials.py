"""Static credentials: the config's `headers` and auth values checked once at load (header names,
values no header can carry), Basic encoding, which values are secrets, and `redact`, which masks
them in text. Nothing per call: the per-server `Credentials` is in `credentials`, tokens in
`oauth2`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from toolbridge.config import Server
from toolbridge.errors import ConfigError
from toolbridge.http_values import header_problem
from toolbridge.secret_names import spellings
from toolbridge.upstream.seam import Headers

MIN_SECRET_LENGTH = 4
"""Shorter values are not masked: hiding every `a` or `42` in a log would hide the log."""

_SECRET_NAME = re.compile(r"auth|token|secret|key|passw|cookie|session|credential|signature", re.I)


def static_headers(server: Server) -> Headers:
    out: list[tuple[str, str]] = []
    for name, value in server.headers.items():  # names and values checked by config.Server
        out.append(checked_header(server.id, name, value, f"headers.{name}"))
    seen: set[str] = set()
    for name, _ in out:
        if name.lower() in seen:
            raise ConfigError(f"server {server.id!r}: headers: {name!r} is given twice")
        seen.add(name.lower())
    return tuple(out)


def checked_header(server: str, name: str, value: str, key: str) -> tuple[str, str]:
    if header_problem(value) is not None:
        # The value is a secret: say which key holds it, never what it is.
        raise ConfigError(
            f"server {server!r}: {key} contains a line break, a control character or one "
            "outside ISO-8859-1, which no HTTP header can carry"
        )
    return (name, value)


def header_secrets(headers: Headers) -> tuple[str, ...]:
    out: list[str] = []
    for name, value in headers:
        if _SECRET_NAME.search(name):
            out += credential_of(value)
    return tuple(dict.fromkeys(out))


def credential_of(value: str) -> tuple[str, ...]:
    """The value, and the credential alone when it follows a scheme word (`Bearer abc`)."""
    scheme, _, rest = value.partition(" ")
    if rest.strip() and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", scheme):
        return (value, rest.strip())
    return (value,)


def basic_credentials(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret (and its URL-encoded forms) replaced by `***`.

    Values shorter than MIN_SECRET_LENGTH are left alone. Longer secrets are matched first, so
    a secret that contains another is masked whole.
    """
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            # A query API key or a forwarded token shows up percent-encoded in URLs and curl lines.
            forms.update(spellings(secret))
    if not forms:
        return text
    pattern = "|".join(re.escape(s) for s in sorted(forms, key=len, reverse=True))
    return re.sub(pattern, "***", text)
