"""Fixed arguments: a document's parameters whose values the server's config gives
(`arguments: {NAME: value}`), taken out of the tools and sent on every call.

A document may ask for a value the model should never choose, or never see: Slack's `token`
query and form parameter (required on 45 of its operations), a tenant or team id that is the
same for every call, an API version. `arguments` names such parameters as the document writes
them (a path, query, header or cookie parameter, or a field of a form or JSON body the tool
takes field by field; header names in any case) and gives each its value, or `null` to leave an
optional one out. Every tool of the server with a parameter of that name loses the argument
(a `fixed-argument` note says so, never with the value); each call sends the config's value in
the parameter's place, as if the model had given it, serialized as the document says. A model
that sends it anyway is refused, as for any unknown argument.

Checked at load, per tool: the value must be valid for that tool's parameter (by its schema,
as calls are checked); `null` only where the parameter is optional. A tool it does not fit
keeps its server down, with an error naming the tool, the parameter and what was expected. A
name no tool of the server has is a `fixed-argument-unused` note (a typo, or a parameter the
document dropped).

Trust: the values are the operator's (the config), secrets possibly (`${SLACK_TOKEN}`): they
are stored sealed and listed redacted as header values are (`state.secrets`, `serve.admin`),
and those under a secret-like name join the values redacted from answers and logs
(`redaction`). Nothing here reads them from a caller or a document. Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import jsonschema_rs
import orjson

from toolbridge import schemas as js
from toolbridge.config import Server
from toolbridge.errors import ToolbridgeError
from toolbridge.secret_names import SECRET_NAME
from toolbridge.tools import HttpOperation, JsonSchema, Note, Tool

MAX_SHOWN = 200
"""Characters of what a schema expects kept in an error (an `enum` may list thousands)."""


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


def secret_values(server: Server) -> tuple[str, ...]:
    """The fixed values redacted wherever they would leave us: those under a name that says
    token, key, secret, password (`secret_names.SECRET_NAME`), as for header values."""
    return tuple(
        value
        for name, value in server.arguments.items()
        if isinstance(value, str) and SECRET_NAME.search(name)
    )


def supplied(server: Server, op: HttpOperation, arguments: dict[str, Any]) -> dict[str, Any]:
    """A call's checked arguments with the server's fixed values put in (those given `null`
    left out): what the request is built from."""
    if not server.arguments:
        return arguments
    out = dict(arguments)
    for argument, key, _, _ in slots(op, server.arguments):
        value = server.arguments[key]
        if value is None:
            out.pop(argument, None)
        else:
            out[argument] = value
    return out


def fixed(server: Server, tools: tuple[Tool, ...]) -> tuple[tuple[Tool, ...], tuple[Note, ...]]:
    """The server's tools without the arguments its config fixes (each noted), and a note for
    each name none of them has. Raises FixedArgumentError for a value a tool's parameter does
    not take."""
    if not server.arguments:
        return tools, ()
    used: set[str] = set()
    out = []
    for tool in tools:
        if not isinstance(tool.target, HttpOperation):
            out.append(tool)
            continue
        found = list(slots(tool.target, server.arguments))
        used.update(key for _, key, _, _ in found)
        out.append(_without(server, tool, found) if found else tool)
    unused = [name for name in server.arguments if name not in used]
    notes = tuple(
        Note(
            kind="fixed-argument-unused",
            message=f"arguments.{name}: no tool of server {server.id!r} has a parameter named "
            f"{name!r}; nothing is sent for it",
        )
        for name in unused
    )
    return tuple(out), notes


def _without(server: Server, tool: Tool, found: list[tuple[str, str, str, str]]) -> Tool:
    schema = tool.input_schema
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    notes = []
    for argument, key, name, where in found:
        value = server.arguments[key]
        place = "body field" if where == "body" else f"{where} parameter"
        if value is None and argument in required:
            raise FixedArgumentError(
                f"server {server.id!r}: arguments.{key} is null (leave it out), but tool "
                f"{tool.name!r} ({tool.where}) requires its {place} {name!r}: give it a value"
            )
        if value is not None and argument in properties:
            problem = _problem(properties[argument], schema.get("$defs"), value)
            if problem is not None:
                raise FixedArgumentError(
                    f"server {server.id!r}: arguments.{key} does not fit the {place} {name!r} "
                    f"of tool {tool.name!r} ({tool.where}): {problem}"
                )
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
    return replace(tool, input_schema=narrowed, notes=(*tool.notes, *notes))


def _problem(schema: Any, defs: Any, value: Any) -> str | None:
    """What is wrong with `value` for `schema` (checked as calls are), or None. The message
    says what was expected, not the value: it may be a secret."""
    whole: JsonSchema = {"type": "object", "properties": {"v": schema}}
    if isinstance(defs, dict) and defs:
        whole["$defs"] = defs
    validator = jsonschema_rs.validator_for(js.one_of_as_any_of(whole))
    for error in validator.iter_errors({"v": value}):
        return _expected(error)
    return None


def _expected(error: jsonschema_rs.ValidationError) -> str:
    """What the schema wanted and what kind of value was found, where: never the value (the
    validator's own message quotes it, and a fixed value may be a secret)."""
    kind = error.kind
    wanted = {k: v for k, v in kind.as_dict().items() if k != "context"}
    said = ", ".join(f"{k} {orjson.dumps(v, default=str).decode()}" for k, v in wanted.items())[
        :MAX_SHOWN
    ]
    where = "".join(f"[{part!r}]" for part in list(error.instance_path)[1:])
    return (
        f"expected a value that passes `{kind.name}`{f' ({said})' if said else ''}, found "
        f"{js.json_kind(error.instance)}{f' at {where}' if where else ''}"
    )
