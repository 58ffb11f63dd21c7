"""Open WebUI tools and filters at the edges, in process: the call context a request carries,
rich results, events and `__event_call__` on `POST /v1/tools/{name}/call`, `POST
/v1/tool_calls` and `/mcp` (the SDK's own 2.x client, in both protocol eras), and filters listed on
`GET /v1/servers`. Direct elicitation mid-call needs a streamed answer, which httpx2's ASGI
transport does not give: it is tested over real HTTP in tests/e2e/test_e2e_openwebui.py.

The tool files are `tests/fixtures/openwebui/` (notebook, charts, danger_zone); the filters,
`tests/fixtures/filters/`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.routing import Route

from tests.lifespan import lifespan
from toolbridge.config import Config
from toolbridge.gateway import Gateway
from toolbridge.local.results import VIEW_NOTE
from toolbridge.serve.app import create_app
from toolbridge.serve.mcp import PATH, create_mcp_app
from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
KEY = "alice-key-0123456789"
ALICE = {"Authorization": f"Bearer {KEY}"}
OPS_KEY = "ops-key-9876543210"
OPS = {"Authorization": f"Bearer {OPS_KEY}"}
CHART = (
    '<html><body><div style="width:10px;background:teal">1</div>'
    '<div style="width:30px;background:teal">3</div></body></html>'
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locations are shown relative to the working directory: fix it at the repository root."""
    monkeypatch.chdir(ROOT)


def config(*filters: dict[str, Any]) -> Config:
    grant = {"users": ["alice"]}
    return Config.model_validate(
        {
            "auth": {
                "api_keys": [
                    {"user": "alice", "key": KEY},
                    {"user": "ops", "key": OPS_KEY, "admin": True},
                ]
            },
            "tools": [
                {"id": "nb", "path": "tests/fixtures/openwebui/notebook.py", "access": grant},
                {"id": "charts", "path": "tests/fixtures/openwebui/charts.py", "access": grant},
                {
                    "id": "danger",
                    "path": "tests/fixtures/openwebui/danger_zone.py",
                    "access": grant,
                },
            ],
            "filters": list(filters),
            "base_dir": ROOT,
        }
    )


@asynccontextmanager
async def served(cfg: Config) -> AsyncIterator[tuple[httpx2.AsyncClient, Gateway]]:
    gateway = Gateway(cfg, upstream=MockUpstream(lambda request: UpstreamResponse(status=500)))
    gateway.load()
    app = create_app(gateway)
    transport = httpx2.ASGITransport(app)
    client = httpx2.AsyncClient(
        transport=transport, base_url="http://gateway.test", headers=ALICE, timeout=20
    )
    # ASGITransport runs no lifespan: run the app's own (the MCP session manager lives there).
    async with client as http, lifespan(app):
        yield http, gateway


# -- HTTP ---------------------------------------------------------------------------------


async def test_call_envelope_carries_the_view_beside_what_the_model_reads() -> None:
    async with served(config()) as (http, _):
        response = await http.post("/v1/tools/bar_chart_with_summary/call", json={"values": [1, 3]})
    assert response.json() == {
        "ok": True,
        "status": None,
        "content_type": "application/json",
        "result": {"bars": 2, "largest": 3},
        "embeds": [{"content_type": "text/html", "content": CHART}],
    }


async def test_call_headers_fill_the_context_and_credentials_stay_out() -> None:
    headers = {
        "X-Toolbridge-Chat-Id": "chat-1",
        "X-Toolbridge-Metadata": '{"tool_ids": ["nb"]}',
        "X-Custom": "kept",
        "X-Session-Token": "canary-session-token",
    }
    async with served(config()) as (http, _):
        body = (await http.post("/v1/tools/whoami/call?v=2", json={}, headers=headers)).json()
    result = body["result"]
    assert (result["chat_id"], result["metadata"]["tool_ids"], result["oauth_token"]) == (
        "chat-1",
        ["nb"],
        None,  # an API key is no OAuth token
    )
    assert result["request"]["url"] == "http://gateway.test/v1/tools/whoami/call?v=2"
    assert result["request"]["headers"]["x-custom"] == "kept"
    shown = json.dumps(body)
    for canary in (KEY, "canary-session-token"):
        assert canary not in shown


