"""Conditional writes of the admin API: the `If-Match` a request sends, the `ETag` it gets.

An admin entry's entity tag is its revision (`state/revisions.py`), quoted: `"3"`. A PUT or
DELETE of an entry with `If-Match: "3"` applies only while the entry is still at revision 3,
else 412; `If-Match: *` (or none) applies to whatever is stored. Trusts nothing of the header:
anything but a list of such tags is a 400 that says what was expected.
"""

from __future__ import annotations

import re
from typing import Any

from toolbridge.errors import BadRequest, quoted
from toolbridge.state.revisions import Expected

_TAG = re.compile(r'(W/)?(?:"([0-9]{1,18})"|([0-9]{1,18}))')
MAX_TAGS = 32
"""Entity tags one `If-Match` may list."""


def if_match(header: str) -> Expected:
    """The revisions an `If-Match` header (its values joined by commas) lets a write apply to;
    None for `*`. A weak tag (`W/"3"`), or one this API never answers (`"03"`), matches
    nothing (strong comparison, RFC 9110): a write naming only such tags is a 412."""
    text = header.strip()
    if text == "*":
        return None
    tags = [tag.strip() for tag in text.split(",")]
    found = [_TAG.fullmatch(tag) for tag in tags]
    if not tags or len(tags) > MAX_TAGS or not all(found):
        raise BadRequest(
            f'If-Match: expected * or the entity tags this API answers ("3", the entry\'s '
            f"revision; at most {MAX_TAGS}), found {quoted(header)}"
        )
    revisions = set()
    for match in found:
        assert match is not None
        digits = match.group(2) or match.group(3)
        if not match.group(1) and str(int(digits)) == digits:  # strong, and as we write it
            revisions.add(int(digits))
    return frozenset(revisions)


def revision_of(body: Any) -> int | None:
    """The revision of the one entry an admin write answers with (its ETag), if it says one."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("revision"), int):
        return int(body["revision"])
    entries = [
        v for v in body.values() if isinstance(v, dict) and isinstance(v.get("revision"), int)
    ]
    return int(entries[0]["revision"]) if len(entries) == 1 else None
