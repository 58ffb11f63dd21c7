"""Fixed arguments (`arguments:` on a server): the parameters the config gives are no arguments,
and every call sends the config's values in their places. In-process, through the upstream seam;
tests/e2e/test_e2e_fixed_arguments.py runs the same over HTTP, and over Slack's document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from toolbridge.config import Config
from toolbridge.errors import InvalidArguments
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.redaction import argument_secrets, secrets_of
from toolbridge.state.secrets import server_secret_paths
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

DOCUMENT = Path(__file__).parent / "fixtures" / "fixed_arguments.yaml"
OPS = Principal(id="ops", admin=True)
CANARY = "canary-fixed-token-5f0e"


def gateway(
    arguments: dict[str, Any],
    sent: list[UpstreamRequest],
    reread: Callable[[], Config] | None = None,
    tools: dict[str, Any] | None = None,
    prefix: str | None = None,
) -> Gateway:
    def upstream(request: UpstreamRequest) -> UpstreamResponse:
        sent.append(request)
        return UpstreamResponse(
            status=200, headers=(("content-type", "application/json"),), body=b'{"ok": true}'
        )

    entry: dict[str, Any] = {"id": "chat", "spec": str(DOCUMENT), "base_url": "http://chat.test"}
    entry = {**entry, "arguments": arguments, "tools": tools or {}}
    if prefix is not None:
        entry["prefix"] = prefix
    config = Config.model_validate({"servers": [entry]})
    return Gateway(config, upstream=MockUpstream(upstream), reread=reread)


def reloading(given: list[dict[str, Any]], sent: list[UpstreamRequest]) -> Gateway:
    """A gateway whose config's `arguments` are `given[0]` at each reload."""
    entry = {"id": "chat", "spec": str(DOCUMENT), "base_url": "http://chat.test"}
    return gateway(
        given[0],
        sent,
        lambda: Config.model_validate({"servers": [{**entry, "arguments": given[0]}]}),
    )


def schema_of(gateway: Gateway, name: str) -> tuple[list[str], list[str]]:
    schema = gateway.catalog.tools[name].input_schema
    return sorted(schema["properties"]), sorted(schema.get("required", []))


def request_parts(request: UpstreamRequest) -> tuple[str, dict[str, str], dict[str, str], bytes]:
    url = urlsplit(request.url)
    headers = {k.lower(): v for k, v in request.headers if k.lower().startswith("x-")}
    return url.path, dict(parse_qsl(url.query)), headers, request.body or b""


CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], Any, Any]] = [
    # id, the server's `arguments`, tool, the model's arguments,
    # (properties, required) the tool then has, (path, query, x-headers, body) sent
    (
        "nothing fixed",
        {},
        "listMessages",
        {"team": "T1", "token": "t-model", "channel": "C1"},
        (["X-Api-Version", "channel", "debug", "team", "token"], ["channel", "team", "token"]),
        ("/echo/T1/messages", {"token": "t-model", "channel": "C1"}, {}, b""),
    ),
    (
        "query, path and a header in any case",
        {"token": CANARY, "team": "T9", "x-api-version": "2025-06"},
        "listMessages",
        {"channel": "C1"},
        (["channel", "debug"], ["channel"]),
        (
            "/echo/T9/messages",
            {"token": CANARY, "channel": "C1"},
            {"x-api-version": "2025-06"},
            b"",
        ),
    ),
    (
        "an optional parameter left out",
        {"debug": None},
        "listMessages",
        {"team": "T1", "token": "t", "channel": "C1"},
        (["X-Api-Version", "channel", "team", "token"], ["channel", "team", "token"]),
        ("/echo/T1/messages", {"token": "t", "channel": "C1"}, {}, b""),
    ),
    (
        "a form field",
        {"token": CANARY},
        "postMessage",
        {"text": "hi"},
        (["text"], ["text"]),
        ("/echo/messages", {}, {}, f"token={CANARY}&text=hi".encode()),
    ),
    (
        "a JSON body field, a number",
        {"workspace": 7},
        "postNote",
        {"title": "t"},
        (["title"], ["title"]),
        ("/echo/notes", {}, {}, b'{"workspace":7,"title":"t"}'),
    ),
]


