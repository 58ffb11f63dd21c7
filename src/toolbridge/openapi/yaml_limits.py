"""A YAML document's shape, checked before it is composed: the limits every YAML text keeps
(`toolbridge.yaml_limits`: nesting depth, alias expansion) and, in the same pass, the keys it
gives twice in one mapping (`yaml_keys`), for the conversion to say what was dropped.
"""

from __future__ import annotations

from toolbridge.errors import DocumentError
from toolbridge.openapi.duplicate_keys import DuplicateKey
from toolbridge.openapi.yaml_keys import DuplicateKeys
from toolbridge.yaml_limits import MAX_DEPTH, ShapeError, check_shape

__all__ = ["MAX_DEPTH", "check_yaml_shape"]


def check_yaml_shape(raw: bytes, display: str) -> tuple[DuplicateKey, ...]:
    """Refuse deep nesting and alias bombs before composing (raises DocumentError), and
    return the keys given twice in one mapping."""
    keys = DuplicateKeys()
    try:
        check_shape(raw, keys)
    except ShapeError as exc:
        raise DocumentError(display, str(exc)) from None
    return tuple(keys.found)
