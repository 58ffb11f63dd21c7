"""`/mcp` in process: the SDK's client, and raw JSON-RPC as a 1.x client sends it, over
httpx2's ASGITransport, against a gateway whose upstream is a `MockUpstream`.

The gateway serves the demo's notes document (alice may use its GET operations, bob none of
them) and the `faults` local tools (everyone). The notes upstream answers from `Api`, which a
test may change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.routing import Route

from toolbridge.config import Config
from toolbridge.errors import UpstreamUnavailable
from toolbridge.formats.render import render
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.serve.bodies import MAX_REQUEST_BYTES
from toolbridge.serve.mcp import PATH, McpApp, create_mcp_app
from toolbridge.tools import Tool, ToolResult
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
URL = f"http://gateway.test{PATH}"
KEYS = {"alice": "alice-key-1", "bob": "bob-key-1", "ops": "ops-key-1"}
ACCEPT = {"Accept": "application/json, text/event-stream"}
JSON_TYPE = {"Content-Type": "application/json"}

CONFIG = Config.model_validate(
    {
        "auth": {
            "api_keys": [
                {"user": "alice", "key": KEYS["alice"]},
                {"user": "bob", "key": KEYS["bob"]},
                {"user": "ops", "key": KEYS["ops"], "admin": True},
            ]
        },
        "servers": [
            {
                "id": "notes",
                "spec": "specs/demo.yaml",
                "base_url": "http://notes.test",
                "auth": {"type": "forward", "header": "X-Notes-Token"},
                "access": {"users": ["alice"], "methods": ["GET"]},
            }
        ],
        "tools": [
            {"id": "faults", "path": "tests/fixtures/tools/faults.py", "access": {"users": ["*"]}}
        ],
        "base_dir": ROOT,
    }
)

NOTE = {
    "id": 1,
    "title": "Welcome",
    "body": "Hello.",
    "tags": [],
    "pinned": False,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
STATUS = {"status": "ok", "notes": 1, "version": "1.0.0"}
GET_TOOLS = ["listNotes", "getNote", "getStatus"]
FAULTS = ["explode", "silent_failure", "slow", "slow_sync", "ask", "report", "point", "nothing"]
FAULTS += ["echo", "weather"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def answer(
    status: int, body: Any = None, content_type: str = "application/json"
) -> UpstreamResponse:
    if body is None:
        return UpstreamResponse(status=status)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return UpstreamResponse(status=status, headers=(("content-type", content_type),), body=raw)


class Api:
    """The notes upstream: an answer per (method, path); a missing note is a 404."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], UpstreamResponse | Exception] = {
            ("GET", "/notes"): answer(200, [NOTE]),
            ("GET", "/notes/1"): answer(200, NOTE),
            ("DELETE", "/notes/1"): answer(204),
            ("GET", "/status"): answer(200, STATUS),
        }

    def __call__(self, request: UpstreamRequest) -> UpstreamResponse:
        found = self.answers.get((request.method, urlsplit(request.url).path))
        if isinstance(found, Exception):
            raise found
        if found is None:
            note = urlsplit(request.url).path.rsplit("/", 1)[-1]
            return answer(404, {"error": f"there is no note with id '{note}'"})
        return found


@dataclass
class Served:
    app: Starlette
    mcp: McpApp
    api: Api
    upstream: MockUpstream
    gateway: Gateway


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.chdir(ROOT)
    api = Api()
    upstream = MockUpstream(api)
    gateway = Gateway(CONFIG, upstream=upstream)
    gateway.load()
    mcp = create_mcp_app(gateway)
    async with mcp.lifespan():
        yield Served(Starlette(routes=[Route(PATH, mcp)]), mcp, api, upstream, gateway)


@asynccontextmanager
async def http_client(
    served: Served, user: str | None = "alice"
) -> AsyncIterator[httpx2.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEYS[user]}"} if user else {}
    transport = httpx2.ASGITransport(app=served.app)
    async with httpx2.AsyncClient(transport=transport, headers=headers, timeout=10) as http:
        yield http


@asynccontextmanager
async def connect(
    served: Served,
    user: str = "alice",
    *,
    mode: str = "auto",
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Client]:
    async with http_client(served, user) as http:
        http.headers.update(headers or {})
        async with Client(streamable_http_client(URL, http_client=http), mode=mode) as client:
            yield client


async def rpc(
    http: httpx2.AsyncClient, method: str, params: dict[str, Any], ident: int | None = 1
) -> httpx2.Response:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if ident is not None:
        message["id"] = ident
    return await http.post(URL, json=message, headers=ACCEPT)