@pytest.mark.parametrize(
    ("arguments", "tool", "given", "shape", "request_sent"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_fixed_arguments_are_no_arguments_and_are_sent(
    arguments: dict[str, Any],
    tool: str,
    given: dict[str, Any],
    shape: tuple[list[str], list[str]],
    request_sent: tuple[str, dict[str, str], dict[str, str], bytes],
) -> None:
    sent: list[UpstreamRequest] = []
    async with gateway(arguments, sent) as served:
        assert schema_of(served, tool) == shape
        result = await served.call(OPS, tool, given)
        notes = [n for n in served.catalog.tools[tool].notes if n.kind == "fixed-argument"]
    assert result.ok, result.result
    (request,) = sent
    path, query, headers, body = request_parts(request)
    assert (path, query, headers, body.replace(b" ", b"")) == request_sent
    fixed_here = 5 - len(shape[0]) if tool == "listMessages" else 1 if arguments else 0
    assert len(notes) == fixed_here
    assert all(CANARY not in n.message for n in notes)


async def test_a_model_that_sends_a_fixed_argument_is_refused() -> None:
    sent: list[UpstreamRequest] = []
    async with gateway({"token": CANARY}, sent) as served:
        with pytest.raises(InvalidArguments) as caught:
            await served.call(OPS, "postMessage", {"text": "hi", "token": "mine"})
    assert sent == []
    assert "token" in str(caught.value)


async def test_the_notes_say_where_and_how() -> None:
    async with gateway({"token": CANARY, "debug": None, "nowhere": 1}, []) as served:
        notes = {
            (n.where, n.message)
            for n in served.catalog.tools["listMessages"].notes
            if n.kind == "fixed-argument"
        }
        (status,) = served.sources()
    assert notes == {
        (
            "GET /echo/{team}/messages",
            "query parameter 'token' is sent as the server's config gives it (`arguments`): "
            "not an argument",
        ),
        (
            "GET /echo/{team}/messages",
            "query parameter 'debug' is left out (`arguments`): not an argument",
        ),
    }
    assert status.conversion is not None
    unused = [n.message for n in status.conversion.notes if n.kind == "fixed-argument-unused"]
    assert unused == [
        "arguments.nowhere: no tool of server 'chat' has a parameter named 'nowhere' that the "
        "config does not set already (`headers`, `auth`); nothing is sent for it"
    ]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            {"x-api-version": CANARY},
            "server 'chat': arguments.x-api-version does not fit the header parameter "
            "'X-Api-Version' of tool 'listMessages' (GET /echo/{team}/messages): expected a "
            'value that passes `enum` (options ["2024-01","2025-06"]), found a string',
        ),
        (
            {"workspace": 0},
            "server 'chat': arguments.workspace does not fit the body field 'workspace' of tool "
            "'postNote' (POST /echo/notes): expected a value that passes `minimum` (limit 1), "
            "found a number",
        ),
        (
            {"token": 12},
            "server 'chat': arguments.token does not fit the query parameter 'token' of tool "
            "'listMessages' (GET /echo/{team}/messages): expected a value that passes `type` "
            '(types ["string"]), found a number',
        ),
        (
            {"channel": None},
            "server 'chat': arguments.channel is null (leave it out), but tool 'listMessages' "
            "(GET /echo/{team}/messages) requires its query parameter 'channel': give it a value",
        ),
        # What the request builder refuses, said in words (the check's own patterns).
        (
            {"X-Trace": f"{CANARY}\r\nX-Injected: 1"},
            "server 'chat': arguments.X-Trace does not fit the header parameter 'X-Trace' of "
            "tool 'putLabels' (PUT /echo/{item}/labels): expected text a header can carry (no "
            "line break nor control character), found a string",
        ),
        (
            {"item": ".."},
            "server 'chat': arguments.item does not fit the path parameter 'item' of tool "
            "'putLabels' (PUT /echo/{item}/labels): expected a path segment other than `.`, "
            "`..` and nothing, found a string",
        ),
        # A key the schema does not allow is not named: the keys are the value's.
        (
            {"labels": {"team": "a", f"{CANARY}-key": 1}},
            "server 'chat': arguments.labels does not fit the body field 'labels' of tool "
            "'putLabels' (PUT /echo/{item}/labels): expected a value that passes "
            "`additionalProperties`, found an object",
        ),
        # Inside the value: said to be there, not where (its keys are the value's).
        (
            {"labels": {"team": 5}},
            "server 'chat': arguments.labels does not fit the body field 'labels' of tool "
            "'putLabels' (PUT /echo/{item}/labels): expected a value that passes `type` (types "
            '["null","string"]), found a number inside it',
        ),
        # Text is read as JSON where the parameter takes no text; this is no JSON number.
        (
            {"workspace": "not a number"},
            "server 'chat': arguments.workspace does not fit the body field 'workspace' of tool "
            "'postNote' (POST /echo/notes): expected a value that passes `type` (types "
            '["integer"]), found a string',
        ),
    ],
    ids=[
        "enum",
        "minimum",
        "type",
        "null-required",
        "header-line-break",
        "path-dot-segment",
        "extra-key",
        "inside",
        "text-not-json",
    ],
)
async def test_a_value_a_parameter_does_not_take_keeps_the_server_down(
    arguments: dict[str, Any], error: str
) -> None:
    """What was expected, what was found and where; never the value (it may be a secret)."""
    async with gateway(arguments, []) as served:
        (status,) = served.sources()
        assert (status.error, len(served.catalog.tools)) == (error, 0)


