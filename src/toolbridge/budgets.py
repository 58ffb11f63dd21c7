"""Result budgets: what of a large answer reaches the model (`result: {select, max_bytes}`).

A server's `result` applies to all its tools; `tools: {NAME: {result: ...}}` (NAME: the tool's
name or operationId) changes it for one tool, key by key (`select: "@"` keeps the whole answer).

- `select`, a JMESPath expression, reduces a successful JSON answer to what the model needs
  (`items[].{id: id, title: title}`). Error answers (`ok` false) are passed on whole: their
  shape is not the one the expression was written for. A successful answer it cannot be
  applied to, or fails on, is withheld (an error result saying why): what it leaves out may be
  what must not reach the model.
- `max_bytes` caps the answer's size as compact JSON (text answers: as UTF-8). Arrays are cut
  first, the largest first, keeping their leading items, and end with a string saying how many
  items were left out (`"(90 more items left out)"`); when that is not enough, long strings are
  cut (`"… (1234 more characters left out)"`), at most MAX_CUTS parts; an array keeps one item
  at least (its parts are cut in turn), so the model sees what the items are. When that is not
  enough, the objects and arrays below the deepest level that makes the answer fit are each
  said in a few words (`"(an object of 12 keys left out)"`); as a last resort (wide at the
  top) the answer becomes its JSON text, cut. Binary answers (`{"base64", ...}`) are left
  alone: a cut one is no use.

What was done is `ToolResult.shaped`, which the call envelope reports as `budget`. A tool with
a budget promises no output schema (its answers are reshaped): `reshape` drops it, with a note.
Pure: values in, values out.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import jmespath
import orjson
from jmespath.exceptions import JMESPathError

from toolbridge.config import ResultBudget, Server
from toolbridge.json_text import json_text
from toolbridge.tools import Cut, HttpOperation, Note, Shaped, Tool, ToolResult
from toolbridge.upstream.media_types import is_json_type

MIN_STRING = 64
"""Strings shorter than this are never cut: they are names and ids, not bulk."""
Part = tuple[str, int, tuple[Any, Any], Any]
"""A part of a JSON value that can be cut: path, size, (parent, key), the array or string."""
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BINARY_KEYS = {"base64", "size", "content_type"}
MAX_CUTS = 64
"""Arrays and strings cut at most in one answer (an answer of thousands of small arrays is not
worth cutting one by one); past that, objects and arrays are said in a few words, or the
answer becomes its JSON text, cut."""
MAX_DEPTH = 32
"""The deepest level whose objects and arrays are put in a few words to make an answer fit."""
MAX_REPORTED_CUTS = 16
"""Cuts the envelope lists (`left_out`), largest first; `more_left_out` counts the rest."""


@dataclass(frozen=True, slots=True)
class Budget:
    """One tool's result budget, its expression compiled."""

    select: str | None
    max_bytes: int | None
    expression: Any = None


def entry_names(tool: Tool) -> tuple[str, ...]:
    """The names a server's `tools:` entry may give a tool by, in the order one is chosen when
    several entries name it: its name, the document's own name, its operationId."""
    target = tool.target
    operation_id = target.operation_id if isinstance(target, HttpOperation) else None
    names = (tool.name, tool.original_name, operation_id)
    return tuple(dict.fromkeys(name for name in names if name is not None))


