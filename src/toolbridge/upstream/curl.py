"""`--dry-run`'s view of a built request: the curl command that sends the same bytes, with every
secret value shown as `***`. It sends nothing and builds no request (`request` does).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from toolbridge.secret_names import spellings
from toolbridge.upstream.seam import UpstreamRequest

WHOLE_ONLY = 6
"""A secret's spelling shorter than this is masked only where it is a whole value (from the
start or after `=`, `:`, a space or a quote; to the end or before `&`, `;`, `,`, a space or a
quote), not inside other words."""


def curl_line(request: UpstreamRequest, secrets: Sequence[str]) -> str:
    """A curl command that sends the same request, with every secret value shown as `***`."""
    words = ["curl", "-g"]  # -g: brackets in URLs are literal, not curl globs
    words += ["-I"] if request.method == "HEAD" else ["-X", request.method]
    words.append(shlex.quote(_masked(request.url, secrets)))
    for name, value in request.headers:
        words += ["-H", shlex.quote(f"{name}: {_masked(value, secrets)}")]
    if request.body is not None:
        words += ["--data-binary", _shell_bytes(request.body, secrets)]
    return " ".join(words)


def _masked(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in sorted(spellings(secret), key=len, reverse=True):
            if len(form) >= WHOLE_ONLY:
                text = text.replace(form, "***")
            else:  # `t` would be masked in `http` too: only a whole value is this secret
                whole = rf'(?:^|(?<=[=:\s"])){re.escape(form)}(?=[&;,\s"]|$)'
                text = re.sub(whole, "***", text)
    return text


def _shell_bytes(body: bytes, secrets: Sequence[str]) -> str:
    """The body as one shell word: plain quoting for text, bash $'...' for other bytes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return shlex.quote(_masked(text, secrets))
    if text is not None:
        text = _masked(text, secrets)
        body = text.encode("utf-8")
    escaped = "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in (0x27, 0x5C) else f"\\x{b:02x}" for b in body
    )
    return f"$'{escaped}'"
