"""Tool and argument names: valid for every client, unique, deterministic, and explained."""

from __future__ import annotations

import re

import pytest

from toolbridge.names import (
    MAX_NAME,
    argument_names,
    assign,
    base_name,
    is_valid_name,
    is_valid_property,
    safe_name,
)
from toolbridge.tools import NAME_PATTERN, PROPERTY_PATTERN, Note

LONG_ID = "listAllAvailablePetsForAdoptionFilteredByShelterRegionSpeciesAgeAndVaccinationStatus"


@pytest.mark.parametrize(
    ("original", "prefix", "expected"),
    [
        ("listPets", "", "listPets"),
        ("pets/list", "", "pets_list"),
        ("pets.list", "", "pets_list"),
        ("get pet #1 by id", "", "get_pet_1_by_id"),
        ("  spaced  ", "", "spaced"),
        ("123go", "", "_123go"),
        ("-x-", "", "x"),
        ("café au lait", "", "cafe_au_lait"),
        ("ﬁle", "", "file"),
        ("ペット検索", "", "op_e2467b94"),
        ("", "", "op_e3b0c442"),
        (LONG_ID, "", "listAllAvailablePetsForAdoptionFilteredByShelterRegionS_5fa30a96"),
        ("listPets", "shop", "shop_listPets"),
        ("1st", "v2", "v2_1st"),
        ("x" * 70, "shop", "shop_" + "x" * 50 + "_c71bd109"),
    ],
)
def test_safe_name(original: str, prefix: str, expected: str) -> None:
    name = safe_name(original, prefix=prefix)
    assert name == expected
    assert re.fullmatch(NAME_PATTERN, name)


def test_long_names_sharing_a_head_stay_distinct() -> None:
    first = safe_name("x" * 80 + "A")
    second = safe_name("x" * 80 + "B")
    assert (len(first), len(second)) == (MAX_NAME, MAX_NAME)
    assert first[:55] == second[:55]
    assert first != second


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("GET /", "get"),
        ("GET /pets/{petId}", "get_pets_petId"),
        ("POST /pets/{petId}/photo", "post_pets_petId_photo"),
        ("GET /books", "get_books"),
        ("DELETE /stores/{storeId}/stock-level", "delete_stores_storeId_stock-level"),
    ],
)
def test_safe_name_from_method_and_path(original: str, expected: str) -> None:
    assert safe_name(original, method_path=True) == expected


@pytest.mark.parametrize(
    ("operation_id", "method", "path", "expected"),
    [
        ("listPets", "get", "/pets", "listPets"),
        ("  listPets ", "get", "/pets", "listPets"),
        (None, "get", "/pets/{id}", "GET /pets/{id}"),
        ("", "post", "/pets", "POST /pets"),
        ("   ", "delete", "/pets", "DELETE /pets"),
    ],
)
def test_base_name(operation_id: str | None, method: str, path: str, expected: str) -> None:
    assert base_name(operation_id, method, path) == expected


@pytest.mark.parametrize(
    ("name", "valid_name", "valid_property"),
    [
        ("listPets", True, True),
        ("_private", True, True),
        ("list-pets", True, True),
        ("1st", False, True),
        ("pets.list", False, True),
        ("x" * 64, True, True),
        ("x" * 65, False, False),
        ("", False, False),
        ("a b", False, False),
        ("名前", False, False),
    ],
)
def test_validity(name: str, valid_name: bool, valid_property: bool) -> None:
    assert (is_valid_name(name), is_valid_property(name)) == (valid_name, valid_property)
    assert bool(re.fullmatch(NAME_PATTERN, name)) == valid_name
    assert bool(re.fullmatch(PROPERTY_PATTERN, name)) == valid_property


def test_assign_keeps_first_holder_and_numbers_the_rest() -> None:
    """`a_2` is the literal name of a later operation, so the second `a` skips to `a_3`."""
    names, notes = assign(
        [("a", "a", "GET /a"), ("a", "a", "GET /b"), ("a_2", "a_2", "GET /c"), ("a", "a", "GET /d")]
    )
    assert names == ["a", "a_3", "a_2", "a_4"]
    assert notes == [
        Note(
            kind="name-deduplicated",
            message="'a' is also the name of an earlier operation; this one is 'a_3'",
            where="GET /b",
        ),
        Note(
            kind="name-deduplicated",
            message="'a' is also the name of an earlier operation; this one is 'a_4'",
            where="GET /d",
        ),
    ]


