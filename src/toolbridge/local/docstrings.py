"""Reading the docstrings of local tools: descriptions, per-parameter text, and frontmatter.

Pure functions over strings. Parameter text comes from reST fields (`:param city: ...`, also
inside an `Args:` block) and Google sections (`Args:` with `city (str): ...` entries); the
description is the prose before the first section or field, each paragraph on one line.
"""

from __future__ import annotations

import inspect
import re

_FRONTMATTER = re.compile(r"^\s*([A-Za-z_]+):\s*(.*?)\s*$")
_REST_PARAM = re.compile(
    r"^:(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?\**(\w+)\s*:\s*(.*)$"
)
_REST_FIELD = re.compile(r"^:\w+[^:]*:")
_GOOGLE_PARAMS = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):\s*$"
)
_GOOGLE_OTHER = re.compile(
    r"^(Returns?|Yields?|Raises|Examples?|Notes?|Warnings?|Attributes|See Also|Todo):\s*$"
)
_GOOGLE_ENTRY = re.compile(r"^\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_RULE = re.compile(r"^-{3,}\s*$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_LAYOUT = re.compile(r"^(\s+|\s*([-*+]|\d+[.)])\s)")


def frontmatter(docstring: str | None) -> dict[str, str]:
    """The `key: value` lines of a module docstring, keys in lower case (as Open WebUI reads)."""
    found: dict[str, str] = {}
    for line in inspect.cleandoc(docstring or "").splitlines():
        match = _FRONTMATTER.match(line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def parse_docstring(docstring: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: text}) from a function's docstring."""
    lines = inspect.cleandoc(docstring or "").splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    in_prose = True
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if _REST_FIELD.match(stripped):
            in_prose = False
            match = _REST_PARAM.match(stripped)
            i, text = _continued(lines, i + 1, _indent(line), match.group(2) if match else "")
            if match:
                params[match.group(1)] = text
            continue
        if _GOOGLE_PARAMS.match(stripped) or _GOOGLE_OTHER.match(stripped):
            in_prose = False
            i = _google_section(lines, i, params if _GOOGLE_PARAMS.match(stripped) else None)
            continue
        if i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1].strip()) and stripped:
            in_prose = False  # a NumPy-style section header: everything after it is not prose
        if in_prose:
            description.append(line)
        i += 1
    return _unwrapped("\n".join(description).strip()), params


def _unwrapped(text: str) -> str:
    """Paragraphs as single lines (a docstring's line breaks are only its source width), except
    paragraphs with lists or indented lines, which keep their layout."""
    paragraphs = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        lines = paragraph.splitlines()
        if any(_LAYOUT.match(line) for line in lines):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _google_section(lines: list[str], start: int, params: dict[str, str] | None) -> int:
    """Read the entries of a Google section starting at its header; return the next line."""
    header = _indent(lines[start])
    i = start + 1
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if _indent(line) <= header:
            break
        # `:param x:` lines inside an `Args:` block, as Open WebUI tool files often write them
        match = _REST_PARAM.match(line.strip()) or _GOOGLE_ENTRY.match(line.strip())
        i, text = _continued(lines, i + 1, _indent(line), match.group(2) if match else "")
        if params is not None and match:
            params[match.group(1)] = text
    return i


def _continued(lines: list[str], i: int, indent: int, first: str) -> tuple[int, str]:
    """Join the lines indented deeper than an entry's own line to its text."""
    parts = [first.strip()] if first.strip() else []
    while i < len(lines) and lines[i].strip() and _indent(lines[i]) > indent:
        parts.append(lines[i].strip())
        i += 1
    return i, " ".join(parts)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