def reply(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response, whether sent as JSON or as one SSE event."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        assert len(data) == 1, response.text
        message: dict[str, Any] = json.loads(data[0])
        return message
    body: dict[str, Any] = response.json()
    return body


def tool(served: Served, name: str) -> Tool:
    found = served.gateway.catalog.get(name)
    assert found is not None
    return found


def text(result: types.CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "not-a-key"])
async def test_without_a_known_key_the_answer_is_the_gateways_401(
    served: Served, key: str | None
) -> None:
    async with http_client(served, None) as http:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = await http.post(URL, json={}, headers={**ACCEPT, **headers})
    message = "unknown API key" if key else "send Authorization: Bearer <api key>"
    assert (response.status_code, response.headers["www-authenticate"], response.json()) == (
        401,
        'Bearer realm="toolbridge"',
        {"error": {"type": "unauthenticated", "message": message}},
    )


# -- both eras of clients --------------------------------------------------------------------


async def test_a_handshake_era_client_lists_and_calls_with_plain_json_rpc(served: Served) -> None:
    """What a 1.x client sends: initialize, initialized, then requests naming the version."""
    async with http_client(served) as http:
        opened = await rpc(
            http,
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "one-x", "version": "1.26.0"},
            },
        )
        init = reply(opened)["result"]
        assert (init["protocolVersion"], init["serverInfo"]["name"]) == ("2025-06-18", "toolbridge")
        # Stateless: no session, so no stream to announce changes on, and it says so.
        assert "mcp-session-id" not in opened.headers
        assert init["capabilities"]["tools"] == {"listChanged": False}
        assert init["capabilities"]["logging"] == {}  # a local tool's events are log entries

        http.headers["MCP-Protocol-Version"] = "2025-06-18"
        initialized = await rpc(http, "notifications/initialized", {}, ident=None)
        assert initialized.status_code == 202

        listed = reply(await rpc(http, "tools/list", {}, ident=2))["result"]["tools"]
        alice = Principal(id="alice", name="alice")
        assert listed == [render(tool, "mcp") for tool in served.gateway.list_tools(alice)]
        assert [tool["name"] for tool in listed] == GET_TOOLS + FAULTS

        called = reply(await rpc(http, "tools/call", {"name": "getStatus"}, ident=3))["result"]
        assert called == {
            "content": [{"type": "text", "text": json.dumps(STATUS, separators=(",", ":"))}],
            "structuredContent": STATUS,
            "isError": False,
        }


@pytest.mark.parametrize(
    ("ident", "kind"),
    [
        ("1.5", "a number with a fraction or an exponent"),
        ("1e2", "a number with a fraction or an exponent"),
        ("null", "null"),
        ("true", "a boolean"),
        ('{"n": 1}', "an object"),
        ("[1]", "an array"),
    ],
)
async def test_a_request_whose_id_is_no_string_or_integer_is_answered_with_an_error(
    served: Served, ident: str, kind: str
) -> None:
    """The SDK takes such a message for a notification (202, never run): the client would wait
    for an answer forever. MCP ids are strings or integers, never null."""
    body = f'{{"jsonrpc": "2.0", "id": {ident}, "method": "tools/list", "params": {{}}}}'
    async with http_client(served) as http:
        http.headers["MCP-Protocol-Version"] = "2025-06-18"
        response = await http.post(URL, content=body, headers={**ACCEPT, **JSON_TYPE})
    assert (response.status_code, response.json()) == (
        400,
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32600,
                "message": "Invalid Request: an MCP request's id is a string or an integer; "
                f"this one's is {kind} (a message with a method and without an id is a "
                "notification)",
            },
        },
    )


@pytest.mark.parametrize("ident", ['"req-1"', "0", "-3", "99999999999999999999999"])
async def test_string_and_integer_ids_of_any_size_are_answered_under_the_same_id(
    served: Served, ident: str
) -> None:
    body = f'{{"jsonrpc": "2.0", "id": {ident}, "method": "tools/list", "params": {{}}}}'
    async with http_client(served) as http:
        http.headers["MCP-Protocol-Version"] = "2025-06-18"
        response = await http.post(URL, content=body, headers={**ACCEPT, **JSON_TYPE})
    message = reply(response)
    assert (message["id"], len(message["result"]["tools"])) == (
        json.loads(ident),
        len(GET_TOOLS + FAULTS),
    )


