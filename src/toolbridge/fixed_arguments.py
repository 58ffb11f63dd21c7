"""Fixed arguments: a document's parameters whose values the server's config gives
(`arguments: {NAME: value}`), taken out of the tools and sent on every call.

A document may ask for a value the model should never choose, or never see: Slack's `token`
query and form parameter (required on 45 of its operations), a tenant or team id that is the
same for every call, an API version. `arguments` names such parameters as the document writes
them (a path, query, header or cookie parameter, or a field of a form or JSON body the tool
takes field by field; header names in any case) and gives each its value, or `null` to leave an
optional one out; one tool's own go under its entry in the server's `tools` (by its name,
document name or operationId: `budgets.entry_names`), over the server's for the same name.
Every tool of the server with a parameter of that name loses the argument
(a `fixed-argument` note says so, never with the value); each call sends the config's value in
the parameter's place, as if the model had given it, serialized as the document says. A model
that sends it anyway is refused, as for any unknown argument.

Checked at load, per tool: the value must be one the tool's parameter takes (its schema, as a
call is checked, and what the request builder refuses: a header value with a line break, a
path segment `..`); a string where the parameter takes no string is read as JSON (`"50"` ->
50, as `${VAR}` gives only strings); `null` only where the parameter is optional. A tool it does
not fit keeps its server down, with an error naming the tool, the parameter and what was
expected, never the value. A name no tool of the server has (a tool's own: that tool has not;
or its entry names no tool; a server's: every tool with it has its own) is a
`fixed-argument-unused` note, and a body field inside a tool's one `body` argument (not taken
field by field) a `fixed-argument-unreachable` note: the model gives that one.

The values each operation's calls send are resolved here, once, and kept with its tools
(`Conversion.fixed`, by method and path): a reload that keeps a source's last good tools keeps
the values they were checked with, never a newer config's that failed the check.

Trust: the values are the operator's (the config), secrets possibly (`${SLACK_TOKEN}`): they
are stored sealed and listed redacted as header values are (`state.secrets`, `serve.admin`),
and those under a secret-like name are redacted from answers and logs
(`redaction.argument_secrets`). Nothing here reads them from a caller or a document. Pure:
values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import jsonschema_rs
import orjson

from toolbridge import json_text
from toolbridge import schemas as js
from toolbridge.arguments import (
    BASE64_PATTERN,
    HEADER_VALUE_PATTERN,
    LABEL_PATTERN,
    PATH_SEGMENT_PATTERN,
    WHOLE_SEGMENT_PATTERN,
    accepted_schema,
    resolve,
)
from toolbridge.budgets import entry_names
from toolbridge.config import Server
from toolbridge.errors import ToolbridgeError
from toolbridge.tools import HttpOperation, JsonSchema, Note, Tool

MAX_SHOWN = 200
"""Characters of what a schema expects kept in an error (an `enum` may list thousands)."""
Operation = tuple[str, str]
"""An operation of a document: its method and path (`GET`, `/pets/{id}`)."""
Values = Mapping[Operation, Mapping[str, Any]]
"""Per operation, the arguments its calls are given by the config (by argument name)."""
Given = Mapping[str, tuple[Any, str]]
"""One tool's fixed arguments by parameter name: the value, and the config key that gives it
(`arguments.token`; `tools.chat_postMessage.arguments.channel`, over the server's)."""
_SAID_KINDS = frozenset(
    (
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "pattern",
        "format",
        "required",
        "uniqueItems",
        "contentEncoding",
        "contentMediaType",
    )
)
"""Validation errors whose details are the schema's own (what it expects), never the value's:
only these are said in full; of the rest (`additionalProperties`, `unevaluatedItems`, ...),
which quote parts of the value, only the keyword."""
_OURS = {
    HEADER_VALUE_PATTERN: "text a header can carry (no line break nor control character)",
    PATH_SEGMENT_PATTERN: "a path segment other than `.` and `..`",
    WHOLE_SEGMENT_PATTERN: "a path segment other than `.`, `..` and nothing",
    LABEL_PATTERN: "a label other than `.` and nothing",
    BASE64_PATTERN: "base64 text",
}
"""The patterns a call's check adds (`arguments.accepted_schema`), in words."""


class FixedArgumentError(ToolbridgeError):
    """A fixed argument that does not fit a tool's parameter: the server is not served."""


def slots(op: HttpOperation, names: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(argument, key, name, where) of each parameter or body field of `op` that `names` gives
    a value for: the argument's name in the tool's input schema, the key of `names` that gives
    it, its name in the document, and where it goes (`query`, `header`, ..., or `body`)."""
    if not names:
        return
    lowered = {name.lower(): name for name in names}
    for binding in op.params:
        if binding.location == "header":
            given = lowered.get(binding.name.lower())
        else:
            given = binding.name if binding.name in names else None
        if given is not None:
            yield binding.argument, given, binding.name, binding.location
    if op.body is not None:
        for argument, field in op.body.fields:
            if field in names:
                yield argument, field, field, "body"


def supplied(values: Values, op: HttpOperation, arguments: dict[str, Any]) -> dict[str, Any]:
    """A call's checked arguments with the values fixed for its operation put in: what the
    request is built from."""
    fixed = values.get((op.method, op.path))
    return {**arguments, **fixed} if fixed else arguments


def fixed(
    server: Server, tools: tuple[Tool, ...]
) -> tuple[tuple[Tool, ...], tuple[Note, ...], Values]:
    """The server's tools without the arguments its config fixes (each noted), a note for each
    name none of them has, and the values each operation's calls send. Raises
    FixedArgumentError for a value a tool's parameter does not take."""
    own = {name: entry.arguments for name, entry in server.tools.items() if entry.arguments}
    if not server.arguments and not own:
        return tools, (), {}
    shared: Given = {key: (value, f"arguments.{key}") for key, value in server.arguments.items()}
    used: set[str] = set()
    shadowed: set[str] = set()  # the server's keys a tool's own gave another value
    named: dict[str, str] = {}  # a `tools` entry with arguments, and the tool it names
    out = []
    values: dict[Operation, Mapping[str, Any]] = {}
    validators: dict[bytes, Any] = {}
    for tool in tools:
        op = tool.target
        if not isinstance(op, HttpOperation):
            out.append(tool)
            continue
        # The entry the tool is given by is used whole (`entry_names`' order), as for budgets.
        entry = next((name for name in entry_names(tool) if name in server.tools), None)
        given = shared
        if entry is not None and entry in own:
            named[entry] = tool.name
            mine = {k: (v, f"tools.{entry}.arguments.{k}") for k, v in own[entry].items()}
            given = {**shared, **mine}
        found = list(slots(op, given))
        used.update(given[key][1] for _, key, _, _ in found)
        shadowed.update(
            shared[key][1] for _, key, _, _ in found if key in shared and given[key] != shared[key]
        )
        unreachable = _unreachable(tool, op, given)
        used.update(label for label, _ in unreachable)  # noted there: not "no tool has it"
        if not found and not unreachable:
            out.append(tool)
            continue
        tool, sent = _without(server, tool, found, given, validators)
        out.append(replace(tool, notes=(*tool.notes, *(note for _, note in unreachable))))
        if sent:
            values[(op.method, op.path)] = sent
    notes = [
        Note(
            kind="fixed-argument-unused",
            message=f"{label}: "
            + (
                f"every tool of server {server.id!r} with a parameter named {key!r} gives it "
                "its own value (`tools`)"
                if label in shadowed
                else f"no tool of server {server.id!r} has a parameter named {key!r} that the "
                "config does not set already (`headers`, `auth`)"
            )
            + "; nothing is sent for it",
        )
        for key, (_, label) in shared.items()
        if label not in used
    ]
    known = {name: tool.name for tool in tools for name in entry_names(tool)}
    for entry, arguments in own.items():
        for key in arguments:
            label = f"tools.{entry}.arguments.{key}"
            if label in used:
                continue
            if entry in named:
                whose = (
                    f"tool {named[entry]!r} has no parameter named {key!r} that the config "
                    "does not set already (`headers`, `auth`)"
                )
            elif entry in known:
                whose = (
                    f"tool {known[entry]!r} takes its settings from another entry of `tools` "
                    "that names it (by its name first, then document name, then operationId)"
                )
            else:
                whose = (
                    f"no tool of server {server.id!r} is named {entry!r} (by name or operationId)"
                )
            notes.append(
                Note(
                    kind="fixed-argument-unused",
                    message=f"{label}: {whose}; nothing is sent for it",
                )
            )
    return tuple(out), tuple(notes), values


def _without(
    server: Server,
    tool: Tool,
    found: list[tuple[str, str, str, str]],
    given: Given,
    validators: dict[bytes, Any],
) -> tuple[Tool, dict[str, Any]]:
    """The tool without the arguments found, and the values its calls send for them."""
    schema = tool.input_schema
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    notes = []
    sent: dict[str, Any] = {}
    for argument, key, name, where in found:
        value, label = given[key]
        place = "body field" if where == "body" else f"{where} parameter"
        if value is None and argument in required:
            raise FixedArgumentError(
                f"server {server.id!r}: {label} is null (leave it out), but tool "
                f"{tool.name!r} ({tool.where}) requires its {place} {name!r}: give it a value"
            )
        if value is not None and argument in properties:
            value, problem = _taken(tool, argument, value, validators)
            if problem is not None:
                raise FixedArgumentError(
                    f"server {server.id!r}: {label} does not fit the {place} {name!r} "
                    f"of tool {tool.name!r} ({tool.where}): {problem}"
                )
        if value is not None:
            sent[argument] = value
        said = "left out" if value is None else "sent as the server's config gives it"
        notes.append(
            Note(
                kind="fixed-argument",
                message=f"{place} {name!r} is {said} (`arguments`): not an argument",
                where=tool.where,
            )
        )
    dropped = {argument for argument, _, _, _ in found}
    narrowed: JsonSchema = dict(schema)  # the catalog's schemas are shared: copied, not changed
    narrowed["properties"] = {k: v for k, v in properties.items() if k not in dropped}
    if required:
        kept = [name for name in required if name not in dropped]
        if kept:
            narrowed["required"] = kept
        else:
            del narrowed["required"]
    return replace(tool, input_schema=narrowed, notes=(*tool.notes, *notes)), sent


def _unreachable(tool: Tool, op: HttpOperation, given: Given) -> list[tuple[str, Note]]:
    """Each config key of `given` naming a field of the tool's one `body` argument (a body not
    taken field by field), with its note: the config cannot give it, the model does."""
    if op.body is None or op.body.argument is None:
        return []
    properties = tool.input_schema.get("properties")
    body = properties.get(op.body.argument) if isinstance(properties, dict) else None
    fields = _fields(body, tool.input_schema.get("$defs"))
    return [
        (
            label,
            Note(
                kind="fixed-argument-unreachable",
                message=f"{label}: {name!r} is a field of the {op.body.argument!r} "
                "argument (the body, given whole), which `arguments` cannot fix: the model "
                "gives it",
                where=tool.where,
            ),
        )
        for name, (_, label) in given.items()
        if name in fields
    ]


def _fields(schema: Any, defs: Any) -> set[str]:
    """The property names of an object schema (through `$ref`s, and `allOf`)."""
    schema = resolve(schema, defs if isinstance(defs, dict) else {})
    if not isinstance(schema, dict):
        return set()
    names = set(schema["properties"]) if isinstance(schema.get("properties"), dict) else set()
    for part in schema.get("allOf") or ():
        names |= _fields(part, defs)
    return names


def _taken(
    tool: Tool, argument: str, value: Any, validators: dict[bytes, Any]
) -> tuple[Any, str | None]:
    """The value as the tool's argument takes it (a string read as JSON where only that
    fits), or the value and what is wrong with it."""
    validator = _validator(tool, argument, validators)
    problem = _problem(validator, value)
    if problem is None or not isinstance(value, str):
        return value, problem
    try:
        read = json_text.loads(value)
    except ValueError:
        return value, problem
    if isinstance(read, str) or _problem(validator, read) is not None:
        return value, problem
    return read, None


def _validator(tool: Tool, argument: str, validators: dict[bytes, Any]) -> Any:
    """The argument's schema as a call accepts it (`arguments.accepted_schema`), compiled once
    per distinct schema."""
    schema = tool.input_schema
    defs = schema.get("$defs")
    defs = defs if isinstance(defs, dict) else {}
    prop = schema["properties"][argument]
    reached, todo = set(), js.collect_refs(prop)
    while todo:
        name = todo.pop()
        if name not in reached and name in defs:
            reached.add(name)
            todo |= js.collect_refs(defs[name])
    # Required, so not widened to take null (which `fixed` reads as "leave it out").
    alone: JsonSchema = {"type": "object", "properties": {argument: prop}, "required": [argument]}
    if reached:
        alone["$defs"] = {name: defs[name] for name in sorted(reached)}
    accepted = accepted_schema(replace(tool, input_schema=alone))
    whole: JsonSchema = {"type": "object", "properties": {"v": accepted["properties"][argument]}}
    if "$defs" in accepted:
        whole["$defs"] = accepted["$defs"]
    key = orjson.dumps(whole, option=orjson.OPT_SORT_KEYS)
    found = validators.get(key)
    if found is None:
        found = validators[key] = jsonschema_rs.validator_for(js.one_of_as_any_of(whole))
    return found


def _problem(validator: Any, value: Any) -> str | None:
    """What is wrong with `value` for the compiled schema, or None."""
    for error in validator.iter_errors({"v": value}):
        return _expected(error)
    return None


def _expected(error: jsonschema_rs.ValidationError) -> str:
    """What the schema wanted and what kind of value was found: never the value, nor where in
    it (the validator's own message quotes the value, its path the value's own keys, and a
    fixed value may be a secret)."""
    kind = error.kind
    found = js.json_kind(error.instance)
    pattern = kind.as_dict().get("pattern") if kind.name == "pattern" else None
    ours = _OURS.get(pattern) if isinstance(pattern, str) else None
    if ours is not None:
        return f"expected {ours}, found {found}"
    said = ""
    if kind.name in _SAID_KINDS:
        wanted = kind.as_dict()
        said = ", ".join(f"{k} {orjson.dumps(v, default=str).decode()}" for k, v in wanted.items())
    inside = " inside it" if len(error.instance_path) > 1 else ""
    return (
        f"expected a value that passes `{kind.name}`{f' ({said[:MAX_SHOWN]})' if said else ''}, "
        f"found {found}{inside}"
    )