class Budgets:
    """The result budgets of a config's servers, found per tool."""

    def __init__(self, servers: Iterable[Server]) -> None:
        self._servers: dict[str, tuple[ResultBudget | None, dict[str, ResultBudget | None]]] = {}
        self._found: dict[tuple[str, str], Budget | None] = {}
        for server in servers:
            # Every entry, with a budget or without: the one a tool is given by is used whole
            # (`entry_names`' order), as `toolsets` says of entries naming the same tool.
            own = {name: settings.result for name, settings in server.tools.items()}
            if server.result is not None or any(own.values()):
                self._servers[server.id] = (server.result, own)

    def __bool__(self) -> bool:
        return bool(self._servers)

    def for_tool(self, tool: Tool) -> Budget | None:
        """The budget of a tool: its own entry's keys over its server's; None without one.
        Found (and compiled) once per tool."""
        target = tool.target
        if not isinstance(target, HttpOperation) or target.server not in self._servers:
            return None
        key = (target.server, tool.name)
        if key not in self._found:
            self._found[key] = self._budget(tool, target)
        return self._found[key]

    def _budget(self, tool: Tool, target: HttpOperation) -> Budget | None:
        shared, own = self._servers[target.server]
        mine = next((own[name] for name in entry_names(tool) if name in own), None)
        select = _pick(mine, shared, "select")
        max_bytes = _pick(mine, shared, "max_bytes")
        if select is None and max_bytes is None:
            return None
        expression = jmespath.compile(select) if select is not None else None
        return Budget(select=select, max_bytes=max_bytes, expression=expression)

    def reshape(self, tools: Iterable[Tool]) -> Iterator[Tool]:
        """The tools, those with a budget without their output schema (and noted)."""
        for tool in tools:
            if tool.output_schema is None or self.for_tool(tool) is None:
                yield tool
                continue
            note = Note(
                kind="output-schema-dropped",
                message="a result budget reshapes its answers, so no output schema is promised",
                where=tool.where,
            )
            yield replace(tool, output_schema=None, notes=(*tool.notes, note))


def _pick(mine: ResultBudget | None, shared: ResultBudget | None, key: str) -> Any:
    for budget in (mine, shared):
        value = getattr(budget, key) if budget is not None else None
        if value is not None:
            return value
    return None


def apply(budget: Budget, result: ToolResult) -> ToolResult:
    """The result as its budget lets it through; unchanged (and without `shaped`) when the
    budget neither selects nor has to cut. A successful answer the budget's `select` cannot
    be applied to (see `_selectable`), or fails on, is withheld: an error result that says why,
    never the whole answer the expression was written to reduce."""
    value = result.result
    if _is_binary(result):
        return result
    selected = None
    is_text = isinstance(value, str) and not is_json_type(result.content_type or "")
    # Text is not selected, nor an answer without a body (a 204) or a JSON `null`.
    if budget.expression is not None and result.ok and not is_text and value is not None:
        try:
            value = budget.expression.search(_selectable(value, result))
            selected = budget.select
        except _Unselectable as exc:
            return _withheld(result, budget, str(exc))
        except JMESPathError as exc:
            return _withheld(result, budget, f"the expression failed on it: {exc}")
        except RecursionError:
            return _withheld(result, budget, "the expression went too deep into it")
    form = result.text_form
    if form == "json" and isinstance(value, str) and selected is None and not result.truncated:
        # A JSON answer passed on as its text (integers past 64 bits): read with integers
        # whole, so that it is cut as JSON (its arrays, saying how much), not as text.
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(value)
    if not isinstance(value, str):
        form = None  # a value (selected, or read above), no longer the answer's JSON text
    try:
        size = _size(value)
    except (orjson.JSONEncodeError, RecursionError):
        # Integers past 64 bits, or deeper than orjson writes: its JSON text, cut as text.
        value = json_text(value)
        size = _text_size(value)
        form = "json"
    cuts: list[Cut] = []
    text_cut = False
    if budget.max_bytes is not None and size > budget.max_bytes:
        # The call's own value (parsed for it, selected from it): cut in place, not copied
        # (a copy of 2,000,000 items cost a second and a half of the event loop).
        value, cuts, text_cut = fit(value, budget.max_bytes, owned=True)
    if selected is None and not cuts and not text_cut:
        return result
    shaped = Shaped(
        selected=selected,
        size=size,
        max_bytes=budget.max_bytes,
        cuts=tuple(cuts[:MAX_REPORTED_CUTS]),
        more_cuts=max(0, len(cuts) - MAX_REPORTED_CUTS),
        text_cut=text_cut,
    )
    return replace(result, result=value, shaped=shaped, text_form=form)


class _Unselectable(Exception):
    """Why a successful answer cannot be selected from."""


def _selectable(value: Any, result: ToolResult) -> Any:
    """The answer as JSON to select from: any JSON value (a string, a number too). A JSON
    answer passed on as its text (integers past 64 bits, nesting deeper than orjson reads) is
    read here with the standard library; one cut at the size cap, or no JSON though it says so,
    cannot be selected from."""
    if result.truncated:
        raise _Unselectable(
            "it was longer than the gateway's size cap, so it was cut and is no whole JSON"
        )
    if result.text_form == "not_json":
        raise _Unselectable("it says it is JSON but is not")
    if result.text_form == "too_deep":
        raise _Unselectable("it is nested deeper than the gateway reads JSON (1,024 levels)")
    if result.text_form != "json" or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except RecursionError:
        raise _Unselectable("it is nested too deep to read") from None
    except ValueError:
        raise _Unselectable("it says it is JSON but is not") from None


