"""Security cases against `toolbridge serve` itself, on loopback: input -> expected.

Two real gateways run as subprocesses (as an operator starts them, with the log redaction and
the connection limits `serve` installs), in front of a real upstream that echoes every request
(tests/fake_upstream.py): one with callers (`auth`), one in open mode. Canary secrets are put
everywhere a secret can be configured (callers' keys, an upstream bearer token, a query key, a
document URL's key, a local tool's valve); none may ever come back, in any answer, in
`/metrics`, or in the log of any logger at the debug level.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.fake_upstream import create_upstream
from toolbridge.redaction import CUT_PREFIX
from toolbridge.serve.loopback import LoopbackServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CANARIES = {
    "ALICE_KEY": "canary-alice-key-5e1f",
    "OPS_KEY": "canary-ops-key-90ab",
    "BOB_KEY": "canary-bob-key-3c7d",
    "UPSTREAM_TOKEN": "canary-upstream-token-77aa",
    "QUERY_KEY": "canary-query-key-41fe",
    "DOC_KEY": "canary-document-key-0c2b",
    "VALVE_KEY": "canary-valve-key-d00d",
}
ALICE = {"Authorization": f"Bearer {CANARIES['ALICE_KEY']}"}
OPS = {"Authorization": f"Bearer {CANARIES['OPS_KEY']}"}
BOB = {"Authorization": f"Bearer {CANARIES['BOB_KEY']}"}
MCP = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
EARLY = 0.01
"""How much sooner than its deadline a timer may fire: uvloop (libuv) counts a timer from the
loop's clock as cached at the start of its iteration, which may be a little behind."""


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[str]
    log: Path
    answers: list[str]
    """Every answer body read in the tests, for the canary check at the end."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(folder: Path, config: str) -> Served:
    (folder / "toolbridge.yaml").write_text(config)
    port = free_port()
    log = folder / "serve.log"
    command = [sys.executable, "-m", "toolbridge", "serve", "--port", str(port)]
    command += ["--log-level", "debug"]
    env = {**os.environ, **CANARIES, "TOOLBRIDGE_CACHE_DIR": ""}
    with log.open("w") as err:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stderr=err, stdout=subprocess.DEVNULL, text=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited: {log.read_text()}")
        try:
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Served(url, port, process, log, [])
        except httpx2.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("serve did not answer /healthz within 30 s")


def stop(served: Served) -> str:
    served.process.send_signal(signal.SIGINT)
    try:
        served.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()
    return served.log.read_text()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with LoopbackServer(create_upstream()) as server:
        yield server.url


def config(upstream: str, *, with_auth: bool) -> str:
    auth = textwrap.dedent(
        """\
        auth:
          api_keys:
            - {user: alice, key: "${ALICE_KEY}", groups: [support]}
            - {user: ops, key: "${OPS_KEY}", admin: true}
            - {user: bob, key: "${BOB_KEY}"}
        """
    )
    body = f"""\
