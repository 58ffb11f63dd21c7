"""A conversion packed and unpacked: the same values, equal parts one object, and nothing but
our own values built from whatever bytes come in."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from toolbridge.openapi.convert import Conversion, convert
from toolbridge.openapi.documents import DocumentStore
from toolbridge.openapi.packing import FORMAT, PackError, pack, unpack
from toolbridge.tools import HttpOperation, Note, ParamBinding, Tool

FEATURES = sorted(
    p.name for p in (Path(__file__).resolve().parents[2] / "specs").glob("*.*") if p.suffix != ".md"
)


def conversion_of(*tools: Tool) -> Conversion:
    return Conversion(
        source="api", uri="file:///api.yaml", title="api", spec_version="3.1.0",
        operations=len(tools), tools=tools,
    )  # fmt: skip


def tool(name: str, schema: dict[str, object]) -> Tool:
    return Tool(
        name=name,
        original_name=name,
        description=f"{name} things",
        input_schema=schema,
        source="api",
        target=HttpOperation(
            server="api",
            method="GET",
            path=f"/{name}",
            base_url="https://api.example.com",
            operation_id=name,
            params=(ParamBinding(argument="limit", name="limit", location="query"),),
        ),
        notes=(Note(kind="cycle", message="kept as references"),),
    )


@pytest.mark.parametrize("name", FEATURES)
def test_every_feature_document_comes_back_equal(specs: Path, name: str) -> None:
    conversion = convert(DocumentStore(cache_dir=None), (specs / name).as_uri())
    assert unpack(pack(conversion)) == conversion


def test_equal_parts_become_one_object() -> None:
    """Equal content, built separately, comes back as one shared object (read-only)."""
    a = tool("a", {"type": "object", "properties": {"limit": {"type": "integer"}}})
    b = tool("b", {"type": "object", "properties": {"limit": {"type": "integer"}}})
    assert a.input_schema is not b.input_schema
    first, second = unpack(pack(conversion_of(a, b))).tools
    assert first.input_schema == a.input_schema
    assert first.input_schema is second.input_schema
    assert first.http.params[0] is second.http.params[0]
    assert first.notes[0] is second.notes[0]


def test_scalars_keep_their_types_and_lists_and_tuples_stay_apart() -> None:
    enum = [1, 1.0, True, "1", None, 0.0, -0.0, 2**63, 1e300]
    schema: dict[str, object] = {"enum": enum, "type": ["integer", "null"]}
    (back,) = unpack(pack(conversion_of(tool("a", schema)))).tools
    values = back.input_schema["enum"]
    assert [type(v) for v in values] == [type(v) for v in enum]
    assert values == enum
    assert math.copysign(1.0, values[6]) == -1.0
    assert isinstance(back.input_schema["type"], list)
    assert (type(back.tags), type(back.http.params)) == (tuple, tuple)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (float("nan"), "nan is not a JSON number"),
        (float("inf"), "inf is not a JSON number"),
        ({1: "a"}, "a mapping with keys that are not strings"),
        ({1, 2}, "cannot pack a set"),
        ("\ud800", "not JSON"),
    ],
)
def test_a_value_json_cannot_hold_exactly_is_not_packed(value: object, problem: str) -> None:
    with pytest.raises(PackError, match=problem):
        pack(conversion_of(tool("a", {"default": value})))


def _packed() -> bytes:
    return pack(conversion_of(tool("a", {"type": "object"}), tool("b", {"type": "string"})))


def _with_head(change: dict[str, object]) -> bytes:
    data = _packed()
    newline = data.index(b"\n")
    size = int(data[:newline])
    head = orjson.loads(data[newline + 1 : newline + 1 + size])
    new_head = orjson.dumps({**head, **change})
    return b"%d\n%s%s" % (len(new_head), new_head, data[newline + 1 + size :])


def _nodes_replaced(numbers: list[int]) -> bytes:
    from array import array

    data = _packed()
    newline = data.index(b"\n")
    end = newline + 1 + int(data[:newline])
    return data[:end] + array("i", numbers).tobytes()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "malformed"),
        (b"garbage", "malformed"),
        (_packed()[:-7], "malformed"),  # cut inside the node array
        (_with_head({"format": FORMAT + 1}), f"format {FORMAT + 1}, expected {FORMAT}"),
        (_with_head({"atoms": [[1]]}), "an atom that is not a scalar"),
        (_with_head({"root": 0}), "the root is a str, expected a Conversion"),
        (_with_head({"root": 10**6}), "malformed"),
        (_nodes_replaced([-3 - 99, 0]), "malformed"),  # a record class past RECORDS
        (_nodes_replaced([-1, -5, 0]), "malformed"),  # a negative count
        (_nodes_replaced([0, 7, 0]), "a mapping of 7 values for"),
        (_nodes_replaced([-3, 1, 0]), "malformed"),  # a Conversion of one field
        (_nodes_replaced([-1, 1, 10**6]), "malformed"),  # a child that is not there
    ],
)
def test_bytes_that_do_not_fit_the_format_raise_pack_error(data: bytes, problem: str) -> None:
    """Whatever comes in, unpacking answers a Conversion or PackError: nothing else escapes."""
    with pytest.raises(PackError, match=problem):
        unpack(data)


def test_what_repeats_is_stored_once(specs: Path) -> None:
    """Two conversions of one document (equal values, no object in common) pack into little
    more than one does."""
    uri = (specs / "refs-cycles.yaml").as_uri()
    one = convert(DocumentStore(cache_dir=None), uri)
    other = convert(DocumentStore(cache_dir=None), uri)
    assert one.tools[0].input_schema is not other.tools[0].input_schema
    twice = replace(one, tools=one.tools + other.tools)
    assert len(pack(twice)) < len(pack(one)) * 1.05
