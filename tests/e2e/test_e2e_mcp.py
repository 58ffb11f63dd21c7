"""`/mcp` served by real uvicorn, used by the `mcp` SDK's own client over real HTTP.

The upstream is the bundled demo's notes service on a loopback port. The gateway app here is
built as `create_app` mounts the endpoint: `/mcp` routed to the `McpApp`, its lifespan inside
the gateway's, and an admin reload that ends by announcing the change.

The client runs in both eras: `mode="auto"` (2.x: `server/discover`, then protocol
2026-07-28) and `mode="legacy"` (the `initialize` handshake that 1.x clients send). The 1.x
SDK itself cannot be installed beside the 2.x one: one more test runs a 1.x client against the
gateway in a subprocess, on the Python the `mcp1_python` fixture finds or builds
(tests/externals.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ToolsListChanged
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge.config import Config
from toolbridge.config_file import load_config
from toolbridge.demo.service import create_demo_app
from toolbridge.gateway import Gateway
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.serve.mcp import PATH, create_mcp_app
from toolbridge.upstream.clients import make_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"alice": "alice-secret-key-1", "ops": "ops-secret-key-1"}
MODES = [("auto", "2026-07-28"), ("legacy", "2025-11-25")]
READ_TOOLS = ["listNotes", "getNote", "getStatus"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    folder = tmp_path_factory.mktemp("config")
    config_file = folder / "toolbridge.yaml"
    with LoopbackServer(create_demo_app()) as notes:
        config_file.write_text(
            textwrap.dedent(
                f"""\
                auth:
                  api_keys:
                    - {{user: alice, key: "${{ALICE_KEY}}"}}
                    - {{user: ops, key: "${{OPS_KEY}}", admin: true}}
                servers:
                  - id: notes
                    spec: {ROOT}/specs/demo.yaml
                    base_url: {notes.url}
                    access: {{users: [alice], methods: [GET]}}
                """
            )
        )
        yield load_config(config_file, {"ALICE_KEY": KEYS["alice"], "OPS_KEY": KEYS["ops"]})


def gateway_app(
    config: Config, *, stateful: bool = False, reread: Callable[[], Config] | None = None
) -> Starlette:
    """The gateway's app, reduced to what `/mcp` needs, wired as `create_app` wires it."""
    gateway = Gateway(config, upstream=make_upstream(), reread=reread)
    gateway.load()
    mcp = create_mcp_app(gateway, stateful=stateful)

    async def reload(request: Request) -> Response:
        if not gateway.authenticate(request.headers.get("authorization")).admin:
            return Response(status_code=403)
        await gateway.reload()
        await mcp.tools_changed()
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway, mcp.lifespan():
            yield

    routes = [Route(PATH, mcp), Route("/v1/admin/reload", reload, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


@pytest.fixture(scope="module")
def gateway_url(config: Config) -> Iterator[str]:
    with LoopbackServer(gateway_app(config), lifespan="on") as server:
        yield server.url


@contextlib.asynccontextmanager
async def connect(
    url: str,
    user: str = "alice",
    *,
    mode: str = "auto",
    key: str | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    on_message: MessageHandler | None = None,
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key or KEYS[user]}"}
    async with httpx2.AsyncClient(headers=headers, transport=transport, timeout=10) as http:
        transport_streams = streamable_http_client(f"{url}{PATH}", http_client=http)
        async with Client(transport_streams, mode=mode, message_handler=on_message) as client:
            yield client


class MessageHandler:
    """Collects what the server sends outside of answers; `changed` is set by a list change."""

    def __init__(self) -> None:
        self.received: list[IncomingMessage] = []
        self.changed = anyio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        self.received.append(message)
        if isinstance(message, types.ToolListChangedNotification):
            self.changed.set()


async def reload(url: str) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{url}/v1/admin/reload", headers={"Authorization": f"Bearer {KEYS['ops']}"}
        )
    assert response.status_code == 204


# -- both eras --------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "version"), MODES)
async def test_a_client_initializes_lists_and_calls(
    gateway_url: str, mode: str, version: str
) -> None:
    async with connect(gateway_url, mode=mode) as client:
        assert client.session.protocol_version == version
        tools = (await client.list_tools()).tools
        note = await client.call_tool("getNote", {"noteId": 1})
        status = await client.call_tool("getStatus", {})
    assert [tool.name for tool in tools] == READ_TOOLS
    assert [tool.annotations.read_only_hint for tool in tools if tool.annotations] == [True] * 3
    assert note.is_error is False
    assert isinstance(note.structured_content, dict)
    assert (note.structured_content["id"], note.structured_content["title"]) == (1, "Welcome")
    assert isinstance(status.structured_content, dict)
    assert status.structured_content["status"] == "ok"


@pytest.mark.parametrize(("mode", "version"), MODES)
async def test_an_unknown_tool_is_a_json_rpc_error(
    gateway_url: str, mode: str, version: str
) -> None:
    async with connect(gateway_url, mode=mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("noSuchTool", {})
        missing = await client.call_tool("getNote", {"noteId": 999})
    assert (raised.value.code, raised.value.message) == (
        types.INVALID_PARAMS,
        "no tool named 'noSuchTool'",
    )
    # A tool that exists but answers 404 is a result the model reads, not a protocol error.
    assert missing.is_error is True


@pytest.mark.parametrize(("mode", "version"), MODES)
async def test_a_wrong_key_is_refused_before_the_protocol_starts(
    gateway_url: str, mode: str, version: str
) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{gateway_url}{PATH}",
            json={"jsonrpc": "2.0", "id": 1, "method": "server/discover"},
            headers={"Authorization": "Bearer wrong-key"},
        )
    assert (response.status_code, response.headers["www-authenticate"]) == (
        401,
        'Bearer realm="toolbridge"',
    )
    with pytest.RaisesGroup(MCPError, flatten_subgroups=True):
        async with connect(gateway_url, mode=mode, key="wrong-key"):
            pass


async def test_a_caller_neither_sees_nor_calls_a_tool_not_granted_to_them(
    gateway_url: str,
) -> None:
    async with connect(gateway_url, "alice") as alice:
        names = [tool.name for tool in (await alice.list_tools()).tools]
        with pytest.raises(MCPError) as raised:
            await alice.call_tool("createNote", {"title": "from alice"})
    assert "createNote" not in names
    assert raised.value.message == "no tool named 'createNote'"

    async with connect(gateway_url, "ops", mode="legacy") as ops:
        names = [tool.name for tool in (await ops.list_tools()).tools]
        created = await ops.call_tool("createNote", {"title": "from ops"})
        assert isinstance(created.structured_content, dict)
        deleted = await ops.call_tool("deleteNote", {"noteId": created.structured_content["id"]})
    assert names == ["listNotes", "createNote", "getNote", "deleteNote", "updateNote", "getStatus"]
    assert (created.is_error, created.structured_content["title"]) == (False, "from ops")
    assert (deleted.is_error, deleted.structured_content) == (False, None)


# -- telling clients that the tools changed ---------------------------------------------------


async def test_a_listening_client_hears_that_the_tools_changed(gateway_url: str) -> None:
    async with connect(gateway_url) as client, client.listen(tools_list_changed=True) as sub:
        assert sub.honored.tools_list_changed is True
        await reload(gateway_url)
        with anyio.fail_after(10):
            event = await anext(aiter(sub))
        assert event == ToolsListChanged()
        assert len((await client.list_tools()).tools) == 3


async def test_a_stateful_session_hears_it_on_its_get_stream(config: Config) -> None:
    handler = MessageHandler()
    with LoopbackServer(gateway_app(config, stateful=True), lifespan="on") as server:
        async with connect(server.url, mode="legacy", on_message=handler) as client:
            result = client.session.initialize_result
            assert result is not None
            assert result.capabilities.tools == types.ToolsCapability(list_changed=True)
            await client.list_tools()
            await reload(server.url)
            with anyio.fail_after(10):
                await handler.changed.wait()
    assert handler.received == [types.ToolListChangedNotification()]


@pytest.mark.parametrize(("mode", "version"), MODES)
async def test_a_client_paging_through_a_reload_gets_the_rest_of_the_new_list(
    config: Config, mode: str, version: str
) -> None:
    """The mcp SDK's client does not list again when a page is refused: a cursor made before a
    reload goes on in the new list, after the last tool the client was sent."""
    paged = config.model_copy(update={"mcp": config.mcp.model_copy(update={"page_size": 2})})
    (notes,) = paged.servers
    assert notes.access is not None
    grant = notes.access[0].model_copy(update={"methods": ("GET", "DELETE")})
    grown = paged.model_copy(update={"servers": [notes.model_copy(update={"access": (grant,)})]})
    app = gateway_app(paged, reread=lambda: grown)
    with LoopbackServer(app, lifespan="on") as server:
        async with connect(server.url, mode=mode) as client:
            first = await client.list_tools()
            assert [t.name for t in first.tools] == ["listNotes", "getNote"]
            await reload(server.url)
            names = [t.name for t in first.tools]
            cursor = first.next_cursor
            while cursor is not None:
                page = await client.list_tools(cursor=cursor)
                names.extend(t.name for t in page.tools)
                cursor = page.next_cursor
            again = [t.name for t in (await client.list_tools()).tools]
    assert names == ["listNotes", "getNote", "deleteNote", "getStatus"]
    assert again == ["listNotes", "getNote"]  # the new list's first page


# -- several stateless gateways behind one address --------------------------------------------


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer in miniature: each request goes to the next backend in turn."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = [httpx2.URL(url) for url in backends]
        self.served = [0] * len(backends)
        self._turns = itertools.cycle(range(len(backends)))
        self._transport = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        turn = next(self._turns)
        backend = self.backends[turn]
        request.url = request.url.copy_with(host=backend.host, port=backend.port)
        self.served[turn] += 1
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


@pytest.mark.parametrize(("mode", "version"), MODES)
async def test_stateless_gateways_behind_a_load_balancer_serve_one_client(
    config: Config, mode: str, version: str
) -> None:
    with (
        LoopbackServer(gateway_app(config), lifespan="on") as one,
        LoopbackServer(gateway_app(config), lifespan="on") as two,
    ):
        balancer = RoundRobin([one.url, two.url])
        async with connect("http://gateway.test", mode=mode, transport=balancer) as client:
            assert client.session.protocol_version == version
            tools = (await client.list_tools()).tools
            results = [await client.call_tool("getNote", {"noteId": 1}) for _ in range(3)]
    assert [tool.name for tool in tools] == READ_TOOLS
    assert [result.is_error for result in results] == [False] * 3
    assert min(balancer.served) >= 2


# -- a client of the 1.x SDK ------------------------------------------------------------------

MCP1_CLIENT = """
import json, sys
import anyio, httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client

url, alice, ops, stateful = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "stateful"

async def main():
    report = {}
    changed = anyio.Event()

    async def on_message(message):
        if isinstance(getattr(message, "root", None), types.ToolListChangedNotification):
            changed.set()

    headers = {"Authorization": "Bearer " + alice}
    async with streamablehttp_client(url + "/mcp", headers=headers) as (read, write, session_id):
        async with ClientSession(read, write, message_handler=on_message) as session:
            init = await session.initialize()
            report["version"] = init.protocolVersion
            report["list_changed"] = init.capabilities.tools.listChanged
            report["session"] = session_id() is not None
            report["tools"] = [t.name for t in (await session.list_tools()).tools]
            status = await session.call_tool("getStatus", {})
            report["status"] = [status.isError, status.structuredContent["status"]]
            missing = await session.call_tool("getNote", {"noteId": 999})
            report["missing"] = [missing.isError, missing.content[0].text.splitlines()[0]]
            try:
                await session.call_tool("deleteNote", {"noteId": 1})
            except Exception as exc:
                report["forbidden"] = [exc.error.code, exc.error.message]
            if stateful:
                async with httpx.AsyncClient() as http:
                    answer = await http.post(
                        url + "/v1/admin/reload", headers={"Authorization": "Bearer " + ops}
                    )
                    assert answer.status_code == 204
                with anyio.fail_after(10):
                    await changed.wait()
                report["heard_change"] = True
    print(json.dumps(report))

anyio.run(main)
"""


@pytest.mark.parametrize("state", ["stateless", "stateful"])
def test_a_client_of_the_1x_sdk(
    config: Config, tmp_path: Path, state: str, mcp1_python: Path
) -> None:
    script = tmp_path / "mcp1_client.py"
    script.write_text(MCP1_CLIENT)
    with LoopbackServer(gateway_app(config, stateful=state == "stateful"), lifespan="on") as gw:
        arguments = [gw.url, KEYS["alice"], KEYS["ops"], state]
        done = subprocess.run(
            [mcp1_python, str(script), *arguments], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    stateful = state == "stateful"
    assert report == {
        "version": "2025-11-25",
        "list_changed": stateful,
        "session": stateful,
        "tools": READ_TOOLS,
        "status": [False, "ok"],
        "missing": [True, "the upstream answered HTTP 404 Not Found:"],
        "forbidden": [types.INVALID_PARAMS, "no tool named 'deleteNote'"],
        **({"heard_change": True} if stateful else {}),
    }


SLOW_DOCUMENT = """\
openapi: 3.0.3
info: {title: slow, version: "1"}
paths:
  /slow:
    post:
      operationId: postSlow
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object}}}}}
"""


async def test_a_client_that_gives_up_stops_the_call_and_its_upstream_request(
    tmp_path: Path,
) -> None:
    """A 2.x client's `read_timeout_seconds` closes its request: the gateway stops the call and
    closes the upstream connection (the upstream sees its client go), rather than hold it and
    the server's slots until the upstream answers. (A 1.x client sends `notifications/cancelled`
    instead, as a request of its own: a stateless endpoint cannot tie it to the call.)"""
    seen: list[str] = []

    async def slow(request: Request) -> Response:
        for _ in range(100):  # 10 s at most
            if await request.is_disconnected():
                seen.append("client went")
                return Response(status_code=499)
            await anyio.sleep(0.1)
        seen.append("answered")
        return Response(b"{}", media_type="application/json")

    upstream = Starlette(routes=[Route("/slow", slow, methods=["POST"])])
    with LoopbackServer(upstream) as served:
        (tmp_path / "slow.yaml").write_text(SLOW_DOCUMENT)
        (tmp_path / "toolbridge.yaml").write_text(
            f"servers:\n  - {{id: slow, spec: slow.yaml, base_url: '{served.url}', timeout: 30}}\n"
        )
        app = gateway_app(load_config(tmp_path / "toolbridge.yaml", {}))
        with LoopbackServer(app, lifespan="on") as gw:
            async with httpx2.AsyncClient(timeout=10) as http:
                streams = streamable_http_client(f"{gw.url}{PATH}", http_client=http)
                async with Client(streams) as client:
                    with pytest.raises(MCPError) as gave_up:
                        await client.call_tool("postSlow", {}, read_timeout_seconds=1.0)
            with anyio.fail_after(5):
                while not seen:
                    await anyio.sleep(0.1)
    assert (str(gave_up.value), seen) == ("Request 'tools/call' timed out", ["client went"])