http:
  allowed_origins: [https://app.example]
  header_timeout: {HEADER_TIMEOUT}
  body_timeout: {BODY_TIMEOUT}
servers:
  - id: echo
    spec: {ROOT}/tests/fixtures/security.yaml
    base_url: {upstream}
    auth: {{type: bearer, token: "${{UPSTREAM_TOKEN}}"}}
    access: {{groups: [support]}}
  - id: keyed
    spec: {ROOT}/tests/fixtures/security.yaml
    base_url: {upstream}
    prefix: keyed
    auth: {{type: api_key, value: "${{QUERY_KEY}}", in: query, name: api_key}}
    access: {{groups: [support]}}
  - id: fetched
    spec: {upstream}/docs/openapi.json?api_key=${{DOC_KEY}}
    access: {{groups: [support]}}
  - id: forwarded
    spec: {ROOT}/tests/fixtures/security.yaml
    base_url: {upstream}
    prefix: forwarded
    auth: {{type: forward, header: X-Upstream-Key}}
    access: {{groups: [support]}}
tools:
  - id: hostile
    path: {ROOT}/tests/fixtures/hostile/hostile.py
    valves: {{service_api_key: "${{VALVE_KEY}}"}}
    timeout: 2
    access: {{groups: [support]}}
"""
    return (auth if with_auth else "") + body


@pytest.fixture(scope="module")
def guarded(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start(tmp_path_factory.mktemp("guarded"), config(upstream, with_auth=True))
    yield served
    log = stop(served)
    assert_no_canary(log, "the guarded gateway's log")
    assert_no_canary("\n".join(served.answers), "the guarded gateway's answers")


@pytest.fixture(scope="module")
def opened(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start(tmp_path_factory.mktemp("open"), config(upstream, with_auth=False))
    yield served
    assert_no_canary(stop(served), "the open gateway's log")
    assert_no_canary("\n".join(served.answers), "the open gateway's answers")


def assert_no_canary(text: str, where: str) -> None:
    found = [name for name, value in CANARIES.items() if value in text]
    assert found == [], f"{where} holds {found}"


def send(served: Served, method: str, path: str, **options: Any) -> httpx2.Response:
    response = httpx2.request(method, served.url + path, timeout=10, **options)
    served.answers.append(response.text)
    served.answers.append(json.dumps(dict(response.headers)))
    return response


# -- the edge: hosts, origins, cross-site requests -------------------------------------------

EDGE_CASES = {
    # id: (gateway, method, path, headers, body, expected status)
    "open-foreign-host": ("open", "GET", "/v1/tools", {"Host": "evil.example"}, None, 421),
    "open-foreign-host-reload": (
        "open",
        "POST",
        "/v1/admin/reload",
        {"Host": "evil.example:80"},
        None,
        421,
    ),
    "open-localhost": ("open", "GET", "/v1/tools", {"Host": "localhost"}, None, 200),
    "open-cross-site-post": (
        "open",
        "POST",
        "/v1/tools/echo/call",
        {"Origin": "https://evil.example"},
        b"{}",
        403,
    ),
    "open-cross-site-text-plain": (
        "open",
        "POST",
        "/v1/tools/echo/call",
        {"Origin": "https://evil.example", "Content-Type": "text/plain"},
        b'{"item": "x"}',
        403,
    ),
    "open-fetch-site-no-origin": (
        "open",
        "POST",
        "/v1/tools/echo/call",
        {"Sec-Fetch-Site": "cross-site"},
        b"{}",
        403,
    ),
    "open-null-origin": ("open", "POST", "/v1/admin/reload", {"Origin": "null"}, None, 403),
    "open-mcp-foreign-origin": (
        "open",
        "POST",
        "/mcp",
        {**MCP, "Origin": "https://evil.example"},
        b"{}",
        403,
    ),
    "open-listed-origin": (
        "open",
        "POST",
        "/v1/tools/echo/call",
        {"Origin": "https://app.example"},
        b"{}",
        422,  # through the edge; the arguments lack `item`
    ),
    "guarded-any-host": (
        "guarded",
        "GET",
        "/v1/tools",
        {**ALICE, "Host": "gateway.internal"},
        None,
        200,
    ),
    "guarded-listed-origin": (
        "guarded",
        "GET",
        "/v1/tools",
        {**ALICE, "Origin": "https://app.example"},
        None,
        200,
    ),
    "guarded-foreign-origin": (
        "guarded",
        "GET",
        "/v1/tools",
        {**ALICE, "Origin": "https://evil.example"},
        None,
        403,
    ),
    "guarded-same-site-reload": (
        "guarded",
        "POST",
        "/v1/admin/reload",
        {**OPS, "Sec-Fetch-Site": "same-site"},
        None,
        403,
    ),
    "guarded-mcp-unlisted-origin": (
        "guarded",
        "POST",
        "/mcp",
        {**ALICE, **MCP, "Origin": "http://localhost"},
        b"{}",
        403,
    ),
}


@pytest.mark.parametrize(
    ("gateway", "method", "path", "headers", "content", "status"),
    list(EDGE_CASES.values()),
    ids=list(EDGE_CASES),
)
def test_the_edge_takes_only_allowed_hosts_and_origins(
    request: pytest.FixtureRequest,
    gateway: str,
    method: str,
    path: str,
    headers: dict[str, str],
    content: bytes | None,
    status: int,
) -> None:
    served: Served = request.getfixturevalue("guarded" if gateway == "guarded" else "opened")
    response = send(served, method, path, headers=headers, content=content)
    assert response.status_code == status, response.text


PREFLIGHT = {
    "access-control-allow-origin": "https://app.example",
    "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "access-control-allow-headers": "Authorization, Content-Type, Accept, Accept-Encoding, "
    "If-None-Match, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version, "
    "X-Toolbridge-User-Valves, X-Toolbridge-Filter-Valves",
    "access-control-max-age": "600",
    "vary": "Origin",
}
"""A preflight's answer when it names no headers (the edge's list is then allowed)."""
CORS_CASES = {
    # id: (gateway, method, path, headers, expected status, the CORS headers of the answer)
    "preflight-of-a-call": (
        "guarded",
        "OPTIONS",
        "/v1/tools/echo/call",
        {
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        204,
        {
            "access-control-allow-origin": "https://app.example",
            "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            "access-control-allow-headers": "authorization, content-type",
            "access-control-max-age": "600",
            "vary": "Origin",
        },
    ),
    "preflight-of-mcp": (  # answered before the route asks for a key (it carries none)
        "guarded",
        "OPTIONS",
        "/mcp",
        {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        204,
        PREFLIGHT,
    ),
    "listed-origin-reads-the-answer": (
        "guarded",
        "GET",
        "/openapi.json",
        {**ALICE, "Origin": "https://app.example"},
        200,
        {
            "access-control-allow-origin": "https://app.example",
            "access-control-expose-headers": "Mcp-Session-Id, ETag, Retry-After, "
            "WWW-Authenticate, Content-Encoding",
            "vary": "Accept-Encoding, Authorization, Origin",  # the list's own, and Origin
        },
    ),
    "refused-caller-is-readable-too": (  # the browser app may show why
        "guarded",
        "GET",
        "/v1/tools",
        {"Origin": "https://app.example"},
        401,
        {
            "access-control-allow-origin": "https://app.example",
            "access-control-expose-headers": "Mcp-Session-Id, ETag, Retry-After, "
            "WWW-Authenticate, Content-Encoding",
            "vary": "Origin",
        },
    ),
    "foreign-preflight": (
        "guarded",
        "OPTIONS",
        "/v1/tools/echo/call",
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        403,
        {},
    ),
    "open-mode": (
        "open",
        "OPTIONS",
        "/openapi.json",
        {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        204,
        PREFLIGHT,
    ),
    "no-origin": (
        "guarded",
        "GET",
        "/v1/tools",
        ALICE,
        200,
        {"vary": "Accept-Encoding, Authorization"},
    ),
}


@pytest.mark.parametrize(
    ("gateway", "method", "path", "headers", "status", "cors"),
    list(CORS_CASES.values()),
    ids=list(CORS_CASES),
)
def test_browser_apps_of_taken_origins_may_call_and_read(
    request: pytest.FixtureRequest,
    gateway: str,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    cors: dict[str, str],
) -> None:
    """Open WebUI calls the tool servers a user adds from the browser, as browser MCP clients
    do: their origin (when the config takes it) is answered as CORS asks."""
    served: Served = request.getfixturevalue("guarded" if gateway == "guarded" else "opened")
    response = send(served, method, path, headers=headers)
    found = {
        k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"
    }
    assert (response.status_code, found) == (status, cors)


# -- connection limits -------------------------------------------------------------------------


def raw(served: Served, data: bytes, *, wait: float = 5.0) -> tuple[bytes, float]:
    """Send raw bytes; read until the gateway closes. Returns what came back and how long."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served.port), timeout=wait) as sock:
        if data:
            sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks), time.monotonic() - started


