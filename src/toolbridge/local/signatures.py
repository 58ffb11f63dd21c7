"""A Python callable as a `Tool`: its signature and docstring as a pydantic arguments model and a
canonical JSON schema, through pydantic's public API only (`create_model`, `model_json_schema`).

This follows openai-agents' `function_schema`. Nothing is imported or called here; the loader
(`loader.py`) hands over callables and `calls.py` calls them.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from toolbridge import names
from toolbridge import schemas as js
from toolbridge.errors import SourceError
from toolbridge.local.docstrings import parse_docstring
from toolbridge.tools import PROPERTY_PATTERN, Annotations, JsonSchema, Note, PythonFunction, Tool

INJECTED = (
    "__user__",
    "__event_emitter__",
    "__event_call__",
    "__metadata__",
    "__messages__",
    "__files__",
    "__id__",
    "__request__",
    "__model__",
    "__chat_id__",
    "__message_id__",
    "__session_id__",
    "__oauth_token__",
)
"""Parameters the host fills (Open WebUI's names); the model never sees them. Any other
`__name__` parameter is hidden too and receives None, as Open WebUI hides it from the model
(`__task__`, `__tools__`, ... are for Open WebUI's pipes)."""

DEFAULT_TIMEOUT = 60.0
"""Seconds a local tool may run before its call answers `timed out`."""

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


class Arguments(BaseModel):
    """Base of every arguments model: lenient as Open WebUI is (a number where text is expected
    becomes text; unknown arguments are dropped by `calls`), any field name is fine."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=(), coerce_numbers_to_str=True)
    call_plan: ClassVar[tuple[tuple[str, str, bool], ...]] = ()
    """(field, parameter, positional-only) per model-visible parameter, in signature order."""
    accepted: ClassVar[frozenset[str]] = frozenset()
    """The argument names the model may send (aliases where a name had to change)."""


def build_tool(func: Callable[..., Any], *, source: str, function: str, where: str) -> Tool:
    """The tool for one callable, named after it (the loader prefixes and deduplicates names).

    `function` is its qualified name (`clock:Tools.now`); `where` starts every error message.
    Raises SourceError when the signature cannot be read or has no JSON schema.
    """
    note_where = f"python {function}"
    attribute = function.rpartition(":")[2].rpartition(".")[2]
    try:
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)
        description, docs = parse_docstring(inspect.getdoc(func))
        notes: list[Note] = []
        model = _arguments_model(attribute, signature, hints, docs, notes, note_where)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            input_schema = _canonical(model.model_json_schema())
            output_schema = _output_schema(hints.get("return"), notes, note_where)
    except SourceError as exc:
        raise SourceError(f"{where}: {function}: {exc}") from exc
    except Exception as exc:
        culprit = _culprit(func)
        problem = culprit or f"no JSON schema: {cause(exc).splitlines()[0]}"
        raise SourceError(f"{where}: {function}: {problem}") from exc
    for warning in caught:
        notes.append(Note(kind="schema-warning", message=str(warning.message), where=note_where))
    for name in _nested_properties(input_schema):
        if not names.is_valid_property(name):
            raise SourceError(
                f"{where}: {function}: property {name!r} does not match {PROPERTY_PATTERN}"
            )
    text, cut = js.clean_text(description or attribute.replace("_", " ").capitalize())
    if cut:
        message = f"description cut from {len(description)} to {js.MAX_DESCRIPTION} characters"
        notes.append(Note(kind="description-shortened", message=message, where=note_where))
    return Tool(
        name=attribute,
        original_name=attribute,
        description=text,
        input_schema=input_schema,
        output_schema=output_schema,
        output_promised=output_schema is not None,  # pydantic serializes the declared type
        annotations=Annotations(
            # What a function reaches is its own business: MCP's default, "the world", unless
            # it says otherwise (`fn.open_world = False`), as `fn.readonly = True` says it reads.
            read_only=getattr(func, "readonly", False) is True,
            open_world=getattr(func, "open_world", True) is not False,
        ),
        source=source,
        target=PythonFunction(
            tool_id=source,
            function=function,
            func=func,
            arguments_model=model,
            injected=tuple(p for p in signature.parameters if is_injected(p)),
            is_async=inspect.iscoroutinefunction(func),
            timeout=DEFAULT_TIMEOUT,
        ),
        notes=tuple(notes),
    )


def is_injected(name: str) -> bool:
    """Whether the host fills a parameter: Open WebUI's names, and any other `__name__`."""
    return name in INJECTED or (len(name) > 4 and name.startswith("__") and name.endswith("__"))


def cause(exc: BaseException) -> str:
    """`Type: message`, or just `Type` when the message is empty."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _culprit(func: Callable[..., Any]) -> str | None:
    """Which parameter has a type without a JSON schema, said plainly."""
    try:
        parameters = inspect.signature(func).parameters
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        return f"cannot read its signature: {cause(exc).splitlines()[0]}"
    for name in parameters:
        if name in hints and name != "self" and not is_injected(name):
            try:
                TypeAdapter(hints[name]).json_schema()
            except Exception:
                hint = hints[name]
                shown = (
                    f"{hint.__module__}.{hint.__qualname__}"
                    if isinstance(hint, type)
                    else repr(hint)
                )
                return f"parameter {name!r}: its type {shown} has no JSON schema"
    return None


def _arguments_model(
    model_name: str,
    signature: inspect.Signature,
    hints: Mapping[str, Any],
    docs: Mapping[str, str],
    notes: list[Note],
    where: str,
) -> type[Arguments]:
    visible = [
        p
        for p in signature.parameters.values()
        if p.name != "self" and not is_injected(p.name) and _offered(p, notes, where)
    ]
    aliases, renamed = names.argument_names((p.name, "python") for p in visible)
    notes.extend(dataclasses.replace(note, where=where) for note in renamed)
    fields: dict[str, Any] = {}
    plan: list[tuple[str, str, bool]] = []
    for param, alias in zip(visible, aliases, strict=True):
        annotation = hints.get(param.name, Any)
        default = param.default
        extras: list[Any] = []
        documented = param.name in docs
        if isinstance(default, FieldInfo):
            extras, default = [default], inspect.Parameter.empty
            if documented and default_of(extras[0]) is inspect.Parameter.empty:
                # Open WebUI wraps a documented `Field()` default in another Field, which makes
                # the parameter optional; left out, the function gets None here (there, the
                # FieldInfo object itself).
                default = None
            if documented:
                extras[0] = _undescribed(extras[0])  # the docstring's text wins, as there
        if default is None and not _admits_none(annotation):
            annotation = _optional(annotation)  # `city: str = None`, common in tool files
        name = param.name if _field_name_ok(param.name) else _free_name(param.name, fields)
        options: dict[str, Any] = {"alias": alias} if alias != name else {}
        if documented and not _has_description(annotation, extras):
            options["description"] = docs[param.name]
        if default is not inspect.Parameter.empty:
            options["default"] = default
        if extras:
            annotation = Annotated[annotation, *extras]
        fields[name] = (annotation, Field(**options))
        plan.append((name, param.name, param.kind is inspect.Parameter.POSITIONAL_ONLY))
    model: type[Arguments] = create_model(model_name, __base__=Arguments, **fields)
    model.call_plan = tuple(plan)
    model.accepted = field_names(model)
    return model


def default_of(info: FieldInfo) -> Any:
    """A Field's default (calling its factory), or `inspect.Parameter.empty` when it has none."""
    if info.default_factory is not None:
        return info.get_default(call_default_factory=True, validated_data={})
    return inspect.Parameter.empty if info.is_required() else info.default


def _undescribed(info: FieldInfo) -> FieldInfo:
    return FieldInfo.merge_field_infos(info, description=None)


def _offered(param: inspect.Parameter, notes: list[Note], where: str) -> bool:
    """Whether a parameter becomes an argument; *args, **kwargs and `_private` ones with a
    default do not (Open WebUI offers every name that does not start with `__`: a `_private`
    parameter without a default is offered here too)."""
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        stars = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
        message = f"{stars}{param.name} is not offered: the model passes named arguments only"
    elif param.name.startswith("_") and param.default is not inspect.Parameter.empty:
        message = f"{param.name!r} is private (leading `_`): it keeps its default"
    else:
        return True
    notes.append(Note(kind="parameter-hidden", message=message, where=where))
    return False


def _field_name_ok(name: str) -> bool:
    return name.isidentifier() and not name.startswith("_") and not hasattr(BaseModel, name)


def _free_name(name: str, taken: Mapping[str, Any]) -> str:
    """A field name for a parameter pydantic cannot take as one (`json`, `schema`, ...)."""
    candidate = f"{_NOT_IDENTIFIER.sub('_', name).lstrip('_') or 'argument'}_"
    while candidate in taken or not _field_name_ok(candidate):
        candidate += "_"
    return candidate


def _admits_none(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        return _admits_none(typing.get_args(annotation)[0])
    if annotation in (Any, None, type(None), object):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits_none(arg) for arg in typing.get_args(annotation))
    return False


def _optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) is Annotated:
        inner, *metadata = typing.get_args(annotation)
        return Annotated[inner | None, *metadata]
    return annotation | None


def _has_description(annotation: Any, extras: list[Any]) -> bool:
    metadata = list(extras)
    if typing.get_origin(annotation) is Annotated:
        metadata.extend(typing.get_args(annotation)[1:])
    return any(isinstance(m, FieldInfo) and m.description for m in metadata)


def _canonical(schema: JsonSchema) -> JsonSchema:
    """pydantic's schema in the order the OpenAPI side uses, without made-up titles."""
    _untitle(schema)
    out: JsonSchema = {"type": "object", "properties": schema.get("properties", {})}
    if schema.get("required"):
        out["required"] = schema["required"]
    out["additionalProperties"] = False
    if schema.get("$defs"):
        out["$defs"] = schema["$defs"]
    return out


def _output_schema(annotation: Any, notes: list[Note], where: str) -> JsonSchema | None:
    """A schema for object results only (a pydantic model or a TypedDict): what MCP accepts.

    Optional, so a return type without a schema is a note, not an error.
    """
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    # typing_extensions' TypedDict (which pydantic wants before Python 3.12) is not typing's.
    is_typeddict = isinstance(annotation, type) and hasattr(annotation, "__required_keys__")
    if not (is_model or is_typeddict):
        return None
    try:
        schema = TypeAdapter(annotation).json_schema(mode="serialization")
    except Exception as exc:
        message = f"no output schema: {cause(exc).splitlines()[0]}"
        notes.append(Note(kind="output-schema-skipped", message=message, where=where))
        return None
    _untitle(schema)
    return schema


def _untitle(schema: JsonSchema) -> None:
    """Drop the titles pydantic derives from names: the root's, a definition's equal to its key,
    and a property's equal to its name in title case (`zip_code`: `Zip Code`)."""
    schema.pop("title", None)
    defs = schema.get("$defs") or {}
    for key, definition in defs.items():
        if isinstance(definition, dict) and definition.get("title") == key:
            del definition["title"]
    nodes: list[Any] = [schema, *defs.values()]
    while nodes:
        node = nodes.pop()
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if isinstance(sub, dict) and sub.get("title") == _derived_title(name):
                    del sub["title"]
            nodes.extend(v for k, v in node.items() if k != "$defs" and isinstance(v, dict | list))
        elif isinstance(node, list):
            nodes.extend(node)


def _derived_title(name: str) -> str:
    """The title pydantic makes of a name: `zip_code` and `_zip_code` are `Zip Code`."""
    return name.replace("_", " ").strip().title()


def _nested_properties(schema: JsonSchema) -> list[str]:
    """Property names inside `$defs`: nested models' field names, which cannot be renamed."""
    return [
        name
        for definition in (schema.get("$defs") or {}).values()
        for name in (definition.get("properties") or {})
    ]


def field_names(model: type[BaseModel]) -> frozenset[str]:
    """The names a model takes its values by (a field's alias, else its name): a tool's
    arguments, or the values a Valves or UserValves model may be given."""
    return frozenset(f.alias or n for n, f in model.model_fields.items())


def unknown_user_valves(model: type[BaseModel], values: Any, root: str) -> list[tuple[str, str]]:
    """(where, why) for each name a caller's UserValves give that `model` has no field for,
    `root` leading each place (`$`, `$.__user__.valves`)."""
    if not isinstance(values, dict):
        return []
    known = field_names(model)
    listed = ", ".join(sorted(known))
    return [
        (f"{root}.{name}", f"not a field of its UserValves (it has: {listed})")
        for name in sorted(set(values) - known)
    ]


def set_valves(instance: Any, values: Mapping[str, Any], where: str) -> frozenset[str] | None:
    """Give an Open WebUI `Tools` or `Filter` instance the config's valves, as Open WebUI does
    (`instance.valves = Valves(**values)`); the names its Valves model takes, or None when its
    class has none. Raises SourceError naming each value the model refused, and where."""
    model = getattr(type(instance), "Valves", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    try:
        instance.valves = model.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(
            f"valves.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise SourceError(f"{where}: {problems}") from None
    return field_names(model)
