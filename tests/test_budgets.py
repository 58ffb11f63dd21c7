"""Result budgets: selecting what a model needs of an answer, and cutting it to size."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from toolbridge.budgets import MAX_CUTS, MAX_REPORTED_CUTS, Budget, Budgets, apply, fit
from toolbridge.config import Config, Server
from toolbridge.config_file import load_config
from toolbridge.errors import ConfigError
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.redaction import CUT_PREFIX
from toolbridge.serve.bodies import result_body
from toolbridge.tools import Cut, HttpOperation, Shaped, TextForm, Tool, ToolResult
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

ROOT = Path(__file__).resolve().parents[1]
ITEMS = {"data": [{"id": i, "name": f"item {i}", "notes": "n" * 20} for i in range(50)]}


def size(value: Any) -> int:
    return len(orjson.dumps(value))


def test_arrays_are_cut_to_fit_and_say_how_many_items_were_left_out() -> None:
    value, cuts, text_cut = fit(ITEMS, 400)
    assert (size(value) <= 400, cuts, text_cut) == (
        True,
        [Cut(path="$.data", kept=6, left_out=44)],
        False,
    )
    assert value["data"][5:] == [
        {"id": 5, "name": "item 5", "notes": "n" * 20},
        "(44 more items left out)",
    ]
    assert ITEMS["data"][6] == {"id": 6, "name": "item 6", "notes": "n" * 20}  # not changed


def test_the_bulkiest_part_is_cut_first_and_short_strings_never() -> None:
    value, cuts, text_cut = fit({"id": "x" * 10, "body": "y" * 3000, "tags": [1, 2]}, 300)
    kept = value["body"].count("y")
    assert (size(value) <= 300, cuts, text_cut, value["id"], value["tags"]) == (
        True,
        [Cut(path="$.body", kept=kept, left_out=3000 - kept, unit="characters")],
        True,
        "x" * 10,
        [1, 2],
    )
    assert value["body"] == "y" * kept + f"… ({3000 - kept} more characters left out)"


def test_a_value_not_owned_is_left_as_it_was_and_an_owned_one_is_cut_in_place() -> None:
    value = {"rows": [[n] * 20 for n in range(50)], "note": "x" * 400}
    before = json.loads(json.dumps(value))
    copied, copied_cuts, _ = fit(value, 300)
    assert value == before
    cut, cuts, _ = fit(value, 300, owned=True)
    assert (cut, cuts) == (copied, copied_cuts)
    assert cut is value


def test_text_answers_are_cut_as_text() -> None:
    value, cuts, text_cut = fit("é" * 1000, 300)
    kept = len(value.partition("…")[0])
    assert (len(value.encode()) <= 300, cuts, text_cut) == (
        True,
        [Cut(path="$", kept=kept, left_out=1000 - kept, unit="characters")],  # said, as any cut
        True,
    )
    assert value.endswith("more characters left out)")


def test_when_nothing_else_fits_the_answer_becomes_its_json_text_cut() -> None:
    wide = {f"key{i}": i for i in range(200)}
    value, _, text_cut = fit(wide, 300)
    # Measured as it is sent, a JSON string: each of its quotes written \" (300 bytes, not 368).
    sent = len(orjson.dumps(value))
    assert (isinstance(value, str), 280 < sent <= 300, text_cut) == (True, True, True)
    assert value.startswith('{"key0":0,"key1":1,')


def budget(select: str | None, max_bytes: int | None) -> Budget:
    import jmespath

    return Budget(select, max_bytes, jmespath.compile(select) if select else None)


def test_a_budget_selects_then_cuts_and_the_envelope_says_so() -> None:
    result = ToolResult(ok=True, status=200, content_type="application/json", result=ITEMS)
    shaped = apply(budget("data[].{id: id, name: name}", 300), result)
    assert shaped.shaped == Shaped(
        selected="data[].{id: id, name: name}",
        size=size([{"id": i, "name": f"item {i}"} for i in range(50)]),
        max_bytes=300,
        cuts=(Cut(path="$", kept=10, left_out=40),),
    )
    assert result_body(shaped)["budget"] == {
        "selected": "data[].{id: id, name: name}",
        "bytes": shaped.shaped.size,
        "max_bytes": 300,
        "cut": True,
        "left_out": [{"path": "$", "kept": 10, "left_out": 40, "unit": "items"}],
    }
    assert (shaped.result[0], shaped.result[-1], size(shaped.result) <= 300) == (
        {"id": 0, "name": "item 0"},
        "(40 more items left out)",
        True,
    )


def test_errors_and_binary_answers_are_not_selected_and_small_ones_not_marked() -> None:
    error = ToolResult(ok=False, status=404, content_type="application/json", result={"e": 1})
    binary = ToolResult(ok=True, result={"base64": "AAAA" * 400, "size": 1200, "content_type": "x"})
    small = ToolResult(ok=True, result={"a": 1})
    assert apply(budget("data", 1000), error) == error
    assert apply(budget(None, 256), binary) == binary
    assert apply(budget(None, 1000), small) == small


def json_answer(result: Any, *, truncated: bool = False, form: TextForm = None) -> ToolResult:
    return ToolResult(
        ok=True,
        status=200,
        content_type="application/json",
        result=result,
        truncated=truncated,
        text_form=form,
    )


WITHHELD = (
    "the answer was withheld: this tool's result select (items[].id) could not be applied, as "
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # Passed on as its JSON text (integers past 64 bits): read here, then selected.
        (
            json_answer(
                '{"items": [{"id": 123456789012345678901234567890, "secret": "s"}]}', form="json"
            ),
            json_answer([123456789012345678901234567890]),
        ),
        # Deeper than orjson writes, parsed: selected as any.
        (
            json_answer(orjson.loads('{"items": [{"id": 1, "d": ' + "[" * 300 + "]" * 300 + "}]}")),
            json_answer([1]),
        ),
        # Deeper than Python reads: withheld.
        (
            json_answer(
                '{"items": [{"id": 1, "deep": ' + "[" * 1100 + "]" * 1100 + "}]}", form="json"
            ),
            ToolResult(
                ok=False,
                status=200,
                content_type="text/plain",
                result=WITHHELD + "it is nested too deep to read",
            ),
        ),
        # Cut at the size cap: no whole JSON, so not selectable, so withheld.
        (
            json_answer('{"items": [{"id": 1, "secret": "s"}, {"id"', truncated=True),
            ToolResult(
                ok=False,
                status=200,
                content_type="text/plain",
                result=WITHHELD + "it was longer than the gateway's size cap, so it was cut "
                "and is no whole JSON",
            ),
        ),
        (
            json_answer("<html>not json</html>", form="not_json"),
            ToolResult(
                ok=False,
                status=200,
                content_type="text/plain",
                result=WITHHELD + "it says it is JSON but is not",
            ),
        ),
        (
            json_answer("[" * 5000 + "]" * 5000, form="too_deep"),
            ToolResult(
                ok=False,
                status=200,
                content_type="text/plain",
                result=WITHHELD + "it is nested deeper than the gateway reads JSON (1,024 levels)",
            ),
        ),
    ],
    ids=[
        "integers-past-64-bits",
        "deeper-than-orjson-writes",
        "deeper-than-python-reads",
        "cut-at-the-cap",
        "not-json",
        "deeper-than-the-gateway-reads",
    ],
)
def test_select_applies_to_every_json_answer_or_withholds_it(
    answer: ToolResult, expected: ToolResult
) -> None:
    """What `select` leaves out (a secret, a blob) never reaches the model whole."""
    shaped = apply(budget("items[].id", None), answer)
    assert replace(shaped, shaped=None) == expected


@pytest.mark.parametrize(
    ("select", "answer", "expected"),
    [
        # Any JSON value is selected from: a number, a string (never read again as JSON).
        ("length(@)", json_answer("a long string answer"), json_answer(20)),
        ("a", json_answer('{"a": 1}'), json_answer(None)),
        ("@", json_answer(42), json_answer(42)),
        (
            "length(@)",
            json_answer(42),
            ToolResult(
                ok=False,
                status=200,
                content_type="text/plain",
                result="the answer was withheld: this tool's result select (length(@)) could "
                "not be applied, as the expression failed on it: In function length(), invalid "
                "type for value: 42, expected one of: ['string', 'array', 'object'], received: "
                '"number"',
            ),
        ),
        # Text is not selected, nor an answer without a body (a 204) or a JSON null.
        ("length(@)", replace(json_answer("plain"), content_type="text/plain"), None),
        ("length(@)", json_answer(None), None),
    ],
    ids=[
        "a-json-string",
        "a-json-string-that-looks-like-json",
        "a-number",
        "fails",
        "text",
        "no-body",
    ],
)
def test_select_applies_to_json_values_of_every_kind(
    select: str, answer: ToolResult, expected: ToolResult | None
) -> None:
    shaped = apply(budget(select, None), answer)
    if expected is None:
        assert shaped == answer
    else:
        assert replace(shaped, shaped=None) == expected


def test_a_select_that_fails_on_the_answer_withholds_it() -> None:
    """JMESPath finds a type error only on the data: `length` of a number."""
    answer = json_answer({"items": 5})
    assert apply(budget("length(items[0])", None), answer) == ToolResult(
        ok=False,
        status=200,
        content_type="text/plain",
        result="the answer was withheld: this tool's result select (length(items[0])) could not "
        "be applied, as the expression failed on it: In function length(), invalid type for "
        "value: None, expected one of: ['string', 'array', 'object'], received: \"null\"",
    )


def test_a_json_answer_shaped_like_a_binary_one_is_cut() -> None:
    """Only answers.py's binary answers (not JSON) escape a budget's cut."""
    lookalike = json_answer({"base64": "A" * 5000, "size": 3750})
    shaped = apply(budget(None, 256), lookalike)
    assert shaped.shaped is not None
    assert size(shaped.result) <= 256


def test_thousands_of_small_arrays_are_cut_a_bounded_number_of_times() -> None:
    """Each cut saves little: after MAX_CUTS, and with nothing deep to put in a few words, the
    answer becomes its text, cut, and the envelope says that is the one cut there is."""
    answer = json_answer({f"k{i}": [i, i + 1, i + 2, "x" * 20] for i in range(3000)})
    shaped = apply(budget(None, 256), answer)
    assert shaped.shaped is not None
    assert isinstance(shaped.result, str)
    kept = len(shaped.result.partition("…")[0])
    text = orjson.dumps(answer.result).decode()
    assert (len(shaped.result.encode()) <= 256, shaped.shaped.text_cut) == (True, True)
    assert shaped.result[:kept] == text[:kept]
    assert result_body(shaped)["budget"]["left_out"] == [
        {"path": "$", "kept": kept, "left_out": len(text) - kept, "unit": "characters"}
    ]


def test_the_envelope_lists_the_largest_cuts_and_counts_the_rest() -> None:
    answer = json_answer({f"k{i:02}": ["x" * 10] * (30 + i) for i in range(40)})
    shaped = apply(budget(None, 3000), answer)
    assert shaped.shaped is not None
    assert size(shaped.result) <= 3000
    body = result_body(shaped)["budget"]
    # The two smallest arrays fit whole once the 38 larger ones are cut.
    assert (len(body["left_out"]), body["more_left_out"]) == (MAX_REPORTED_CUTS, 38 - 16)
    assert body["left_out"][0] == {"path": "$.k39", "kept": 1, "left_out": 68, "unit": "items"}
    assert len(shaped.shaped.cuts) + shaped.shaped.more_cuts <= MAX_CUTS


def test_an_item_larger_than_the_budget_is_kept_and_put_in_fewer_words() -> None:
    """A list of one large item keeps the item: its long strings are cut, then the objects and
    arrays below the deepest level that fits are each said in a few words."""
    user = {f"{name}_url": f"https://api.example.com/users/octocat/{name}" for name in "abcdefgh"}
    issue = {
        "id": 1,
        "number": 1347,
        "title": "Found a bug",
        "body": "I'm having a problem with this. " * 40,
        "user": {"login": "octocat", **user},
        "labels": [{"name": "bug", "description": "Something isn't working", **user}],
    }
    value, cuts, text_cut = fit([issue], 700)
    assert (value, cuts, text_cut) == (
        [
            {
                "id": 1,
                "number": 1347,
                "title": "Found a bug",
                "body": "… (1280 more characters left out)",
                "user": {"login": "octocat", **user},
                "labels": ["(an object of 10 keys left out)"],
            }
        ],
        [
            Cut(path="$[0].body", kept=0, left_out=1280, unit="characters"),
            Cut(path="$[0].labels[0]", kept=0, left_out=10, unit="keys"),
        ],
        True,
    )
    assert size(value) <= 700
    # Tighter: a level up, the user and the labels are said in a few words too.
    value, cuts, _ = fit([issue], 300)
    assert value[0]["user"] == "(an object of 9 keys left out)"
    assert value[0]["labels"] == "(an array of 1 item left out)"
    assert cuts[1:] == [
        Cut(path="$[0].labels", kept=0, left_out=1, unit="items"),
        Cut(path="$[0].user", kept=0, left_out=9, unit="keys"),
    ]
    assert size(value) <= 300


def tool(name: str, operation_id: str, output: dict[str, Any] | None = None) -> Tool:
    return Tool(
        name=name,
        original_name=operation_id,
        description="",
        input_schema={"type": "object"},
        output_schema=output,
        source="api",
        target=HttpOperation(
            server="api", method="GET", path="/x", base_url=None, operation_id=operation_id
        ),
    )


def test_a_tools_own_budget_overrides_its_servers_key_by_key() -> None:
    server = Server.model_validate(
        {
            "id": "api",
            "spec": "x.yaml",
            "result": {"select": "items", "max_bytes": 5000},
            "tools": {
                "listThings": {"result": {"max_bytes": 1000}},
                "api_getThing": {"result": {"select": "@"}},
            },
        }
    )
    budgets = Budgets([server])
    found = {
        name: (b.select, b.max_bytes) if (b := budgets.for_tool(tool(name, op))) else None
        for name, op in [
            ("api_listThings", "listThings"),
            ("api_getThing", "getThing"),
            ("api_other", "other"),
        ]
    }
    assert found == {
        "api_listThings": ("items", 1000),
        "api_getThing": ("@", 5000),
        "api_other": ("items", 5000),
    }
    reshaped = list(budgets.reshape([tool("api_other", "other", {"type": "object"})]))
    assert (reshaped[0].output_schema, [n.kind for n in reshaped[0].notes]) == (
        None,
        ["output-schema-dropped"],
    )


def test_the_entry_a_tool_is_given_by_is_used_whole_budget_or_none() -> None:
    """By its name and by its operationId: the entry by its name is used, whole, also when it
    holds no budget (its fixed arguments, say): the other is not, as `check` says."""
    server = Server.model_validate(
        {
            "id": "api",
            "spec": "x.yaml",
            "tools": {
                "api_listThings": {"arguments": {"team": "T1"}},
                "listThings": {"result": {"max_bytes": 1000}},
                "getThing": {"result": {"max_bytes": 2000}},
            },
        }
    )
    budgets = Budgets([server])
    found = [
        budgets.for_tool(tool(name, op))
        for name, op in [("api_listThings", "listThings"), ("api_getThing", "getThing")]
    ]
    assert [b.max_bytes if b is not None else None for b in found] == [None, 2000]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "result: {select: 'items[?', max_bytes: 1000}",
            "servers[0].result.select: not a JMESPath expression: Invalid jmespath expression "
            "at character 7",
        ),
        (
            "result: {max_bytes: 10}",
            "servers[0].result.max_bytes: Input should be greater than or equal to 256",
        ),
        (
            "tools: {getNote: {result: {cut: 1}}}",
            "servers[0].tools.getNote.result.cut: unknown key 'cut'",
        ),
        # What JMESPath itself finds only when the expression runs, on every call:
        (
            "result: {select: 'items[].lenght(name)'}",
            "servers[0].result.select: JMESPath has no function 'lenght' (it has: abs, avg, ",
        ),
        (
            "result: {select: 'join(items)'}",
            "servers[0].result.select: JMESPath's join() takes 2 argument(s), found 1",
        ),
        (
            "result: {select: 'not_null()'}",
            "servers[0].result.select: JMESPath's not_null() takes at least 1 argument(s), found 0",
        ),
        (
            "result: {select: '" + "(" * 1500 + "a" + ")" * 1500 + "'}",
            "servers[0].result.select: not a JMESPath expression this gateway reads: nested "
            "too deep",
        ),
        (
            "result: {select: '" + "a." * 2500 + "b'}",
            "servers[0].result.select: a JMESPath expression of at most 4096 characters, "
            "found 5001",
        ),
    ],
    ids=[
        "bad-syntax",
        "too-small",
        "unknown-key",
        "no-such-function",
        "arity",
        "variadic",
        "too-deep",
        "too-long",
    ],
)
def test_a_budget_that_cannot_work_is_a_config_error_naming_its_line(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = tmp_path / "toolbridge.yaml"
    path.write_text(f"servers:\n  - id: notes\n    spec: demo.yaml\n    {entry}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    assert str(raised.value).startswith(f"{path}:4: {message}")


async def test_a_call_through_the_gateway_is_shaped_by_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    notes = [{"id": i, "title": f"note {i}", "body": "b" * 50} for i in range(40)]

    def upstream(request: UpstreamRequest) -> UpstreamResponse:
        headers = (("content-type", "application/json"),)
        return UpstreamResponse(status=200, headers=headers, body=json.dumps(notes).encode())

    config = Config.model_validate(
        {
            "servers": [
                {
                    "id": "notes",
                    "spec": "specs/demo.yaml",
                    "base_url": "http://notes.test",
                    "tools": {"listNotes": {"result": {"select": "[].title", "max_bytes": 256}}},
                }
            ],
            "base_dir": ROOT,
        }
    )
    async with Gateway(config, upstream=MockUpstream(upstream)) as gateway:
        result = await gateway.call(Principal(id="ops", admin=True), "listNotes", {})
        listed = gateway.catalog.tools["listNotes"]
    assert size(result.result) <= 256
    assert result.result[-1] == f"({40 - len(result.result) + 1} more items left out)"
    assert result.shaped is not None
    assert result.shaped.selected == "[].title"
    assert (listed.output_schema, listed.notes[-1].kind) == (None, "output-schema-dropped")


async def test_an_answer_cut_inside_a_secret_shows_none_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An upstream echoes the query key amid text, a little further in at each call, so the
    budget's cut falls before, inside and after it: the key is redacted before the cut."""
    monkeypatch.chdir(ROOT)
    key = "s3cret-canary-value"
    calls: list[int] = []

    def upstream(request: UpstreamRequest) -> UpstreamResponse:
        echoed = parse_qs(urlsplit(request.url).query)["api_key"][0]
        calls.append(len(calls))
        text = "p" * (150 + len(calls)) + f" key={echoed} " + "e" * 300
        body = json.dumps({"text": text}).encode()
        return UpstreamResponse(
            status=200, headers=(("content-type", "application/json"),), body=body
        )

    auth = {"type": "api_key", "value": key, "in": "query", "name": "api_key"}
    server = {"id": "notes", "spec": "specs/demo.yaml", "base_url": "http://notes.test"}
    budget = {"result": {"max_bytes": 256}}
    config = Config.model_validate(
        {"servers": [{**server, "auth": auth, **budget}], "base_dir": ROOT}
    )
    async with Gateway(config, upstream=MockUpstream(upstream)) as gateway:
        texts = [
            (await gateway.call(Principal(id="ops", admin=True), "listNotes", {})).result["text"]
            for _ in range(80)
        ]
    assert [t for t in texts if key[:CUT_PREFIX] in t] == []
    kept = {t.partition(" key=")[2][:4] for t in texts}  # the key's place: cut, or redacted
    assert {"", "[red"} <= kept


