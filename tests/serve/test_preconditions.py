"""`If-Match` as the admin API reads it: the revisions a write may apply to."""

from __future__ import annotations

import pytest

from toolbridge.errors import BadRequest
from toolbridge.serve.preconditions import if_match, revision_of
from toolbridge.state.revisions import Expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("*", None),
        ('"3"', frozenset({3})),
        ("3", frozenset({3})),  # unquoted, as curl users write it
        ('"3", "9"', frozenset({3, 9})),  # several fields joined, or one list
        ('W/"3"', frozenset()),  # weak: never matches (strong comparison), so a 412
        ('"03"', frozenset()),  # not a tag this API writes: never matches
        ('"3", W/"4"', frozenset({3})),
    ],
)
def test_the_tags_a_write_may_apply_to(header: str, expected: Expected) -> None:
    assert if_match(header) == expected


@pytest.mark.parametrize("header", ["yesterday", "", '"3" "4"', '"x"', ",".join(['"1"'] * 33)])
def test_anything_else_is_a_400_saying_what_was_expected(header: str) -> None:
    with pytest.raises(BadRequest) as caught:
        if_match(header)
    assert str(caught.value).startswith(
        'If-Match: expected * or the entity tags this API answers ("3", the entry\'s revision; '
        "at most 32), found "
    )


def test_the_etag_of_an_answer_is_its_one_entrys_revision() -> None:
    assert (
        revision_of({"server": {"id": "a", "revision": 7}, "changes": {}}),
        revision_of({"tool": "t", "valves": {}, "revision": 8}),
        revision_of({"deleted": "a"}),
        revision_of([1]),
    ) == (7, 8, None, None)