def test_too_many_headers_are_431(guarded: Served) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"
    answer, _ = raw(guarded, head)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_head_over_the_size_limit_is_431(guarded: Served) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    answer, _ = raw(guarded, head)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_head_sent_too_slowly_is_408_and_closed(guarded: Served) -> None:
    answer, took = raw(guarded, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT - EARLY <= took < HEADER_TIMEOUT + 1.5


def test_an_idle_connection_is_closed(guarded: Served) -> None:
    answer, took = raw(guarded, b"")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert took < HEADER_TIMEOUT + 1.5


def test_a_dribbled_body_is_408_and_closed(guarded: Served) -> None:
    head = (
        b"POST /v1/tools/echo/call HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
        + ALICE["Authorization"].encode()
        + b"\r\nContent-Length: 100\r\n\r\n{"
    )
    answer, took = raw(guarded, head)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert BODY_TIMEOUT - EARLY <= took < BODY_TIMEOUT + 1.5


# -- arguments: a 422 naming the argument, on every surface ------------------------------------

UNSENDABLE = [
    ("日本", "U+65E5"),
    ("a\u2028b", "U+2028"),
    ("\x1b[31m", "U+001B"),
    ("del\x7f", "U+007F"),
]


@pytest.mark.parametrize(("value", "char"), UNSENDABLE, ids=[c for _, c in UNSENDABLE])
def test_an_unsendable_header_argument_is_422_on_every_surface(
    guarded: Served, value: str, char: str
) -> None:
    arguments = {"item": "a", "X-Note": value}
    direct = send(guarded, "POST", "/v1/tools/echo/call", json=arguments, headers=ALICE)
    assert direct.status_code == 422
    assert [p["path"] for p in direct.json()["error"]["problems"]] == ["$.X-Note"]
    assert char in direct.json()["error"]["problems"][0]["message"]

    turn = {
        "tool_calls": [
            {"id": "1", "function": {"name": "echo", "arguments": json.dumps(arguments)}},
            {"id": "2", "function": {"name": "echo", "arguments": '{"item": "b"}'}},
        ]
    }
    answered = send(guarded, "POST", "/v1/tool_calls", json=turn, headers=ALICE)
    assert answered.status_code == 200
    first, second = (json.loads(m["content"]) for m in answered.json()["messages"])
    assert first["error"]["type"] == "invalid_arguments"
    assert second["path"] == "/echo/b"  # the turn's other call answered

    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    call["params"] = {"name": "echo", "arguments": arguments}
    over_mcp = send(guarded, "POST", "/mcp", json=call, headers={**ALICE, **MCP})
    message = mcp_reply(over_mcp)["result"]
    assert message["isError"] is True
    assert "$.X-Note" in message["content"][0]["text"]
    assert "codec" not in message["content"][0]["text"]


def mcp_reply(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data[0]))
    return dict(response.json())