def test_fixed_values_are_sealed_and_those_named_as_secrets_redacted() -> None:
    entry = {"id": "chat", "spec": "x.yaml", "arguments": {"token": CANARY, "team": "T-public"}}
    config = Config.model_validate({"servers": [entry]})
    assert server_secret_paths(entry) == [("arguments", "token"), ("arguments", "team")]
    secrets = secrets_of(config, [])
    assert secrets.value(f"t={CANARY}&team=T-public") == "t=[redacted]&team=T-public"


async def test_a_reload_applies_changed_arguments() -> None:
    """A fixed value changed, added or taken out applies on reload: schema and calls."""
    given: list[dict[str, Any]] = [{"token": CANARY}, {"token": "second-token-value"}, {}]
    sent: list[UpstreamRequest] = []
    served = reloading(given, sent)
    seen = []
    async with served:
        while given:
            properties, _ = schema_of(served, "postMessage")
            arguments = {"text": "hi"} | ({"token": "t-model"} if "token" in properties else {})
            assert (await served.call(OPS, "postMessage", arguments)).ok
            seen.append((properties, request_parts(sent[-1])[3]))
            given.pop(0)
            if given:
                await served.reload()
    assert seen == [
        (["text"], f"token={CANARY}&text=hi".encode()),
        (["text"], b"token=second-token-value&text=hi"),
        (["text", "token"], b"token=t-model&text=hi"),
    ]


async def test_a_reload_whose_value_does_not_fit_keeps_the_tools_with_their_values() -> None:
    """The source keeps its last good tools (and says why it did not update); their calls send
    the values they were checked with, never the new config's that failed the check."""
    given: list[dict[str, Any]] = [{"token": CANARY}, {"token": 12}, {"channel": None}]
    sent: list[UpstreamRequest] = []
    served = reloading(given, sent)
    seen = []
    async with served:
        while given:
            result = await served.call(OPS, "listMessages", {"team": "T1", "channel": "C1"})
            (status,) = served.sources()
            seen.append((result.ok, request_parts(sent[-1])[1], status.error is None))
            assert CANARY not in str(served.secrets.value(f"token={CANARY}"))
            given.pop(0)
            if given:
                await served.reload()
    assert seen == [
        (True, {"token": CANARY, "channel": "C1"}, True),
        (True, {"token": CANARY, "channel": "C1"}, False),
        (True, {"token": CANARY, "channel": "C1"}, False),
    ]


@pytest.mark.parametrize(
    ("arguments", "tool", "given", "request_sent"),
    [
        # `${VAR}` gives text: where the parameter takes no text, it is read as JSON.
        ({"workspace": "7"}, "postNote", {"title": "t"}, b'{"workspace":7,"title":"t"}'),
        # Text where text is taken stays text.
        ({"team": "42"}, "listMessages", {"token": "t", "channel": "C"}, b""),
    ],
    ids=["number-from-text", "text-stays-text"],
)
async def test_text_is_read_as_json_only_where_no_text_fits(
    arguments: dict[str, Any], tool: str, given: dict[str, Any], request_sent: bytes
) -> None:
    sent: list[UpstreamRequest] = []
    async with gateway(arguments, sent) as served:
        assert (await served.call(OPS, tool, given)).ok
    path, _, _, body = request_parts(sent[-1])
    assert body == request_sent
    assert path == ("/echo/42/messages" if "team" in arguments else "/echo/notes")


async def test_a_field_of_a_body_given_whole_is_noted_as_unreachable() -> None:
    async with gateway({"token": CANARY}, []) as served:
        tool = served.catalog.tools["postRaw"]
    assert sorted(tool.input_schema["properties"]) == ["body"]
    assert [(n.kind, n.message) for n in tool.notes if n.kind.startswith("fixed")] == [
        (
            "fixed-argument-unreachable",
            "arguments.token: 'token' is a field of the 'body' argument (the body, given "
            "whole), which `arguments` cannot fix: the model gives it",
        )
    ]


def test_secrets_are_found_in_fixed_values_at_any_depth_and_of_any_kind() -> None:
    values = {
        "client": {"secret": "client-secret-1234", "id": "public-id"},
        "api_keys": ["first-key-1234", "second-key-1234"],
        "pin_key": 987654321987,
        "flag_token": True,
        "team": "T-public",
    }
    assert sorted(argument_secrets(values)) == sorted(
        [
            "client-secret-1234",
            "first-key-1234",
            "second-key-1234",
            "987654321987",
        ]
    )