async def test_a_get_stream_is_refused_by_a_stateless_gateway(served: Served) -> None:
    """Nothing would ever come on it; the SDK would hold it open all the same."""
    async with http_client(served) as http:
        response = await http.get(URL, headers={"Accept": "text/event-stream"})
    assert (response.status_code, response.headers["allow"], response.json()) == (
        405,
        "POST",
        {
            "error": {
                "type": "method_not_allowed",
                "message": "this gateway's MCP endpoint is stateless: it answers each POST on "
                "its own and keeps no stream for GET; clients of the 2026-07-28 protocol hear "
                "of tool changes through subscriptions/listen",
            }
        },
    )


async def test_a_body_past_the_limit_is_refused_before_it_is_parsed(served: Served) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": "'
    body += b"x" * MAX_REQUEST_BYTES + b'"}}'
    async with http_client(served) as http:
        response = await http.post(URL, content=body, headers={**ACCEPT, **JSON_TYPE})
    assert (response.status_code, response.json()) == (
        413,
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "the request body is over 8388608 bytes"},
        },
    )


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_the_sdk_client_of_either_era_lists_and_calls(
    served: Served, mode: str, version: str
) -> None:
    """`auto` probes server/discover (2.x); `legacy` is the 1.x initialize handshake."""
    async with connect(served, mode=mode) as client:
        assert client.session.protocol_version == version
        tools = (await client.list_tools()).tools
        status = await client.call_tool("getStatus", {})
    assert [tool.name for tool in tools] == GET_TOOLS + FAULTS
    get_status = tools[GET_TOOLS.index("getStatus")]
    # The document's response schema is no promise: the server does not say `publish`.
    assert (get_status.title, get_status.output_schema) == ("Service status", None)
    assert get_status.annotations == types.ToolAnnotations(
        title="Service status",
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=True,
    )
    assert (status.is_error, status.structured_content) == (False, STATUS)


# -- access control --------------------------------------------------------------------------


async def test_a_tool_the_caller_may_not_use_is_one_they_neither_see_nor_call(
    served: Served,
) -> None:
    async with connect(served, "alice") as alice:
        names = [tool.name for tool in (await alice.list_tools()).tools]
        with pytest.raises(MCPError) as forbidden:
            await alice.call_tool("deleteNote", {"noteId": 1})
        with pytest.raises(MCPError) as unknown:
            await alice.call_tool("noSuchTool", {})
    assert "deleteNote" not in names
    # Unknown and forbidden read the same, as the HTTP API's 404 does.
    assert (forbidden.value.code, forbidden.value.message) == (
        types.INVALID_PARAMS,
        "no tool named 'deleteNote'",
    )
    assert (unknown.value.code, unknown.value.message) == (
        types.INVALID_PARAMS,
        "no tool named 'noSuchTool'",
    )
    async with connect(served, "bob") as bob:
        assert [tool.name for tool in (await bob.list_tools()).tools] == FAULTS
    async with connect(served, "ops") as ops:
        assert len((await ops.list_tools()).tools) == 6 + len(FAULTS)
        deleted = await ops.call_tool("deleteNote", {"noteId": 1})
    assert (deleted.is_error, text(deleted)) == (False, "HTTP 204 No Content, no content")
    assert [r.method for r in served.upstream.requests] == ["DELETE"]


# -- results ---------------------------------------------------------------------------------


async def test_json_objects_come_as_text_and_as_structured_content(served: Served) -> None:
    async with connect(served) as client:
        note = await client.call_tool("getNote", {"noteId": 1})
        notes = await client.call_tool("listNotes", {})
        point = await client.call_tool("point", {})
    assert (json.loads(text(note)), note.structured_content) == (NOTE, NOTE)
    # structuredContent is an object through 2025-11-25: an array is text only.
    assert (json.loads(text(notes)), notes.structured_content) == ([NOTE], None)
    assert (point.is_error, point.structured_content) == (False, {"x": 3, "y": 4})