def _withheld(result: ToolResult, budget: Budget, why: str) -> ToolResult:
    text = (
        f"the answer was withheld: this tool's result select ({budget.select}) could not be "
        f"applied, as {why}"
    )
    return ToolResult(ok=False, status=result.status, content_type="text/plain", result=text)


def fit(value: Any, limit: int, *, owned: bool = False) -> tuple[Any, list[Cut], bool]:
    """`value` cut to at most `limit` bytes of compact JSON (text: of UTF-8): the value, the
    arrays cut, and whether text was cut. `owned`: `value` is the caller's to change (cut in
    place); else a copy is cut.

    The bulkiest part first, at most MAX_CUTS of them: the parts wait in a heap by size, each
    measured once. A part's size stays true while it waits: only its own cut changes it, and
    what lies inside an array is looked into (and can be cut) only once the array is cut. So
    the answer's size is kept by arithmetic, not by writing it again after each cut.
    """
    if isinstance(value, str):
        kept = _kept_chars(value, limit, _text_size)
        cut = Cut(path="$", kept=kept, left_out=len(value) - kept, unit="characters")
        return _cut_text(value, kept), [cut], True
    if not owned:
        value = orjson.loads(_dumps(value))  # a copy of our own to cut in place
    cuts: list[Cut] = []
    text_cut = False
    size = _json_size(value)
    waiting: list[tuple[int, int, Part]] = []
    order = itertools.count()  # ties: first found first

    def wait(parts: Iterator[Part]) -> None:
        for part in parts:
            heapq.heappush(waiting, (-part[1], next(order), part))

    wait(_bulk(value, "$", (None, None)))
    while size > limit and waiting and len(cuts) < MAX_CUTS:
        _, _, (path, part_size, (parent, key), part) = heapq.heappop(waiting)
        room = limit - (size - part_size)
        if isinstance(part, list):
            kept = _keep(part, room)
            if kept < len(part):
                cuts.append(Cut(path=path, kept=kept, left_out=len(part) - kept))
                part[kept:] = [_items_marker(len(part) - kept)]
                size += _json_size(part) - part_size
            for index, item in enumerate(part[:kept]):
                wait(_bulk(item, f"{path}[{index}]", (part, index)))
        else:
            kept = _kept_chars(part, max(0, room), _json_size)
            parent[key] = _cut_text(part, kept)
            size += _json_size(parent[key]) - part_size
            cuts.append(Cut(path=path, kept=kept, left_out=len(part) - kept, unit="characters"))
            text_cut = True
    if size <= limit:
        return value, cuts, text_cut
    depth = _fitting_depth(value, size, limit)
    if depth is not None:  # objects and arrays below a depth, each said in a few words
        return value, cuts + _summarize(value, depth), text_cut
    # Too many parts, or wide at the top: the JSON text, cut, measured as it is sent (a JSON
    # string: its every quote escaped), so that it fits what the budget promised of the answer.
    text = _dumps(value).decode()
    kept = _kept_chars(text, limit, _json_size)
    whole = Cut(path="$", kept=kept, left_out=len(text) - kept, unit="characters")
    return _cut_text(text, kept), [whole], True


def _fitting_depth(value: Any, size: int, limit: int) -> int | None:
    """The deepest level (1 to MAX_DEPTH) at which putting each object and array in a few words
    (`_summary`) makes `value` fit, or None when even level 1 does not."""
    found = None
    for depth in range(1, MAX_DEPTH + 1):
        saved = 0
        containers = 0
        for _, node, _ in _at_depth(value, depth):
            saved += max(0, _json_size(node) - _json_size(_summary(node)))
            containers += 1
        if containers == 0 or size - saved > limit:
            break
        found = depth
    return found