# -- secrets never come back --------------------------------------------------------------------


def test_an_upstream_that_echoes_the_bearer_token_is_redacted(guarded: Served) -> None:
    answer = send(guarded, "POST", "/v1/tools/echo/call", json={"item": "t"}, headers=ALICE)
    assert answer.json()["result"]["headers"]["authorization"] == "Bearer [redacted]"


def test_an_upstream_that_echoes_the_query_key_is_redacted(guarded: Served) -> None:
    answer = send(guarded, "POST", "/v1/tools/keyed_echo/call", json={"item": "k"}, headers=ALICE)
    assert answer.json()["result"]["query"] == "api_key=[redacted]"


@pytest.mark.parametrize(
    ("tool", "kind", "said"),
    [
        ("binary", "octet", b"auth=Bearer [redacted] query="),
        ("binary", "nul", b"auth=Bearer [redacted] query="),
        ("keyed_binary", "octet", b"auth=None query=api_key=[redacted]"),
    ],
)
def test_an_upstream_that_echoes_a_credential_in_bytes_is_redacted(
    guarded: Served, tool: str, kind: str, said: bytes
) -> None:
    """Bytes come back as base64, which no text search sees into: they are redacted before."""
    answer = send(guarded, "POST", f"/v1/tools/{tool}/call", json={"kind": kind}, headers=ALICE)
    result = answer.json()["result"]
    body = base64.b64decode(result["base64"])
    assert (body, result["size"]) == (b"\x00\x01" + said + b"\xff", len(body))


def test_a_callers_own_secrets_are_redacted_from_its_answers_alone(guarded: Served) -> None:
    """A caller's own secrets (UserValves named as one, a forwarded credential) are redacted
    from the answers of its own calls, never from anyone else's: else a caller could make any
    word a secret, and garble every caller's lists, answers and MCP framing."""
    own = {**ALICE, "X-Toolbridge-User-Valves": '{"api_key": "description"}'}
    said = send(guarded, "POST", "/v1/tools/own_key/call", headers=own).json()
    forwarded = {**ALICE, "X-Upstream-Key": "jsonrpc"}
    echoed = send(
        guarded, "POST", "/v1/tools/forwarded_echo/call", json={"item": "f"}, headers=forwarded
    ).json()
    assert (said["result"], echoed["result"]["headers"]["x-upstream-key"]) == (
        "key: [redacted]",
        "[redacted]",
    )
    tools = send(guarded, "GET", "/v1/tools?format=anthropic", headers=OPS).json()["tools"]
    called = send(guarded, "POST", "/v1/tools/echo/call", json={"item": "o"}, headers=OPS)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    mcp = mcp_reply(send(guarded, "POST", "/mcp", json=initialize, headers={**OPS, **MCP}))
    assert (sorted(tools[0]), sorted(called.json()), mcp["jsonrpc"]) == (
        ["description", "input_schema", "name"],
        ["content_type", "ok", "result", "status"],
        "2.0",
    )