async def test_an_answer_that_breaks_the_promised_output_schema_is_a_tool_error(
    served: Served,
) -> None:
    """`-> Weather` promises MCP clients an outputSchema, which the SDK holds a successful
    result to (it raised, and the model never saw the tool's words): an answer that breaks it
    goes as an error with its text whole. Over HTTP nothing was promised: it stays a success."""
    async with connect(served) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        fine = await client.call_tool("weather", {"city": "Lisbon"})
        said = await client.call_tool("weather", {"city": "nowhere"})
        down = await client.call_tool("weather", {"city": "down"})
    assert listed["weather"].output_schema is not None
    assert (fine.is_error, fine.structured_content) == (False, {"city": "Lisbon", "temp_c": 21.5})
    assert [(r.is_error, text(r)) for r in (said, down)] == [
        (
            True,
            "Error: unknown city nowhere\n\n(the answer does not fit the tool's output schema: "
            "$: expected JSON, found text)",
        ),
        (
            True,
            '{"error":"upstream down"}\n\n(the answer does not fit the tool\'s output schema: '
            "$: required)",
        ),
    ]
    over_http = await served.gateway.call(Principal(id="alice"), "weather", {"city": "down"})
    assert (over_http.ok, over_http.result) == (True, {"error": "upstream down"})


async def test_an_upstream_4xx_is_a_tool_error_the_model_reads(served: Served) -> None:
    async with connect(served) as client:
        result = await client.call_tool("getNote", {"noteId": 7})
    assert (result.is_error, result.structured_content) == (True, None)
    assert text(result) == (
        "the upstream answered HTTP 404 Not Found:\n"
        + json.dumps({"error": "there is no note with id '7'"}, separators=(",", ":"))
    )


async def test_invalid_arguments_are_a_tool_error_naming_each_problem(served: Served) -> None:
    async with connect(served) as client:
        result = await client.call_tool("getNote", {"noteId": "one", "extra": 1})
    assert result.is_error
    assert text(result) == (
        "invalid arguments for 'getNote': $: Additional properties are not allowed "
        '(\'extra\' was unexpected); $.noteId: "one" is not of type "integer"'
    )
    assert served.upstream.requests == []


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            UpstreamUnavailable("notes", "cannot connect: connection refused"),
            "upstream 'notes': cannot connect: connection refused",
        ),
        (
            UpstreamUnavailable("notes", "no answer within 30 s", timeout=True),
            "upstream 'notes': no answer within 30 s",
        ),
    ],
)
async def test_an_upstream_that_is_down_or_slow_is_a_tool_error(
    served: Served, failure: Exception, message: str
) -> None:
    served.api.answers["GET", "/status"] = failure
    async with connect(served) as client:
        result = await client.call_tool("getStatus", {})
    assert (result.is_error, text(result)) == (True, message)


async def test_a_local_tool_that_raises_is_a_tool_error(served: Served) -> None:
    async with connect(served, mode="legacy") as client:
        result = await client.call_tool("explode", {"message": "boom"})
    assert result.is_error
    assert "boom" in text(result)


