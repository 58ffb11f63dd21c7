"""Anthropic's dialect of JSON Schema: `for_anthropic` takes out of `properties` the nested
property names Anthropic rejects; the object is left open so they can still be sent, and the
description names them. MCP takes the canonical schema as it is, so it has no dialect here.

Pure: no I/O, the input is never mutated, and the output may share JSON leaves with it (see
`toolbridge.formats`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from toolbridge.formats import combinators, keywords
from toolbridge.tools import JsonSchema

_PROPERTY_KEY = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")


def for_anthropic(schema: JsonSchema) -> JsonSchema:
    """An Anthropic `input_schema`: an object root with no combinator and only safe key names."""
    out: JsonSchema = _anthropic_node(combinators.object_root(schema))
    return out


def _anthropic_node(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = keywords.map_schema(node, _anthropic_node)
    properties = out.get("properties")
    if not isinstance(properties, dict):
        return out
    rejected = [name for name in properties if not _PROPERTY_KEY.match(name)]
    if not rejected:
        return out
    out["properties"] = {k: v for k, v in properties.items() if k not in rejected}
    required = keywords.list_of(out, "required")
    out["required"] = [name for name in required if name not in rejected]
    if not out["required"]:
        del out["required"]
    for key in ("additionalProperties", "unevaluatedProperties"):
        out.pop(key, None)  # the rejected keys must stay sendable
    listed = ", ".join(json.dumps(k) + (" (required)" if k in required else "") for k in rejected)
    out["description"] = keywords.append(
        keywords.text(out.get("description")), f"Also accepts: {listed}."
    )
    return out
