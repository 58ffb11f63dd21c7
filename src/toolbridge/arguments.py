"""Checking a call's arguments against the tool's input schema, with a validator compiled once.

`oneOf` is read as `anyOf` (`schemas.one_of_as_any_of`): documents write `oneOf: [integer,
number, string]` for "any of these kinds", an integer matches two branches, and the API itself
accepts it, so refusing it would refuse calls the upstream takes. The schemas clients see keep
their `oneOf`; only the check is this lenient.

Before validating, two things models are known to send are mended, and only where the value
would otherwise be invalid: `null` for an optional argument (OpenAI's strict mode makes every
optional property nullable) means "absent", and a JSON-encoded string where the schema wants an
object or array (how the Gemini format carries free-form values) is decoded.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson

from toolbridge import schemas as js
from toolbridge.errors import InvalidArguments
from toolbridge.tools import Tool

MAX_PROBLEMS = 20


class ArgumentValidator:
    """The compiled input schema of one tool."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool.name
        self.schema = tool.input_schema
        self.defs: dict[str, Any] = tool.input_schema.get("$defs") or {}
        self._validator = jsonschema_rs.validator_for(js.one_of_as_any_of(tool.input_schema))

    def check(self, arguments: Any) -> dict[str, Any]:
        """The arguments, mended as above; raises InvalidArguments listing every problem."""
        if not isinstance(arguments, dict):
            found = "a list" if isinstance(arguments, list) else type(arguments).__name__
            raise InvalidArguments(
                self.tool, [("$", f"expected an object of arguments, found {found}")]
            )
        if self._validator.is_valid(arguments):
            return arguments
        mended = _mend(arguments, self.schema, self.defs, 0)
        problems = []
        for error in self._validator.iter_errors(mended):
            problems.append((_json_path(error.instance_path), error.message))
            if len(problems) >= MAX_PROBLEMS:
                break
        if problems:
            # The validator's order varies between runs; callers and tests want a stable one.
            raise InvalidArguments(self.tool, sorted(problems))
        return mended  # type: ignore[no-any-return]


def _json_path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _resolve(schema: Any, defs: dict[str, Any]) -> Any:
    for _ in range(16):
        if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
            return schema
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def _types(schema: Any) -> set[str]:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(kind)
    return set()


def _admits_null(schema: Any, defs: dict[str, Any]) -> bool:
    schema = _resolve(schema, defs)
    if not isinstance(schema, dict):
        return schema is not False
    kinds = _types(schema)
    if kinds:
        return "null" in kinds
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return any(_admits_null(s, defs) for s in schema[key])
    return "enum" not in schema and "const" not in schema


def _mend(value: Any, schema: Any, defs: dict[str, Any], depth: int) -> Any:
    schema = _resolve(schema, defs)
    if depth > 32 or not isinstance(schema, dict):
        return value
    kinds = _types(schema)
    if isinstance(value, str) and kinds and kinds <= {"object", "array", "null"}:
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if (isinstance(decoded, dict) and "object" in kinds) or (
            isinstance(decoded, list) and "array" in kinds
        ):
            value = decoded
    if isinstance(value, dict):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        out = {}
        for key, item in value.items():
            sub = properties.get(key)
            optional = key not in required
            if item is None and optional and sub is not None and not _admits_null(sub, defs):
                continue  # strict mode's stand-in for "not given"
            out[key] = _mend(item, sub, defs, depth + 1) if sub is not None else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict | bool):
        return [_mend(item, schema["items"], defs, depth + 1) for item in value]
    return value
