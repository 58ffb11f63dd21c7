"""Checking a call's arguments against the tool's input schema, with a validator compiled once.

`oneOf` is read as `anyOf` (`schemas.one_of_as_any_of`): documents write `oneOf: [integer,
number, string]` for "any of these kinds", an integer matches two branches, and the API itself
accepts it, so refusing it would refuse calls the upstream takes. The schemas clients see keep
their `oneOf`; only the check is this lenient.

Before validating, two things models are known to send are mended, and only where the value
would otherwise be invalid: `null` for an optional argument (OpenAI's strict mode makes every
optional property nullable) means "absent", and a JSON-encoded string where the schema wants an
object or array (how the Gemini format carries free-form values) is decoded: its `type` says so,
or every branch of its `anyOf`/`oneOf` does (Optional[object] is `oneOf: [null, object]`).
Integers in such a string are read whole, however large (`json_text.loads`).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson

from toolbridge import json_text
from toolbridge import schemas as js
from toolbridge.errors import InvalidArguments
from toolbridge.tools import HttpOperation, JsonSchema, ParamBinding, PythonFunction, Tool
from toolbridge.upstream.request import whole_segments

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
            found = js.json_kind(arguments)
            raise InvalidArguments(
                self.tool, [("$", f"expected an object of arguments, found {found}")]
            )
        if self._validator.is_valid(arguments):
            return arguments
        mended = _mend(arguments, self.schema, self.defs, 0)
        problems = []
        try:
            for error in self._validator.iter_errors(mended):
                problems.append((_json_path(error.instance_path), _short(error.message)))
                if len(problems) >= MAX_PROBLEMS:
                    break
        except ValueError:  # an error's value too deep for the validator to hand back (~255)
            problems = [("$", "nested too deeply to be checked (over 250 levels)")]
        if problems:
            # The validator's order varies between runs; callers and tests want a stable one.
            raise InvalidArguments(self.tool, sorted(problems))
        return mended  # type: ignore[no-any-return]

    def mended(self, arguments: Any) -> Any:
        """The arguments with the two mends made, unchecked (a local tool's own model checks
        them, and says what is wrong in its own words)."""
        if not isinstance(arguments, dict) or self._validator.is_valid(arguments):
            return arguments
        return _mend(arguments, self.schema, self.defs, 0)


def _json_path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def resolve(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema a `$ref` (or a chain of them, up to 16) leads to in `defs`; `{}` if none."""
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
    schema = resolve(schema, defs)
    if not isinstance(schema, dict):
        return schema is not False
    kinds = _types(schema)
    if kinds:
        return "null" in kinds
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return any(_admits_null(s, defs) for s in schema[key])
    if isinstance(schema.get("allOf"), list):  # a header's `allOf: [its schema, a pattern]`
        return all(_admits_null(s, defs) for s in schema["allOf"])
    return "enum" not in schema and "const" not in schema


def _kinds(schema: Any, defs: dict[str, Any]) -> set[str]:
    """The kinds of value a schema takes: its `type`, else those of its `anyOf`/`oneOf`
    branches (Optional[object] is `oneOf: [{type: null}, {$ref: ...}]`)."""
    kinds = _types(schema)
    if kinds:
        return kinds
    for branch in _branches(schema, defs):
        kinds |= _branch_kinds(branch)
    return kinds


