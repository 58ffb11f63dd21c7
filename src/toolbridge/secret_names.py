"""Which values are secrets by their name (a valve's, a header's, a URL query parameter's), and
how a secret may be spelled where it leaves.

One rule for every place that must tell (redaction of answers and logs, the store's sealing of
what the admin API registers, the admin API's Valves): a name that says key, token, secret,
password, credential, authorization or cookie holds a secret. One list of spellings for every
place that masks them (answers and logs, error messages, `--dry-run`'s curl line).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

SECRET_NAME = re.compile(
    r"key|token|secret|passw(?:or)?d|credential|authorization|cookie|signature", re.I
)
"""Names (of valves, headers, URL query parameters) whose values are secrets."""
STORE_KEY_ENV = "TOOLBRIDGE_SECRET_KEY"
"""The environment variable holding the state store's key (or comma-separated keys, newest
first): the process's own secret, which no config names."""
SECRET_QUERY_NAME = re.compile(rf"{SECRET_NAME.pattern}|^sig$", re.I)
"""URL query parameters whose values are secrets: those, and a presigned URL's `sig` (an Azure
shared access signature's; S3's and Google's are `X-Amz-Signature`, `X-Goog-Signature`)."""


def url_secrets(url: str, *, name_as_token: bool = True) -> Iterator[str]:
    """A URL's password (or its user name, when it has no password: `https://TOKEN@host/`,
    as Git hosts take a token; not with `name_as_token=False`, for a database's or Redis's URL,
    whose user name is a role), and the values of its query parameters named like secrets,
    decoded and as written (`%43ANARY` is CANARY, and is written so in the URL)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            yield parts.password
        elif parts.username and name_as_token:
            yield parts.username
    except ValueError:
        return
    for field in re.split(r"[&;]", parts.query):
        written = field.partition("=")[2]
        decoded = parse_qsl(field, keep_blank_values=False)
        if not decoded or not SECRET_QUERY_NAME.search(decoded[0][0]):
            continue
        yield decoded[0][1]
        if written != decoded[0][1]:
            yield written


URL_SAFE = ("", "/", "/:@!$'()*,;?", "!#$&'()*+-./:<=>?@[]^_`{|}~")
"""What URL encoders leave as it is in a value: nothing; `/` (Python's `quote`); the characters
RFC 3986 allows in a query but `&`, `=` and `+` (httpx, browsers); RFC 6265's cookie octets
(how the gateway writes a cookie, `upstream.styles.cookie_enc`). An upstream that echoes the
URL it was called with (a self link, httpbin's `url`), or the cookies, spells a value one of
these ways."""
_HEX = re.compile(r"%[0-9A-F]{2}")


def spellings(secret: str) -> set[str]:
    """How `secret` may appear in an answer, an error or a log line: as it is, percent-encoded
    as each encoder of `URL_SAFE` writes it (upper- or lower-case hex, `+` or `%20` for a
    space), and inside a JSON string (non-ASCII escaped or not, `/` escaped or not: PHP's
    `json_encode` writes `\\/`), and base64-encoded whole (standard or URL-safe, padded or not:
    an upstream that hands a credential back encoded, as some debugging echoes do)."""
    found = {secret}
    raw = secret.encode()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        found |= {text, text.rstrip("=")}
    for form in (json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]):
        found |= {form, form.replace("/", "\\/")}
    for safe in URL_SAFE:
        for form in (quote(secret, safe=safe), quote_plus(secret, safe=safe)):
            found |= {form, _HEX.sub(lambda m: m.group().lower(), form)}
    return found