async def test_bad_context_header_is_a_400() -> None:
    async with served(config()) as (http, _):
        response = await http.post(
            "/v1/tools/whoami/call", json={}, headers={"X-Toolbridge-Files": "{}"}
        )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "type": "bad_request",
                "message": "the x-toolbridge-files header: expected a JSON array, found an object",
            }
        },
    )


async def test_servers_lists_the_filters_to_admins() -> None:
    redact = {"id": "redact", "path": "tests/fixtures/filters/redact_emails.py", "tools": ["who*"]}
    gone = {"id": "gone", "path": "tests/fixtures/filters/gone.py", "required": True}
    more = {"id": "more", "path": "tests/fixtures/filters/wants_more.py"}
    async with served(config(redact, gone, more)) as (http, _):
        filters = (await http.get("/v1/servers", headers=OPS)).json()["filters"]
        by_alice = (await http.get("/v1/servers")).json()
    assert "filters" not in by_alice  # the operator's machinery, not a caller's business
    for listed in filters:
        del listed["loaded_at"]
    assert filters == [
        {
            "id": "redact",
            "location": "tests/fixtures/filters/redact_emails.py",
            "status": "ok",
            "error": None,
            "warnings": [],
            "switched_off": False,
            "priority": 5,
            "required": False,
            "sources": [],
            "tools": ["who*"],
        },
        {
            "id": "gone",
            "location": "tests/fixtures/filters/gone.py",
            "status": "error",
            "error": "filters 'gone': tests/fixtures/filters/gone.py: no such file",
            "warnings": [],
            "switched_off": False,
            "priority": None,
            "required": True,
            "sources": [],
            "tools": [],
        },
        {
            "id": "more",
            "location": "tests/fixtures/filters/wants_more.py",
            "status": "warning",
            "error": None,
            "warnings": [
                "inlet: parameter 'options' has no default, and the host fills only the call "
                "('body') and Open WebUI's `__name__` parameters: every run of it will fail"
            ],
            "switched_off": False,
            "priority": 0,
            "required": False,
            "sources": [],
            "tools": [],
        },
    ]


# -- one turn -----------------------------------------------------------------------------