@pytest.mark.parametrize(
    ("status", "mismatch"),
    [
        (answer(200, {"status": "down"}), "$: required"),
        (answer(200, {"status": "down", "notes": 1}), "$.status: const"),
        (answer(200, [STATUS]), "$: type"),
        (answer(200, b"fine", "text/plain"), "$: expected JSON, found text"),
        (answer(204), "$: expected JSON, found no content"),
    ],
)
async def test_an_answer_that_does_not_fit_the_documents_schema_is_passed_on(
    served: Served, status: UpstreamResponse, mismatch: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream answered successfully: the client gets that answer, not an error; the
    gateway counts the mismatch and warns once, naming where, never the value."""
    served.api.answers["GET", "/status"] = status
    with caplog.at_level(logging.WARNING, logger="toolbridge.gateway"):
        async with connect(served) as client:  # the SDK client checks results it was promised
            results = [await client.call_tool("getStatus", {}) for _ in range(2)]
    body = json.loads(status.body) if status.body and b"{" in status.body[:1] else None
    for result in results:
        assert (result.is_error, result.structured_content) == (False, body)
        assert text(result) == text_of(status)
    assert [r.getMessage() for r in caplog.records if r.name == "toolbridge.gateway"] == [
        f"getStatus answered other than its output schema says ({mismatch}); passed on as it "
        "is, and counted in toolbridge_output_mismatches_total"
    ]
    assert mismatches(served, "getStatus") == 2


async def test_a_server_that_says_publish_promises_its_output_schemas(served: Served) -> None:
    config = CONFIG.model_copy(
        update={"servers": [CONFIG.servers[0].model_copy(update={"output_schema": "publish"})]}
    )
    gateway = Gateway(config, upstream=MockUpstream(Api()))
    gateway.load()
    published = gateway.catalog.get("getStatus")
    withheld = tool(served, "getStatus")
    assert published is not None
    assert published.output_schema == withheld.output_schema is not None
    assert render(published, "mcp")["outputSchema"] == published.output_schema
    assert "outputSchema" not in render(withheld, "mcp")


def mismatches(served: Served, tool_name: str) -> float:
    value = served.gateway.metrics.registry.get_sample_value(
        "toolbridge_output_mismatches_total", {"tool": tool_name}
    )
    return value or 0.0


def text_of(response: UpstreamResponse) -> str:
    if not response.body:
        return f"HTTP {response.status} No Content, no content"
    if response.header("content-type") == "text/plain":
        return response.body.decode()
    return json.dumps(json.loads(response.body), separators=(",", ":"))


async def test_the_callers_own_headers_reach_a_server_that_forwards_them(served: Served) -> None:
    async with connect(served, headers={"X-Notes-Token": "alice-upstream-token"}) as client:
        await client.call_tool("getStatus", {})
    assert ("X-Notes-Token", "alice-upstream-token") in served.upstream.requests[0].headers


def result_of(served: Served, name: str, result: ToolResult) -> types.CallToolResult:
    return served.mcp.tool_result(tool(served, name), result)


@pytest.mark.parametrize(
    ("result", "content"),
    [
        (
            ToolResult(
                ok=True,
                status=200,
                content_type="image/png",
                result={"base64": "iVBORw0K", "size": 6, "content_type": "image/png"},
            ),
            types.ImageContent(data="iVBORw0K", mime_type="image/png"),
        ),
        (
            ToolResult(
                ok=True,
                status=200,
                content_type="application/octet-stream",
                result={"base64": "AAE=", "size": 2, "content_type": "application/octet-stream"},
            ),
            types.TextContent(
                text='{"base64":"AAE=","size":2,"content_type":"application/octet-stream"}'
            ),
        ),
        (
            ToolResult(ok=True, status=200, content_type="text/csv", result="a,b\n1,2\n"),
            types.TextContent(text="a,b\n1,2\n"),
        ),
        (
            ToolResult(ok=True, status=200, content_type="application/json", result=[1, "two"]),
            types.TextContent(text='[1,"two"]'),
        ),
    ],
)
async def test_what_each_kind_of_answer_becomes(
    served: Served, result: ToolResult, content: types.ContentBlock
) -> None:
    mcp_result = result_of(served, "listNotes", result)
    assert (mcp_result.content, mcp_result.structured_content, mcp_result.is_error) == (
        [content],
        None,
        False,
    )


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (ToolResult(ok=False, status=502), "the upstream answered HTTP 502 Bad Gateway"),
        (
            ToolResult(ok=False, status=599, content_type="text/plain", result="odd"),
            "the upstream answered HTTP 599:\nodd",
        ),
        (
            ToolResult(ok=False, content_type="text/plain", result="timed out after 60 s"),
            "timed out after 60 s",
        ),
    ],
)
async def test_failed_calls_say_how_they_failed(
    served: Served, result: ToolResult, message: str
) -> None:
    mcp_result = result_of(served, "listNotes", result)
    assert (mcp_result.is_error, text(mcp_result)) == (True, message)


# -- stateful sessions -----------------------------------------------------------------------


@pytest.fixture
async def stateful(served: Served) -> AsyncIterator[Callable[[str], httpx2.AsyncClient]]:
    mcp = create_mcp_app(served.gateway, stateful=True)
    app = Starlette(routes=[Route(PATH, mcp)])
    clients: list[httpx2.AsyncClient] = []

    def client(user: str) -> httpx2.AsyncClient:
        headers = {"Authorization": f"Bearer {KEYS[user]}", **ACCEPT}
        http = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), headers=headers, timeout=10
        )
        clients.append(http)
        return http

    async with mcp.lifespan():
        yield client
        for http in clients:
            await http.aclose()


async def test_a_stateful_session_offers_change_notices_and_serves_its_opener_only(
    stateful: Callable[[str], httpx2.AsyncClient],
) -> None:
    alice, bob = stateful("alice"), stateful("bob")
    opened = await rpc(
        alice,
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "one-x", "version": "1.26.0"},
        },
    )
    assert reply(opened)["result"]["capabilities"]["tools"] == {"listChanged": True}
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
    alice.headers.update(session)
    bob.headers.update(session)
    assert (await rpc(alice, "notifications/initialized", {}, ident=None)).status_code == 202

    assert len(reply(await rpc(alice, "tools/list", {}, ident=2))["result"]["tools"]) == 13
    stolen = await rpc(bob, "tools/list", {}, ident=2)
    assert (stolen.status_code, stolen.json()["error"]["message"]) == (404, "Session not found")
