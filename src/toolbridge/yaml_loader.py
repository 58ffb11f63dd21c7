"""The YAML loader every reader shares: safe, and YAML 1.2 core-schema scalars.

So `2020-01-01` stays a string, `on:` stays a key, `010` is ten and `0o10` is eight, as YAML 1.2
and real OpenAPI documents and configs mean them. Parsing only; limits and error wording
belong to the readers (`openapi.documents`, `config`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class YamlLoader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """A safe loader that resolves plain scalars by the YAML 1.2 core schema."""


def _core_schema_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}

    def add(tag: str, pattern: str, first: str) -> None:
        for ch in first:
            resolvers.setdefault(ch, []).append((tag, re.compile(pattern)))

    add("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL)$", "~nN")
    resolvers[""] = [("tag:yaml.org,2002:null", re.compile(r"^$"))]
    add("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
    add("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
    add(
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    )
    add("tag:yaml.org,2002:merge", r"^(?:<<)$", "<")
    return resolvers


YamlLoader.yaml_implicit_resolvers = _core_schema_resolvers()


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(node.value).replace("_", "")
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # YAML 1.2: a leading zero does not mean octal


YamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