def chat_call(id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


async def test_a_conversation_turn_brings_messages_context_events_and_views() -> None:
    conversation = [
        {"role": "user", "content": "note it and chart it"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                chat_call("c0", "list_notes", {}),
                chat_call("c1", "add_note", {"text": "milk"}),
                chat_call("c2", "bar_chart", {"values": [1, 3]}),
                chat_call("c3", "whoami", {}),
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": "No notes yet."},
    ]
    payload = {"messages": conversation, "context": {"chat_id": "chat-5", "model": "m-1"}}
    async with served(config()) as (http, _):
        answer = (await http.post("/v1/tool_calls", json=payload)).json()
    whoami = json.loads(answer["messages"][2]["content"])
    assert (whoami["messages"], whoami["chat_id"], whoami["model"]) == (
        conversation,
        "chat-5",
        {"id": "m-1", "name": "m-1"},
    )
    assert answer["messages"][:2] == [
        {"role": "tool", "tool_call_id": "c1", "content": answer["messages"][0]["content"]},
        {"role": "tool", "tool_call_id": "c2", "content": VIEW_NOTE},
    ]
    assert answer["messages"][0]["content"].startswith("Noted (1 in this chat, ")
    assert answer["events"] == [
        {
            "call_id": "c1",
            "tool": "add_note",
            "event": {"type": "status", "data": {"description": "noted in chat-5", "done": True}},
        }
    ]
    assert answer["embeds"] == [
        {"call_id": "c2", "tool": "bar_chart", "content_type": "text/html", "content": CHART}
    ]


async def test_a_turn_refused_by_a_filter_is_that_calls_answer() -> None:
    guard = {"id": "guard", "path": "tests/fixtures/filters/guard.py"}
    payload = {"tool_calls": [chat_call("c1", "count_words", {"text": "DROP TABLE x"})]}
    async with served(config(guard)) as (http, _):
        answer = (await http.post("/v1/tool_calls", json=payload)).json()
    assert answer == {
        "messages": [
            {
                "role": "tool",
                "tool_call_id": "c1",
                "content": json.dumps(
                    {
                        "ok": False,
                        "status": None,
                        "result": "refused by filter 'guard': 'text' mentions 'drop table', "
                        "which is not allowed",
                    },
                    separators=(",", ":"),
                ),
            }
        ]
    }


# -- MCP ----------------------------------------------------------------------------------


class User:
    """An MCP client's user: answers elicitations from a script."""

    def __init__(self, *answers: types.ElicitResult) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.asked.append((params.message, params.requested_schema))
        return self.answers.pop(0)


CONFIRM = ("Delete file?\n\nDelete a.txt for good?", {"type": "object", "properties": {}})
REASON = (
    "Why?\n\nSay why, for the log.",
    {
        "type": "object",
        "properties": {"value": {"type": "string", "title": "Why?", "description": "reason"}},
        "required": ["value"],
    },
)


@asynccontextmanager
async def mcp_client(
    http: httpx2.AsyncClient, *, mode: str = "auto", **options: Any
) -> AsyncIterator[Client]:
    transport = streamable_http_client(f"http://gateway.test{PATH}", http_client=http)
    async with Client(transport, mode=mode, **options) as client:
        yield client


def texts(result: types.CallToolResult) -> list[Any]:
    out: list[Any] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            out.append(block.text)
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            assert isinstance(resource, types.TextResourceContents)
            out.append((str(resource.uri), resource.mime_type, resource.text))
    return out


async def test_mcp_elicitation_in_input_required_rounds() -> None:
    """2026-07-28: each question is a round; the tool runs again with the answers so far, and
    acts once, after the last one."""
    user = User(
        types.ElicitResult(action="accept", content={}),
        types.ElicitResult(action="accept", content={"value": "cleanup"}),
    )
    async with served(config()) as (http, gateway):
        async with mcp_client(http, elicitation_callback=user) as client:
            result = await client.call_tool("delete_file", {"name": "a.txt"})
        tool = gateway.catalog.get("delete_file")
        assert tool is not None
        deleted = tool.target.func.__self__.deleted  # type: ignore[union-attr]
    assert (texts(result), result.is_error) == (["Deleted a.txt (cleanup)."], False)
    assert user.asked == [CONFIRM, REASON]
    assert deleted == ["a.txt"]


ASKING_FILTER = """\
class Filter:
    def inlet(self, body: dict, __event_call__=None) -> dict:
        if __event_call__ is not None:
            event = {"type": "confirmation", "data": {"title": "Go on?", "message": "Really?"}}
            if not __event_call__(event):
                raise Exception("the user said no")
        return body
"""


async def test_a_filter_asks_over_mcp_in_input_required_rounds_too(tmp_path: Path) -> None:
    """A filter's `__event_call__` asks as a tool's does: its question ends the round (it is
    not the filter failing), and the call goes on once answered."""
    (tmp_path / "asking.py").write_text(ASKING_FILTER)
    cfg = config({"id": "asking", "path": str(tmp_path / "asking.py"), "tools": ["add_note"]})
    user = User(types.ElicitResult(action="accept", content={}))
    async with served(cfg) as (http, _), mcp_client(http, elicitation_callback=user) as client:
        result = await client.call_tool("add_note", {"text": "milk"})
    assert (result.is_error, texts(result)[0].startswith("Noted"), user.asked) == (
        False,
        True,
        [("Go on?\n\nReally?", {"type": "object", "properties": {}})],
    )


async def test_mcp_elicitation_declined() -> None:
    user = User(types.ElicitResult(action="decline"))
    async with served(config()) as (http, _), mcp_client(http, elicitation_callback=user) as client:
        result = await client.call_tool("delete_file", {"name": "a.txt"})
    assert texts(result) == ["Kept a.txt: the user said no."]


@pytest.mark.parametrize(
    ("mode", "callback"),
    [("auto", False), ("legacy", True)],
    ids=["no-capability", "stateless-1.x"],
)
async def test_mcp_without_anyone_to_ask_the_fallback_runs(mode: str, callback: bool) -> None:
    """No elicitation capability, or a stateless handshake-era session (no way to send it a
    request): `__event_call__` is None."""
    options: dict[str, Any] = {"elicitation_callback": User()} if callback else {}
    async with served(config()) as (http, _), mcp_client(http, mode=mode, **options) as client:
        result = await client.call_tool("delete_file", {"name": "a.txt"})
    assert texts(result) == ["Not deleted: nobody could confirm deleting a.txt."]


async def test_mcp_never_asks_for_a_password() -> None:
    user = User()
    async with served(config()) as (http, _), mcp_client(http, elicitation_callback=user) as client:
        result = await client.call_tool("ask_password", {})
    assert texts(result) == [
        "answer: {'error': 'a password cannot be asked for over MCP (a form must not request "
        "secrets)'}"
    ]
    assert user.asked == []


async def test_mcp_views_events_and_meta_context() -> None:
    seen: list[tuple[float, str | None]] = []
    logged: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(params.data)

    async with (
        served(config()) as (http, _),
        mcp_client(http, logging_callback=on_log, log_level="info") as client,
    ):
        chart = await client.call_tool("bar_chart", {"values": [1, 3]})
        noted = await client.call_tool(
            "add_note",
            {"text": "milk"},
            progress_callback=on_progress,
            meta=cast(types.RequestParamsMeta, {"toolbridge/chat_id": "chat-mcp"}),
        )
        who = await client.call_tool(
            "whoami",
            {},
            meta=cast(
                types.RequestParamsMeta, {"toolbridge/session_id": "s-1", "toolbridge/files": []}
            ),
        )
    assert texts(chart) == [
        VIEW_NOTE,
        ("ui://toolbridge/bar_chart/1", "text/html", CHART),
    ]
    assert texts(noted)[0].startswith("Noted (1 in this chat")
    event = {"type": "status", "data": {"description": "noted in chat-mcp", "done": True}}
    assert seen == [(1.0, "status: noted in chat-mcp")]
    assert logged == [{"tool": "add_note", "event": event}]
    assert json.loads(texts(who)[0])["session_id"] == "s-1"


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")  # the client's
async def test_mcp_log_entries_follow_the_level_a_handshake_era_session_set() -> None:
    """The `logging` capability is declared (log entries are sent), and a stateful session's
    `logging/setLevel` above `info` stops the events' log entries (progress goes on)."""
    logged: list[Any] = []
    seen: list[float] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(params.data["event"]["data"]["description"])

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with served(config()) as (_, gateway):
        mcp = create_mcp_app(gateway, stateful=True)
        app = Starlette(routes=[Route(PATH, mcp)])
        async with (
            mcp.lifespan(),
            httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app), headers=ALICE, timeout=20
            ) as http,
            mcp_client(http, mode="legacy", logging_callback=on_log) as client,
        ):
            capabilities = client.server_capabilities
            await client.set_logging_level("warning")
            await client.call_tool("add_note", {"text": "eggs"}, progress_callback=on_progress)
            await client.set_logging_level("debug")
            await client.call_tool("add_note", {"text": "milk"}, progress_callback=on_progress)
    assert capabilities is not None
    assert capabilities.logging == types.LoggingCapability()
    assert (seen, logged) == ([1.0, 1.0], ["noted in no-chat"])
