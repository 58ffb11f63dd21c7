"""The `components/schemas` of the gateway's own OpenAPI document (`openapi_document.py`).

Each tool's `$defs` move here and the references are rewritten to point here. Definitions are
shared by what they mean: two are one component when they are the same and so is everything
they refer to, down to the last reference (`_identities`), whichever tools have them; for a
large catalog that is most of them (the whole corpus: 58 MB of components became 10 MB). A
definition whose name means the same everywhere keeps its name; where a name means different
things, each meaning takes the name of the first tool part that has it in front. A definition
that refers to its tool's root schema is that tool's alone. A reference that closes a cycle of
references, `properties` and `items` is wrapped in `allOf`; and every input array carries
`items`. Pure: tools in, schemas out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache
from types import ModuleType
from typing import Any
from urllib.parse import quote, unquote

import orjson

from toolbridge import schemas as js
from toolbridge.arguments import accepted_schema
from toolbridge.forked import importing
from toolbridge.formats.openai_dialect import with_array_items
from toolbridge.tools import JsonSchema, Tool

_COMPONENT_JUNK = re.compile(r"[^A-Za-z0-9._-]+")
RESERVED = frozenset({"toolbridge.Result", "toolbridge.Error"})
"""Names the document itself uses in `components/schemas`."""


class Components:
    """The `components/schemas` of the document, and each tool's schemas rewritten to use them."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.schemas: dict[str, JsonSchema] = {}
        self._taken: set[str] = set(RESERVED)
        parts = [(tool, part, schema) for tool in tools for part, schema in _parts(tool)]
        identities = [_identities(_defs_of(schema)) for _, _, schema in parts]
        meanings: dict[str, set[bytes | None]] = {}
        for found in identities:
            for key, identity in found.items():
                meanings.setdefault(key, set()).add(identity)
        named: dict[tuple[str, bytes], str] = {}
        self._rewritten: dict[tuple[str, str], JsonSchema] = {}
        for (tool, part, schema), found in zip(parts, identities, strict=True):
            prefix = tool.name if part == "input" else f"{tool.name}.{part}"
            names: dict[str, str] = {}
            for key, identity in found.items():
                if identity is None:  # refers to this tool's root: its own
                    names[key] = self._take(f"{prefix}.{key}")
                elif (key, identity) in named:
                    names[key] = named[(key, identity)]
                else:
                    unique = len(meanings[key]) == 1
                    names[key] = named[(key, identity)] = self._take(
                        key if unique else f"{prefix}.{key}"
                    )
            own: str | None = None
            if _refers_to_root(schema):
                # A reference to the schema itself (`#`, `#/properties/...`) needs the schema at
                # a name of its own, which the operation then refers to.
                own = self._take(f"{tool.name}.input" if part == "input" else prefix)
            rewrite = _Rewrite(names, own, _defs_of(schema))
            for key, definition in _defs_of(schema).items():
                if names[key] not in self.schemas:
                    self.schemas[names[key]] = rewrite(definition)
            rewritten = rewrite({k: v for k, v in schema.items() if k != "$defs"})
            if own is not None:
                self.schemas[own] = rewritten
                rewritten = {"$ref": pointer(own)}
            self._rewritten[(tool.name, part)] = rewritten
        _break_cycles(self.schemas)

    def schema(self, tool: Tool, part: str) -> JsonSchema | None:
        return self._rewritten.get((tool.name, part))

    def _take(self, wanted: str) -> str:
        base = _COMPONENT_JUNK.sub("_", wanted) or "schema"
        name, n = base, 2
        while name in self._taken:
            name = f"{base}_{n}"
            n += 1
        self._taken.add(name)
        return name


def _is_regex(pattern: Any) -> bool:
    return bool(_validator().oas31_format_checker.conforms(pattern, "regex"))


@lru_cache(maxsize=1)
def _validator() -> ModuleType:
    """The OpenAPI schema validator, imported when a document is first built, not at start (its
    libraries take 4 MB and a while); a large document is built in a forked child, which
    imports it there (`forked.importing`)."""
    with importing():
        import openapi_schema_validator
    return openapi_schema_validator


def _break_cycles(schemas: dict[str, JsonSchema]) -> None:
    """Wrap, in place, each reference that closes a cycle of references, properties and items."""
    prefix = "#/components/schemas/"
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in schemas:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(_inlined_refs(schemas[start])))]
        while stack:
            name, refs = stack[-1]
            node = next(refs, None)
            if node is None:
                state[name] = 2
                stack.pop()
                continue
            ref = node["$ref"]
            target = unquote(ref[len(prefix) :]) if ref.startswith(prefix) else None
            if target is None or target not in schemas:
                continue
            if state.get(target) == 1:
                node["allOf"] = [{"$ref": node.pop("$ref")}, *node.get("allOf", ())]
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(_inlined_refs(schemas[target]))))


def _inlined_refs(schema: Any) -> list[JsonSchema]:
    """The nodes holding a `$ref` that a client reaches going down `properties` and `items`."""
    found = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("$ref"), str):
            found.append(node)
            continue  # such clients read nothing beside a reference
        properties = node.get("properties")
        if isinstance(properties, dict):
            stack.extend(properties.values())
        stack.append(node.get("items"))
    return found


def _parts(tool: Tool) -> list[tuple[str, JsonSchema]]:
    # Exactly what a call takes; and Open WebUI hands these to whatever model it uses,
    # OpenAI's included: arrays carry `items`.
    parts = [("input", with_array_items(accepted_schema(tool)))]
    if tool.output_schema is not None and tool.output_promised:
        # As MCP's outputSchema: only where answers are held to it (an upstream's may differ).
        parts.append(("result", tool.output_schema))
    return parts