async def test_an_answer_with_an_integer_past_64_bits_is_cut_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It comes as its JSON text (orjson would make the integer a float): read with the
    integer whole, its array cut as any other's, saying how many items were left out."""
    monkeypatch.chdir(ROOT)
    items = [{"id": n, "n": 2**64 if n == 0 else n} for n in range(500)]
    body = json.dumps(items).encode()

    def upstream(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(
            status=200, headers=(("content-type", "application/json"),), body=body
        )

    server = {"id": "notes", "spec": "specs/demo.yaml", "base_url": "http://notes.test"}
    config = Config.model_validate(
        {"servers": [{**server, "result": {"max_bytes": 300}}], "base_dir": ROOT}
    )
    async with Gateway(config, upstream=MockUpstream(upstream)) as gateway:
        result = await gateway.call(Principal(id="ops", admin=True), "listNotes", {})
    value = json.loads(result.result)  # JSON text still: the integer is whole
    assert result.shaped is not None
    (cut,) = result.shaped.cuts
    assert (value[0], value[-1], cut.path, cut.left_out, len(result.result.encode()) <= 300) == (
        {"id": 0, "n": 2**64},
        f"({cut.left_out} more items left out)",
        "$",
        500 - cut.kept,
        True,
    )


@pytest.mark.parametrize("depth", [300, 900])
async def test_json_too_deep_to_write_is_cut_as_json(
    monkeypatch: pytest.MonkeyPatch, depth: int
) -> None:
    """It parses (orjson reads 1,024 levels) but cannot be written by orjson (255), nor walked
    for secrets past Python's recursion limit: a budget cuts it as JSON (its objects below a
    depth said in a few words), never a 500."""
    monkeypatch.chdir(ROOT)
    body = b'{"a": ' * depth + b"1" + b"}" * depth

    def upstream(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(
            status=200, headers=(("content-type", "application/json"),), body=body
        )

    server = {"id": "notes", "spec": "specs/demo.yaml", "base_url": "http://notes.test"}
    auth = {"type": "bearer", "token": "a-secret-token-0042"}
    config = Config.model_validate(
        {"servers": [{**server, "auth": auth, "result": {"max_bytes": 300}}], "base_dir": ROOT}
    )
    async with Gateway(config, upstream=MockUpstream(upstream)) as gateway:
        result = await gateway.call(Principal(id="ops", admin=True), "listNotes", {})
    text = orjson.dumps(result.result).decode()
    assert (text.startswith('{"a":{"a":'), len(text.encode()) <= 300) == (True, True)
    assert result.shaped is not None
    assert result.shaped.cuts[-1].unit == "keys"


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