def _summarize(value: Any, depth: int) -> list[Cut]:
    """Each object and array `depth` levels down in `value` replaced by its summary (where that
    is shorter), in place; the cuts that says, the largest first."""
    found = []
    for path, node, (parent, key) in list(_at_depth(value, depth)):
        size, summary = _json_size(node), _summary(node)
        if _json_size(summary) >= size:
            continue  # as short as it is
        parent[key] = summary
        unit: Literal["items", "keys"] = "items" if isinstance(node, list) else "keys"
        found.append((size, Cut(path=path, kept=0, left_out=len(node), unit=unit)))
    found.sort(key=lambda pair: -pair[0])
    return [cut for _, cut in found]


def _at_depth(value: Any, depth: int) -> Iterator[tuple[str, Any, tuple[Any, Any]]]:
    """The non-empty objects and arrays `depth` levels below `value` (path, node, place)."""
    level: list[tuple[str, Any, tuple[Any, Any]]] = [("$", value, (None, None))]
    for _ in range(depth):
        below: list[tuple[str, Any, tuple[Any, Any]]] = []
        for path, node, _ in level:
            if isinstance(node, dict):
                below += [(_child(path, k), v, (node, k)) for k, v in node.items()]
            elif isinstance(node, list):
                below += [(f"{path}[{i}]", v, (node, i)) for i, v in enumerate(node)]
        level = below
    return ((p, n, place) for p, n, place in level if isinstance(n, dict | list) and n)


def _summary(node: dict[str, Any] | list[Any]) -> str:
    """An object or array left out, in a few words."""
    if isinstance(node, list):
        return f"(an array of {len(node)} item{'s' if len(node) != 1 else ''} left out)"
    return f"(an object of {len(node)} key{'s' if len(node) != 1 else ''} left out)"


def _keep(array: list[Any], room: int) -> int:
    """How many leading items fit in `room` bytes with the marker for the rest; at least one
    (what is inside it is cut next), so that the model sees what the items are."""
    kept, used = 0, 2  # the brackets
    for index, item in enumerate(array):
        with_item = used + _json_size(item) + 1  # and a comma before the marker
        if with_item + _json_size(_items_marker(len(array) - index - 1)) > room:
            break
        used, kept = with_item, kept + 1
    return max(kept, 1)


def _items_marker(count: int) -> str:
    return f"({count} more items left out)" if count != 1 else "(1 more item left out)"


def _cut_text(text: str, keep: int) -> str:
    """`text`'s first `keep` characters, with a marker saying how many were left out."""
    return f"{text[:keep]}… ({len(text) - keep} more characters left out)"


def _kept_chars(text: str, limit: int, measure: Callable[[str], int]) -> int:
    """How many leading characters of `text` its cut (`_cut_text`) may keep for `measure` to
    find it at most `limit` long (0: just the marker, when none fits)."""
    low, high = 0, len(text)
    while low < high:  # the largest `keep` whose cut fits
        middle = (low + high + 1) // 2
        if measure(_cut_text(text, middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _bulk(value: Any, path: str, place: tuple[Any, Any]) -> Iterator[Part]:
    """The parts of a JSON value that can be cut: non-empty arrays (the root too) and strings
    of at least MIN_STRING characters below the root. An array's items are not looked into:
    they are smaller than it, so it is cut before any of them could be (`fit` looks into
    what it kept)."""
    stack: list[tuple[str, Any, tuple[Any, Any]]] = [(path, value, place)]
    while stack:
        path, node, place = stack.pop()
        if isinstance(node, str):
            if len(node) >= MIN_STRING and place[0] is not None:
                yield path, _json_size(node), place, node
        elif isinstance(node, list):
            if node:
                yield path, _json_size(node), place, node
        elif isinstance(node, dict):
            stack.extend((_child(path, k), v, (node, k)) for k, v in node.items())


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _PLAIN_KEY.match(key) else f"{path}[{_dumps(key).decode()}]"


def _is_binary(result: ToolResult) -> bool:
    """A binary answer, as answers.py shapes it: never one whose content type says JSON."""
    value = result.result
    return (
        isinstance(value, dict)
        and value.keys() == _BINARY_KEYS
        and not is_json_type(result.content_type or "")
    )


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # integers past 64 bits, or deeper than orjson writes
        return json_text(value).encode()


def _json_size(value: Any) -> int:
    return len(_dumps(value))


def _text_size(text: str) -> int:
    return len(text.encode())


def _size(value: Any) -> int:
    """An answer's size: text as UTF-8, anything else as compact JSON."""
    return _text_size(value) if isinstance(value, str) else _json_size(value)
