"""What request building and answer shaping both read off a media type: whether it is JSON, and
the charset it names. Nothing here encodes or decodes a body.
"""

from __future__ import annotations

import re

CHARSET = re.compile(r"charset=\"?([\w.:-]+)", re.IGNORECASE)
"""The charset parameter of a Content-Type (`text/plain; charset=latin-1`)."""


def is_json_type(media_type: str) -> bool:
    mt = media_type.split(";")[0].strip().lower()
    return mt == "application/json" or mt.endswith(("+json", "/json"))
