"""A plain seeded mutator of OpenAPI documents, for the fuzz test: bounded and repeatable.

`mutants(document, seed, count)` yields `count` copies of a parsed document, each with a few
random edits of the kinds real documents get wrong: a value of the wrong type where a list, a
mapping, a string or a number belongs (`tags: 5`, `items: []`, `type: [string, {}]`), a key
dropped, a subtree copied to where it does not belong, a `$ref` that leads nowhere, to itself or
to the wrong kind of object, and the keywords that steer conversion (`in`, `style`, `type`,
`required`, `enum`, `content`, ...) given odd values. Same document, seed and count: same
mutants, on every machine.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

Path = tuple[str | int, ...]

ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    5,
    -1,
    1.5,
    10**30,
    "",
    "x",
    "#/",
    "{",
    "\x00\u2028",
    [],
    [None],
    ["string", {}],
    [[]],
    {},
    {"$ref": "#"},
    {"$ref": "#/nowhere"},
    {"$ref": "other.yaml#/x"},
    {"$ref": 5},
    {"type": "nonsense"},
    {"type": ["string", {}]},
    {"allOf": [{}, 5]},
    {"oneOf": None},
    {"properties": []},
    {"items": []},
    {"required": "name"},
    {"enum": []},
    {"not": {}},
    {"additionalProperties": "yes"},
)
"""Values put where they do not belong."""

STEERING: dict[str, tuple[Any, ...]] = {
    "in": ("path", "query", "header", "cookie", "body", "formData", "space", 5, None),
    "style": ("form", "simple", "deepObject", "matrix", "label", "pipeDelimited", "x", 3),
    "explode": ("yes", None, 1),
    "type": ("object", "array", "string", "null", "file", ["string", "null"], [], 7),
    "format": ("binary", "byte", "date-time", 9, None),
    "required": (True, [], ["a", "a"], [5], "x", None),
    "enum": ([], [None], [{}], "a", 3),
    "pattern": ("[", "(?<x>a)", "\\", 4),
    "content": ({}, [], {"*/*": 5}, {"application/json": None}, "x"),
    "schema": ({}, [], 5, None, {"$ref": "#/components/schemas"}),
    "items": ([], {}, 5, True, None),
    "properties": ([], 5, {"a": 5}, {"": {}}, None),
    "parameters": ({}, 5, [5], [{}], [{"$ref": "#/paths"}], None),
    "responses": ([], 5, {"200": 5}, {"default": []}, None),
    "requestBody": ([], 5, {"content": 5}, {"$ref": "#/info"}, None),
    "servers": (5, [5], [{"url": 5}], [{"url": "{x}", "variables": 5}], None),
    "security": (5, [5], [{"x": 5}], {}, None),
    "tags": (5, [5], "x", None, {}),
    "operationId": (5, "", None, ["x"], "a/b c"),
    "name": (5, "", None, "Authorization", "a b"),
    "allOf": ([], [5], {}, None),
    "discriminator": (5, {"propertyName": 5}, {"mapping": 5}),
    "nullable": ("yes", 5),
    "default": ({"a": [1]}, None),
    "minimum": ("1", None, [1]),
    "maxLength": (-1, "9", 1.5),
    "additionalProperties": ("x", 5, [], None),
    "$ref": (5, "", "#", "#/paths", "#/components/schemas/Missing", "x.yaml", "#/%zz"),
}
"""Keys whose value decides how something converts, with values to try there."""


def mutants(document: Any, seed: int, count: int, *, edits: int = 3) -> Iterator[Any]:
    """`count` mutated deep copies of `document`, each with 1 to `edits` edits."""
    rng = random.Random(seed)
    for _ in range(count):
        mutant = copy.deepcopy(document)
        for _ in range(rng.randint(1, edits)):
            mutant = _edit(mutant, rng)
        yield mutant


def _edit(document: Any, rng: random.Random) -> Any:
    places = list(_places(document, ()))
    if not places:
        return document
    steering = [p for p in places if p[-1] in STEERING] if places else []
    if steering and rng.random() < 0.5:
        path = rng.choice(steering)
        key = path[-1]
        assert isinstance(key, str)
        return _set(document, path, copy.deepcopy(rng.choice(STEERING[key])))
    path = rng.choice(places)
    kind = rng.random()
    if kind < 0.5:
        return _set(document, path, copy.deepcopy(rng.choice(ODD_VALUES)))
    if kind < 0.7:
        return _delete(document, path)
    if kind < 0.85:
        donor = _get(document, rng.choice(places))
        return _set(document, path, copy.deepcopy(donor))
    pointer = "#/" + "/".join(str(p) for p in rng.choice(places))
    return _set(document, path, {"$ref": pointer})


def _places(node: Any, path: Path, depth: int = 0) -> Iterator[Path]:
    """Every key path in the document (bounded, so huge documents stay quick)."""
    if depth > 24:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if not path and key in ("openapi", "swagger"):
                continue  # a document without its version is refused whole: one case is enough
            yield (*path, key)
            yield from _places(value, (*path, key), depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node[:8]):
            yield (*path, index)
            yield from _places(value, (*path, index), depth + 1)


def _get(node: Any, path: Path) -> Any:
    for part in path:
        node = node[part]
    return node


def _set(document: Any, path: Path, value: Any) -> Any:
    parent = _get(document, path[:-1])
    parent[path[-1]] = value
    return document


def _delete(document: Any, path: Path) -> Any:
    parent = _get(document, path[:-1])
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return document