async def test_a_name_found_only_inside_a_body_given_whole_is_not_called_unused() -> None:
    entry = {"id": "chat", "spec": str(DOCUMENT), "base_url": "http://chat.test"}
    only = {"include": {"operations": ["postRaw"]}, "arguments": {"token": CANARY}}
    config = Config.model_validate({"servers": [entry | only]})
    async with Gateway(config, upstream=MockUpstream(lambda r: pytest.fail(str(r)))) as served:
        (status,) = served.sources()
        tool = served.catalog.tools["postRaw"]
    assert status.conversion is not None
    kinds = [n.kind for n in (*status.conversion.notes, *tool.notes) if "fixed" in n.kind]
    assert kinds == ["fixed-argument-unreachable"]


# -- a tool's own (`tools: {NAME: {arguments}}`) ------------------------------------------------


async def test_a_tools_own_arguments_add_to_the_servers_and_win_over_them() -> None:
    """`channel` is fixed for listMessages alone (by its name), `team` for it over the
    server's (by its operationId, the same here); `token` for every tool, from the server."""
    sent: list[UpstreamRequest] = []
    own = {"listMessages": {"arguments": {"channel": "C-alerts", "team": "T-own"}}}
    async with gateway({"token": CANARY, "team": "T-all"}, sent, tools=own) as served:
        shapes = [schema_of(served, name) for name in ("listMessages", "postMessage")]
        listed = await served.call(OPS, "listMessages", {})
        posted = await served.call(OPS, "postMessage", {"text": "hi"})
        (status,) = served.sources()
    assert status.conversion is not None
    unused = [n for n in status.conversion.notes if n.kind == "fixed-argument-unused"]
    assert shapes == [(["X-Api-Version", "debug"], []), (["text"], ["text"])]
    assert (listed.ok, posted.ok) == (True, True)
    assert [request_parts(r) for r in sent] == [
        ("/echo/T-own/messages", {"token": CANARY, "channel": "C-alerts"}, {}, b""),
        ("/echo/messages", {}, {}, f"token={CANARY}&text=hi".encode()),
    ]
    assert [n.message for n in unused] == [
        "arguments.team: every tool of server 'chat' with a parameter named 'team' gives it its "
        "own value (`tools`); nothing is sent for it"
    ]


async def test_a_tools_own_arguments_that_fit_nothing_are_noted() -> None:
    own = {
        "listMessages": {"arguments": {"nowhere": 1}},
        "noSuchTool": {"arguments": {"token": "x"}},
        "fx_postNote": {"result": {"max_bytes": 1000}},  # the tool's name: this entry is used
        "postNote": {"arguments": {"workspace": 3}},  # its document name: this one is not
    }
    async with gateway({}, [], tools=own, prefix="fx") as served:
        (status,) = served.sources()
    assert status.conversion is not None
    unused = sorted(n.message for n in status.conversion.notes if n.kind == "fixed-argument-unused")
    assert unused == [
        "tools.listMessages.arguments.nowhere: tool 'fx_listMessages' has no parameter named "
        "'nowhere' that the config does not set already (`headers`, `auth`); nothing is sent "
        "for it",
        "tools.noSuchTool.arguments.token: no tool of server 'chat' is named 'noSuchTool' (by "
        "name or operationId); nothing is sent for it",
        "tools.postNote.arguments.workspace: tool 'fx_postNote' takes its settings from "
        "another entry of `tools` that names it (by its name first, then document name, then "
        "operationId); nothing is sent for it",
    ]


async def test_a_tools_own_value_that_does_not_fit_is_said_by_its_key() -> None:
    own = {"postNote": {"arguments": {"workspace": 0}}}
    async with gateway({}, [], tools=own) as served:
        (status,) = served.sources()
    assert status.error == (
        "server 'chat': tools.postNote.arguments.workspace does not fit the body field "
        "'workspace' of tool 'postNote' (POST /echo/notes): expected a value that passes "
        "`minimum` (limit 1), found a number"
    )


def test_a_tools_own_arguments_are_sealed_as_the_servers_are() -> None:
    entry = {
        "id": "chat",
        "spec": "x.yaml",
        "arguments": {"token": CANARY},
        "tools": {"listMessages": {"arguments": {"channel": "C1"}, "result": {"max_bytes": 9}}},
    }
    assert server_secret_paths(entry) == [
        ("arguments", "token"),
        ("tools", "listMessages", "arguments", "channel"),
    ]
    own = {"listMessages": {"arguments": {"channel": "C-public", "token": f"{CANARY}-own"}}}
    config = Config.model_validate({"servers": [{**entry, "tools": own}]})
    secrets = secrets_of(config, [])
    assert secrets.value(f"{CANARY}-own C-public") == "[redacted] C-public"