def _defs_of(schema: JsonSchema) -> dict[str, Any]:
    defs = schema.get("$defs")
    return defs if isinstance(defs, dict) else {}


def _identities(defs: dict[str, Any]) -> dict[str, bytes | None]:
    """A digest of what each definition means: its own JSON and, through its references, that
    of every definition it reaches. Two definitions with the same digest can be one component,
    and so can everything they refer to. None for one that reaches a reference to the root
    schema (`#`, `#/properties/...`), which means its tool's schema and no other.

    References form a graph that may have cycles: its strongly connected components (Tarjan's
    algorithm, without recursion) are digested together, each after those it refers to.
    """
    own = {
        key: hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).digest()
        for key, value in defs.items()
    }
    edges = {key: _local_refs(value) for key, value in defs.items()}
    identity: dict[str, bytes | None] = {}
    for group in _strongly_connected(edges):
        members = set(group)
        outside: set[bytes] = set()
        rooted = False
        for key in group:
            for target in edges[key]:
                if target is None:
                    rooted = True
                elif target in members:
                    continue
                elif target not in defs:  # dangling: the name is what it means
                    outside.add(b"?" + target.encode())
                elif (found := identity[target]) is None:
                    rooted = True
                else:
                    outside.add(found)
        if rooted:
            identity.update(dict.fromkeys(group))
            continue
        digest = hashlib.sha256()
        for key in sorted(group):
            digest.update(b"%d:%s%s" % (len(key.encode()), key.encode(), own[key]))
        for found in sorted(outside):
            digest.update(found)
        whole = digest.digest()
        for key in group:
            identity[key] = hashlib.sha256(whole + key.encode()).digest()
    return identity


def _strongly_connected(edges: dict[str, set[str | None]]) -> list[list[str]]:
    """The strongly connected components of the reference graph, each after every component it
    refers to (Tarjan's order); references to names not in the graph are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(t for t in edges[start] if t in edges)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(t for t in edges[target] if t in edges))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def _local_refs(schema: Any) -> set[str | None]:
    """The `$defs` names a schema refers to; None for a reference to the root schema."""
    found: set[str | None] = set()
    for ref in _refs(schema):
        name = _def_name(ref)
        if name is not None:
            found.add(name[0])
        elif ref.startswith("#"):
            found.add(None)
    return found


def _refers_to_root(schema: JsonSchema) -> bool:
    return any(ref.startswith("#") and _def_name(ref) is None for ref in _refs(schema))


def _refs(schema: Any) -> Iterable[str]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        stack.extend(_subschemas(node))


def _subschemas(node: JsonSchema) -> Iterable[Any]:
    """The schemas directly inside a schema (never values such as `default` or `enum`)."""
    for key, value in node.items():
        if key in js.SUBSCHEMA_KEYWORDS:
            yield from value if isinstance(value, list) else (value,)
        elif key in js.SUBSCHEMA_MAPS or key == "$defs":
            if isinstance(value, dict):
                yield from value.values()
        elif key in js.SUBSCHEMA_LISTS and isinstance(value, list):
            yield from value


def _def_name(ref: str) -> tuple[str, str] | None:
    """(definition name, the rest of the pointer) for `#/$defs/<name>...`, else None."""
    if not ref.startswith("#/$defs/"):
        return None
    token, slash, rest = ref[len("#/$defs/") :].partition("/")
    return unquote(token).replace("~1", "/").replace("~0", "~"), slash + rest


def pointer(name: str) -> str:
    return "#/components/schemas/" + quote(name, safe="._-")


class _Rewrite:
    """Copies the schemas of one tool part for the document.

    References point into the document's components, and two things the OpenAPI validator
    refuses are left out: a `default` its own schema rejects, and a `pattern` that is no regular
    expression in the dialect's sense (ECMA-262). Both come from real documents; the gateway
    still checks arguments against the tool's own schema.
    """

    def __init__(self, names: dict[str, str], root: str | None, defs: dict[str, Any]) -> None:
        self.names = names
        self.root = root
        self.defs = defs

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: JsonSchema = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = self._target(value)
            elif key in js.SUBSCHEMA_KEYWORDS or key in js.SUBSCHEMA_LISTS:
                out[key] = self(value)
            elif key in js.SUBSCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self(sub) for name, sub in value.items()}
            elif self._keeps(key, value, node):
                out[key] = value
        return out

    def _target(self, ref: str) -> str:
        found = _def_name(ref)
        if found is not None and found[0] in self.names:
            return pointer(self.names[found[0]]) + found[1]
        if ref.startswith("#") and self.root is not None:
            return pointer(self.root) + ref[1:]
        return ref

    def _keeps(self, key: str, value: Any, node: JsonSchema) -> bool:
        if key == "pattern":
            return _is_regex(value)
        return key != "default" or self._fits(value, node)

    def _fits(self, value: Any, node: JsonSchema) -> bool:
        """Whether `value` fits the node as the document has it (less a pattern left out)."""
        validator = _validator()
        schema = {k: v for k, v in node.items() if k != "pattern" or _is_regex(v)}
        if self.defs:
            schema["$defs"] = self.defs
        try:
            return bool(
                validator.OAS31Validator(
                    schema, format_checker=validator.oas31_format_checker
                ).is_valid(value)
            )
        except Exception:  # a schema the validator cannot use makes no promise about a default
            return False