def _branch(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The branch of a union schema an object or array is read by (its first of that kind),
    or the schema itself when it has a `type` or no branch of that kind."""
    if _types(schema):
        return schema
    wanted = "object" if isinstance(value, dict) else "array"
    return next((b for b in _branches(schema, defs) if wanted in _branch_kinds(b)), schema)


def _branches(schema: Any, defs: dict[str, Any]) -> list[Any]:
    """The branches of a schema's `anyOf` and `oneOf` (64 of each at most), resolved."""
    if not isinstance(schema, dict):
        return []
    found = [schema.get(key) for key in ("anyOf", "oneOf")]
    return [resolve(b, defs) for each in found if isinstance(each, list) for b in each[:64]]


def _branch_kinds(branch: Any) -> set[str]:
    """A branch's kinds: its `type`, or what its keywords say it is (`properties`: object)."""
    found = _types(branch)
    if found or not isinstance(branch, dict):
        return found
    if "properties" in branch or "additionalProperties" in branch:
        return {"object"}
    return {"array"} if "items" in branch else set()


def _mend(value: Any, schema: Any, defs: dict[str, Any], depth: int) -> Any:
    schema = resolve(schema, defs)
    if depth > 32 or not isinstance(schema, dict):
        return value
    kinds = _kinds(schema, defs)
    if isinstance(value, str) and kinds and kinds <= {"object", "array", "null"}:
        try:
            decoded = json_text.loads(value)
        except orjson.JSONDecodeError:
            return value
        if (isinstance(decoded, dict) and "object" in kinds) or (
            isinstance(decoded, list) and "array" in kinds
        ):
            value = decoded
    if isinstance(value, dict | list):
        schema = _branch(value, schema, defs)
        if not isinstance(schema, dict):
            return value
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


# -- what the gateway accepts, said as a schema (for its own OpenAPI document) ----------------

HEADER_VALUE_PATTERN = "^[\\t\\u0020-\\u007e\\u00a0-\\u00ff]*$(?![\\s\\S])"
"""A header argument's text: tabs, visible ASCII, spaces and Latin-1 letters (RFC 9110's field
value without control characters); anything else is refused when the request is built.
(`(?![\\s\\S])` is "the very end", where Python's `$` would also let a final newline pass.)"""
PATH_SEGMENT_PATTERN = "^(?!\\.\\.?(?![\\s\\S]))"
"""A path argument is not `.` or `..`: a dot segment would climb the route."""
WHOLE_SEGMENT_PATTERN = PATH_SEGMENT_PATTERN + "[\\s\\S]"
"""...nor empty, where it is a whole segment (`upstream.request.whole_segments`)."""
LABEL_PATTERN = "^(?!\\.?(?![\\s\\S]))"
"""A label-style path argument is not empty nor `.`: with the style's `.` before it, either
would be a dot segment."""
_B64 = "[A-Za-z0-9+/_-]\\s*"
BASE64_PATTERN = (
    f"^\\s*(?:(?:{_B64}){{4}})*(?:(?:{_B64}){{2}}(?:=\\s*){{0,2}}|(?:{_B64}){{3}}(?:=\\s*)?)?$"
)
"""Base64 as the request builder reads it: standard or URL-safe, padded or not, line breaks
anywhere."""
_COMBINATORS = ("$ref", "allOf", "anyOf", "oneOf", "not", "const", "if")


def accepted_schema(tool: Tool) -> JsonSchema:
    """The tool's input schema narrowed and widened to exactly what a call accepts.

    Narrowed by what the request builder refuses: a header argument holds only what a header value
    can carry, a path argument is not `.` or `..`, base64 content the builder decodes is base64
    (each a `pattern`). Widened by the mend: an optional property that does not admit null may be
    null (it means "not given"), wherever `ArgumentValidator` walks (properties and items, through
    `$ref`s): `null` joins its `type` (and `enum`), or it becomes `anyOf: [it, null]`. (A JSON
    string where an object or array is wanted, the other mend, has no schema that says exactly which
    strings: it is left unsaid.) A local tool takes its arguments as Open WebUI passes
    them (`local.calls`): unknown arguments are dropped, not refused, and a number is taken
    where text is wanted, so its schema allows both.
    """
    # Not `deepcopy`, which keeps what the catalog shares shared (equal sub-schemas are one
    # object): a property made nullable where it is optional would become so where it is
    # required too.
    schema: JsonSchema = js.unshared(tool.input_schema)
    if isinstance(tool.target, PythonFunction) and tool.target.arguments_model is not None:
        _lenient(schema)  # (the search tools have no such model: their schema is checked)
    defs = schema.get("$defs")
    defs = defs if isinstance(defs, dict) else {}
    properties = schema.get("properties")
    if isinstance(tool.target, HttpOperation) and isinstance(properties, dict):
        for name in _decoded_from_base64(tool.target):
            _base64_patterns(properties.get(name))
        for binding in tool.target.params:
            sub = properties.get(binding.argument)
            if sub is None or binding.content_type is not None:
                continue
            if binding.location == "header":
                properties[binding.argument] = _header_text(sub)
            elif binding.location == "path":
                whole = binding.name in whole_segments(tool.target.path)
                properties[binding.argument] = _path_text(sub, binding, whole)
    _nullable(schema, defs, set(), 0)
    return schema


def _path_text(schema: Any, binding: ParamBinding, whole: bool) -> Any:
    """A path argument as the request builder takes it (`upstream.request`): its text is no
    dot segment, and not empty where it is a whole segment. In the label style the text is a
    `.` and the value (so the value is neither empty nor `.`); in the matrix style `;name=`
    and the value, which is never either, but for an empty array or object exploded (nothing).
    (An array whose one item is `.` or empty is refused too, and not said here.)"""
    label = binding.style == "label"
    if binding.style == "matrix":
        empty = binding.explode and whole
    else:
        empty = whole or label
        if _may_be_text(schema):
            pattern = (
                LABEL_PATTERN if label else WHOLE_SEGMENT_PATTERN if whole else PATH_SEGMENT_PATTERN
            )
            schema = _with_pattern(schema, pattern)
    if empty and isinstance(schema, dict):  # an empty array or object would say nothing
        kinds = _types(schema)
        if kinds == {"array"}:
            schema = {**schema, "minItems": max(1, int(schema.get("minItems") or 0))}
        elif kinds == {"object"}:
            schema = {**schema, "minProperties": max(1, int(schema.get("minProperties") or 0))}
    return schema


def _lenient(schema: JsonSchema) -> None:
    """What a local tool's arguments model takes besides its schema: any further property
    (dropped), and a number for a text argument at the top (read as its text)."""
    if schema.get("additionalProperties") is False:
        del schema["additionalProperties"]
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    for name, sub in properties.items():
        if isinstance(sub, dict) and sub.get("type") == "string" and "enum" not in sub:
            properties[name] = {**sub, "type": ["string", "number"]}


def _may_be_text(schema: Any) -> bool:
    return not isinstance(schema, dict) or "type" not in schema or "string" in _types(schema)


def _header_text(schema: Any) -> Any:
    if (
        isinstance(schema, dict)
        and _types(schema) == {"array"}
        and isinstance(schema.get("items"), dict)
    ):
        return {**schema, "items": _with_pattern(schema["items"], HEADER_VALUE_PATTERN)}
    return _with_pattern(schema, HEADER_VALUE_PATTERN) if _may_be_text(schema) else schema


def _with_pattern(schema: Any, pattern: str) -> Any:
    plain = isinstance(schema, dict) and not any(k in schema for k in (*_COMBINATORS, "pattern"))
    if plain:
        return {**schema, "pattern": pattern}
    return {"allOf": [schema, {"pattern": pattern}]}


def _or_null(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema`, also taking null: `null` joins its type, or that of a copy of the definition
    it refers to (clients that inline references along properties, Open WebUI's among them,
    then still see the object), or else `anyOf: [schema, null]`."""
    if _plain(schema):
        return _typed_or_null(schema)
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/") and "/" not in ref[8:]:
        name = ref[8:]
        target = defs.get(name)
        if isinstance(target, dict) and _plain(target):
            copy_name = f"{name}.or_null"
            # A shallow copy: it shares `properties` with the original, so what `_nullable`
            # does to those (now or later, in a cycle) holds for both.
            defs.setdefault(copy_name, _typed_or_null(target))
            return {**schema, "$ref": f"#/$defs/{copy_name}"}
    return {"anyOf": [schema, {"type": "null"}]}


def _plain(schema: Any) -> bool:
    """A schema with a `type` and no combinator: null can join its type."""
    return (
        isinstance(schema, dict) and "type" in schema and not any(k in schema for k in _COMBINATORS)
    )


def _typed_or_null(schema: JsonSchema) -> JsonSchema:
    kinds = schema["type"]
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    out = {**schema, "type": [*kinds, "null"]}
    if isinstance(out.get("enum"), list):
        out["enum"] = [*out["enum"], None]
    return out


def _nullable(schema: Any, defs: dict[str, Any], seen: set[str], depth: int) -> None:
    """In place: every optional property that does not admit null, along `_mend`'s walk."""
    if depth > 32 or not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return
        seen.add(name)
        _nullable(defs.get(name), defs, seen, depth + 1)
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        for key, sub in list(properties.items()):
            _nullable(sub, defs, seen, depth + 1)
            if key not in required and not _admits_null(sub, defs):
                properties[key] = _or_null(sub, defs)
    if isinstance(schema.get("items"), dict):
        _nullable(schema["items"], defs, seen, depth + 1)
    if not _types(schema):  # a union: the branch `_mend` reads an object or array by (`_branch`)
        branches = _branches(schema, defs)
        for wanted in ("object", "array"):
            first = next((b for b in branches if wanted in _branch_kinds(b)), None)
            if first is not None:
                _nullable(first, defs, seen, depth + 1)


def _decoded_from_base64(op: HttpOperation) -> list[str]:
    """The arguments whose base64 text the request builder decodes: a binary body, and a
    multipart body's fields (its files' `content`). A document's own `contentEncoding: base64`
    elsewhere (a JSON body's string, a query parameter) is passed on as the text given."""
    body = op.body
    if body is None or body.kind not in ("binary", "multipart"):
        return []
    return [body.argument] if body.argument is not None else [arg for arg, _ in body.fields]


def _base64_patterns(node: Any) -> None:
    """In place: each base64 string schema says which strings decode."""
    if isinstance(node, dict):
        if node.get("contentEncoding") == "base64" and "pattern" not in node:
            node["pattern"] = BASE64_PATTERN
        for value in node.values():
            _base64_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _base64_patterns(value)


MAX_MESSAGE_CHARS = 300
"""A problem's message, at most: the validator's quotes the value (a 100 KB string, say)."""


def _short(message: str) -> str:
    """`message` with its middle left out when it is long: the value it quotes begins it, and
    what is wrong with the value ends it (`... is longer than 1000 characters`)."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    keep = MAX_MESSAGE_CHARS // 2
    return f"{message[:keep]}… ({len(message) - 2 * keep} characters left out) …{message[-keep:]}"