def test_assign_explains_sanitized_and_shortened_names() -> None:
    names, notes = assign(
        [
            ("pets_list", "pets/list", "GET /pets"),
            ("pets_list", "pets.list", "GET /pets/summary"),
            ("listAllAvailablePetsForAdoptionFilteredByShelterRegionS_5fa30a96", LONG_ID, "GET /x"),
            ("listPets", "listPets", "GET /y"),
        ]
    )
    assert names == [
        "pets_list",
        "pets_list_2",
        "listAllAvailablePetsForAdoptionFilteredByShelterRegionS_5fa30a96",
        "listPets",
    ]
    assert notes == [
        Note(
            kind="name-changed",
            message="'pets/list' is not a valid tool name; the tool is named 'pets_list'",
            where="GET /pets",
        ),
        Note(
            kind="name-deduplicated",
            message="'pets_list' is also the name of an earlier operation; "
            "this one is 'pets_list_2'",
            where="GET /pets/summary",
        ),
        Note(
            kind="name-changed",
            message=f"{LONG_ID!r} is too long; the tool is named "
            "'listAllAvailablePetsForAdoptionFilteredByShelterRegionS_5fa30a96'",
            where="GET /x",
        ),
    ]


def test_assign_shortens_a_full_length_duplicate() -> None:
    full = "y" * MAX_NAME
    names, _ = assign([(full, full, "GET /a"), (full, full, "GET /b")])
    assert names == [full, "y" * (MAX_NAME - 2) + "_2"]


def test_assign_is_deterministic() -> None:
    candidates = [("a", "a", "1"), ("b", "b", "2"), ("a", "a", "3"), ("a", "a", "4")]
    assert assign(candidates) == assign(list(candidates))


def test_argument_names() -> None:
    arguments, notes = argument_names(
        [
            ("version", "query"),
            ("version", "header"),
            ("X-Request-Id", "header"),
            ("X Request Id", "header"),
            ("ids[]", "query"),
            ("名前", "query"),
            ("a" * 70, "query"),
            ("a", "query"),
            ("a", "header"),
            ("header_a", "header"),
            ("a", "cookie"),
            ("filter.name", "query"),
        ]
    )
    assert arguments == [
        "version",
        "header_version",
        "X-Request-Id",
        "X_Request_Id",
        "ids",
        "arg",
        "a" * 64,
        "a",
        "header_a",
        "header_header_a",
        "cookie_a",
        "filter.name",
    ]
    assert notes == [
        Note(
            kind="argument-renamed",
            message="header parameter 'version' is the argument 'header_version'",
        ),
        Note(
            kind="argument-renamed",
            message="header parameter 'X Request Id' is the argument 'X_Request_Id'",
        ),
        Note(kind="argument-renamed", message="query parameter 'ids[]' is the argument 'ids'"),
        Note(kind="argument-renamed", message="query parameter '名前' is the argument 'arg'"),
        Note(
            kind="argument-renamed",
            message=f"query parameter {'a' * 70!r} is the argument {'a' * 64!r}",
        ),
        Note(kind="argument-renamed", message="header parameter 'a' is the argument 'header_a'"),
        Note(
            kind="argument-renamed",
            message="header parameter 'header_a' is the argument 'header_header_a'",
        ),
        Note(kind="argument-renamed", message="cookie parameter 'a' is the argument 'cookie_a'"),
    ]
    assert all(is_valid_property(argument) for argument in arguments)


def test_argument_names_numbers_what_a_location_prefix_cannot_separate() -> None:
    arguments, _ = argument_names([("名前", "query"), ("名前", "query"), ("名前", "query")])
    assert arguments == ["arg", "query_arg", "query_arg_2"]


def test_names_within_one_source_are_unique_without_regard_to_case() -> None:
    names, notes = assign([("search", "search", "GET /a"), ("SEARCH", "SEARCH", "GET /b")])

    assert names == ["search", "SEARCH_2"]
    assert notes == [
        Note(
            kind="name-deduplicated",
            message="'SEARCH' is also the name of an earlier operation ('search'; names ignore "
            "case); this one is 'SEARCH_2'",
            where="GET /b",
        )
    ]
