"""Which values are secrets by their name: a valve's, a header's, a URL query parameter's.

One rule for every place that must tell (redaction of answers and logs, the store's sealing of
what the admin API registers, the admin API's Valves): a name that says key, token, secret,
password, credential, authorization or cookie holds a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

SECRET_NAME = re.compile(r"key|token|secret|passw(?:or)?d|credential|authorization|cookie", re.I)
"""Names (of valves, headers, URL query parameters) whose values are secrets."""


def url_secrets(url: str) -> Iterator[str]:
    """A URL's password and the values of its query parameters named like secrets."""
    try:
        parts = urlsplit(url)
        if parts.password:
            yield parts.password
    except ValueError:
        return
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if SECRET_NAME.search(name):
            yield value
