"""Where a value is in a YAML file: the line and key path of each node, `${VAR}`s substituted,
and validation errors told as `FILE:LINE: key.path: what was expected, what was found`.

Generic over the file's shape: `config.py` says what a valid config is; this module says where
in the file a problem is. Found values are described by their kind only, never shown: they may
be secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from toolbridge.errors import ConfigError

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
"""`${...}`, or `$${`: a literal `${` (as Docker Compose writes it)."""
_VAR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
"""What a `${...}` may hold: VAR, or VAR:-default."""


def check_nodes(root: Any, path: Path) -> None:
    """Refuse keys given twice in one mapping, and aliases that contain themselves."""
    if root is None:
        return
    stack: list[tuple[Any, tuple[Any, ...], frozenset[int]]] = [(root, (), frozenset())]
    while stack:
        node, where, above = stack.pop()
        if id(node) in above:
            line = node.start_mark.line + 1
            raise ConfigError(f"{path}:{line}: {dotted(where)}: an alias contains itself")
        inside = above | {id(node)}
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    line = key.start_mark.line + 1
                    raise ConfigError(
                        f"{path}:{line}: {dotted((*where, name))}: key {name!r} is given twice"
                    )
                seen.add(name)
                stack.append((value, (*where, name), inside))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*where, i), inside) for i, item in enumerate(node.value))


def substitute(
    value: Any, environ: Mapping[str, str], path: Path, node: Any, where: tuple[Any, ...]
) -> Any:
    if isinstance(value, dict):
        return {k: substitute(v, environ, path, node, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, environ, path, node, (*where, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(reference: re.Match[str]) -> str:
        if reference.group(1) is None:
            return "${"
        match = _VAR.fullmatch(reference.group(1))
        if match is None:
            said = reference.group(0)
            said = said if len(said) <= 60 else said[:57] + "..."
            raise ConfigError(
                f"{path}:{locate(node, where)[0]}: {dotted(where)}: {said!r} is not read: "
                "expected ${VAR} or ${VAR:-default} (and $${ for a literal ${)"
            )
        name, default = match.group(1), match.group(2)
        if environ.get(name):
            return environ[name]
        if default is not None:
            return default  # as in the shell, `:-` also replaces a set but empty variable
        if name in environ:
            return ""
        raise ConfigError(
            f"{path}:{locate(node, where)[0]}: {dotted(where)}: environment variable {name} "
            "is not set (write ${" + name + ":-default} to give a default)"
        )

    return _REFERENCE.sub(replace, value)


_MESSAGES = {
    "list_type": "Input should be a list",
    "tuple_type": "Input should be a list",
    "dict_type": "Input should be a mapping",
    "model_type": "Input should be a mapping",
    "model_attributes_type": "Input should be a mapping",
}


def explain(
    exc: ValidationError, path: Path, node: Any, *, union_tags: tuple[str, ...] = ()
) -> str:
    """Every problem pydantic found, each on a line naming file, line and key path.

    `union_tags` are the `type`s of the tagged unions in the model (told as what was expected).
    """
    tags = ", ".join(repr(t) for t in union_tags)
    lines = []
    for error in exc.errors():
        loc = _plain_loc(error["loc"], union_tags)
        line, loc = locate(node, loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif kind == "missing":
            message = f"required key {loc[-1]!r} is missing"
            loc = loc[:-1]
            line = locate(node, loc)[0]
        elif kind == "union_tag_not_found":
            message = f"required key 'type' is missing (one of {tags})"
        elif kind == "union_tag_invalid":
            found = error.get("input")
            found = found.get("type") if isinstance(found, dict) else found
            # A mistyped tag is shown; anything else is said by its kind (it may be a secret
            # substituted into the wrong key).
            shown = repr(found) if isinstance(found, str) and _TAG.fullmatch(found) else None
            message = f"unknown type {shown or kind_of(found)} (expected one of {tags})"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
            # A validator may name where, below its own key, the problem is: `[0].sources: ...`
            # or `api_keys[1].key: ...`, put in the key path (and the line found there).
            found = _RELATIVE.match(message)
            if found is not None:
                line, loc = locate(node, (*loc, *_parts(found[1])))
                message = message[found.end() :]
        else:
            # Only the kind of what was found: the value itself may be a secret.
            text = _MESSAGES.get(kind, error["msg"])
            message = f"{text} (found {kind_of(error.get('input'))})"
        lines.append(f"{path}:{line}: {dotted(loc) or '(top level)'}: {message}")
    return "\n".join(dict.fromkeys(lines))


_TAG = re.compile(r"[a-z_]{1,24}")
"""What a `type` looks like: shown when mistyped, as no secret does."""


_RELATIVE = re.compile(r"((?:\[\d+\]|[A-Za-z_]\w*)(?:\[\d+\]|\.[A-Za-z_]\w*)*): ")
"""A key path at the start of a validator's message, below the key it validates."""


def _parts(path: str) -> tuple[Any, ...]:
    """`[0].sources` -> (0, "sources"); `api_keys[1].key` -> ("api_keys", 1, "key")."""
    return tuple(
        int(index) if index else name
        for index, name in re.findall(r"\[(\d+)\]|([A-Za-z_]\w*)", path)
    )


def _plain_loc(loc: tuple[Any, ...], union_tags: tuple[str, ...]) -> tuple[Any, ...]:
    """pydantic's location without the tags it adds for tagged unions (`auth.bearer.token`)."""
    out: list[Any] = []
    for part in loc:
        if out and out[-1] == "auth" and part in union_tags:
            continue
        out.append(part)
    return tuple(out)


def locate(node: Any, where: tuple[Any, ...]) -> tuple[int, tuple[Any, ...]]:
    """The line of the YAML node at a key path (or of its nearest existing parent), and the key
    path as the file writes it: a single value given where a list is allowed has no index."""
    line = node.start_mark.line + 1 if node is not None else 1
    shown: list[Any] = []
    for index, part in enumerate(where):
        if node is None:
            shown.extend(where[index:])
            break
        if isinstance(node, yaml.MappingNode) and isinstance(part, int):
            continue
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        shown.append(part)
        node = child
    return line, tuple(shown)


def dotted(where: tuple[Any, ...]) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