def test_an_answer_cut_at_the_cap_inside_a_secret_shows_none_of_it(guarded: Served) -> None:
    """A local tool answers its valve's key just where the 4 MiB cap cuts (budgets are
    tests/test_budgets.py's): none of the key's characters come back."""
    cap = 4 * 1024 * 1024
    answer = send(
        guarded, "POST", "/v1/tools/padded/call", json={"before": cap - 10}, headers=ALICE
    ).json()
    kept, _, why = answer["result"].rpartition("\n[truncated: ")
    assert (answer["truncated"], kept[-12:], why) == (
        True,
        "xx[redacted]",
        f"the tool's answer was longer than {cap} bytes]",
    )
    assert CANARIES["VALVE_KEY"][:CUT_PREFIX] not in answer["result"]


def test_a_local_tools_exception_holding_a_valve_is_redacted(guarded: Served) -> None:
    answer = send(guarded, "POST", "/v1/tools/leak/call", headers=ALICE)
    assert answer.json()["result"] == "RuntimeError: login refused for key [redacted]"


def test_a_document_urls_key_is_redacted_in_errors(guarded: Served) -> None:
    servers = send(guarded, "GET", "/v1/servers", headers=OPS).json()["servers"]
    fetched = next(s for s in servers if s["id"] == "fetched")
    assert (fetched["status"], "api_key=[redacted]" in fetched["error"]) == ("error", True)


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/v1/tools", "/v1/servers"])
def test_listings_and_metrics_hold_no_secret(guarded: Served, path: str) -> None:
    assert send(guarded, "GET", path, headers=OPS).status_code == 200


def test_the_servers_a_caller_sees_are_those_granted(guarded: Served) -> None:
    def ids(headers: dict[str, str]) -> list[str]:
        servers = send(guarded, "GET", "/v1/servers", headers=headers).json()["servers"]
        return [s["id"] for s in servers]

    assert (ids(BOB), ids(ALICE), ids(OPS)) == (
        [],
        ["echo", "keyed", "fetched", "forwarded", "hostile"],
        ["echo", "keyed", "fetched", "forwarded", "hostile"],
    )


# -- local tools -------------------------------------------------------------------------------


def test_an_async_tool_that_blocks_times_out_and_the_gateway_keeps_answering(
    guarded: Served,
) -> None:
    """`time.sleep(4)` in an async tool under a 2 s timeout: the call answers at 2 s,
    `/healthz` answers at once meanwhile, and the log names the tool."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        call = pool.submit(
            send, guarded, "POST", "/v1/tools/blocking/call", json={"seconds": 4}, headers=ALICE
        )
        time.sleep(0.5)
        health_started = time.monotonic()
        assert send(guarded, "GET", "/healthz").status_code == 200
        health_took = time.monotonic() - health_started
        answer = call.result().json()
    took = time.monotonic() - started
    assert answer["result"] == "timed out after 2 s"
    assert (health_took < 0.5, took < 3.5) == (True, True)
    time.sleep(2.5)  # the tool lets go of its loop, and the watchdog has spoken
    named = [line for line in guarded.log.read_text().splitlines() if "blocks its" in line]
    assert len(named) == 1
    assert "running there: hostile:Tools.blocking." in named[0]


def test_a_huge_local_result_is_capped(guarded: Served) -> None:
    answer = send(
        guarded, "POST", "/v1/tools/huge/call", json={"size": 5_000_000}, headers=ALICE
    ).json()
    assert (answer["truncated"], len(answer["result"]) < 4_200_000) == (True, True)
    assert answer["result"].endswith("bytes]")


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["call", "echo", "--args", '{"item": "cli"}'],
        ["call", "keyed_echo", "--args", '{"item": "cli"}', "--dry-run"],
        ["call", "leak"],
        ["check", "--no-validate", "-v"],
    ],
    ids=["call", "dry-run", "local-error", "check"],
)
def test_the_cli_prints_no_secret(guarded: Served, command: list[str]) -> None:
    """The same config, run in-process by the CLI: what it prints is redacted too."""
    done = subprocess.run(
        [sys.executable, "-m", "toolbridge", *command],
        cwd=guarded.log.parent,
        env={**os.environ, **CANARIES, "TOOLBRIDGE_CACHE_DIR": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_no_canary(done.stdout + done.stderr, f"toolbridge {' '.join(command)}")
    assert "[redacted]" in done.stdout + done.stderr
