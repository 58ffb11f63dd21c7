"""JSON read and written with integers of any size (json_text.loads, dumps, beyond_64_bits)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from toolbridge.json_text import beyond_64_bits, dumps, loads


@pytest.mark.parametrize(
    ("text", "value", "beyond"),
    [
        ('{"a": 1, "b": [2.5, "x"]}', {"a": 1, "b": [2.5, "x"]}, False),
        ("18446744073709551615", 2**64 - 1, False),  # the largest orjson reads whole
        ("-9223372036854775808", -(2**63), False),
        ("18446744073709551616", 2**64, True),
        ("-9223372036854775809", -(2**63) - 1, True),  # 19 digits
        ('["12345678901234567890123"]', ["12345678901234567890123"], False),  # digits of a string
        ('{"n": 123456789012345678901234567890.5}', {"n": 1.2345678901234568e29}, False),
    ],
)
def test_integers_are_read_whole(text: str, value: Any, beyond: bool) -> None:
    assert (loads(text), loads(text.encode()), beyond_64_bits(text)) == (value, value, beyond)


REFUSED = ["NaN", "1e400", "[1,]", '{"a": 1', '"\\ud800"', "99999999999999999999 x"]


@pytest.mark.parametrize("text", REFUSED)
def test_what_orjson_refuses_is_refused(text: str) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        loads(text)


def test_integers_are_written_whole() -> None:
    assert (dumps({"a": [2**64, -(2**63) - 1]}), dumps({"a": 1})) == (
        b'{"a":[18446744073709551616,-9223372036854775809]}',
        b'{"a":1}',
    )
    with pytest.raises(TypeError):
        dumps({1, 2})
