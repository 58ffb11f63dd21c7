"""What a server's upstream does to a call, against real servers on loopback: TLS with a test CA
and client certificates, a real proxy, retries, the concurrency cap, unknown outcomes, binary
answers and oversized headers. The gateway answers over its HTTP API (in-process); every
upstream is a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.raw_servers import BlockingTlsServer, Proxy, RawServer, answering
from tests.servers import free_port
from tests.tls import TestAuthority
from toolbridge.config import Config, Server
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream
from toolbridge.upstream.routes import share_of

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both loops `serve` may run on: their TLS layers report failures differently."""
    return "asyncio", {"use_uvloop": request.param == "uvloop"}


# -- the upstream: a real service on 127.0.0.3 -------------------------------------------------

attempts: dict[str, int] = {}


async def flaky(request: Request) -> Response:
    """503 (or the status asked for) with Retry-After the first time a key is asked for."""
    key = request.path_params["key"]
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] == 1:
        status = int(request.query_params.get("status", "503"))
        after = request.query_params.get("after", "1")
        return JSONResponse({"busy": True}, status_code=status, headers={"Retry-After": after})
    return JSONResponse({"attempt": attempts[key]})


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("seconds", "1")))
    return JSONResponse({"slow": True})


async def nul(request: Request) -> Response:
    return Response(b"\x00" * 1000, media_type="text/plain")


async def echo(request: Request) -> Response:
    return JSONResponse({"path": request.url.path, "host": request.headers.get("host")})


async def own_document(request: Request) -> Response:
    """The service's own description: no servers (so `/` of this origin), one operation."""
    document = {
        "openapi": "3.0.3",
        "info": {"title": "service", "version": "1"},
        "paths": {"/echo": operation("get", "/echo", "echo")},
    }
    return JSONResponse(document)


async def token(request: Request) -> Response:
    return JSONResponse({"access_token": "service-token-1", "expires_in": 3600})


SERVICE = Starlette(
    routes=[
        Route("/openapi.json", own_document),
        Route("/oauth/token", token, methods=["POST"]),
        Route("/flaky/{key}", flaky, methods=["GET", "POST"]),
        Route("/slow", slow, methods=["GET", "POST"]),
        Route("/nul", nul),
        Route("/echo", echo),
    ]
)


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with LoopbackServer(SERVICE, host="127.0.0.3") as server:
        yield server.url


def operation(method: str, path: str, op_id: str, *query: str) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": q, "in": "query", "schema": {"type": "string"}} for q in query
    ]
    if "{key}" in path:
        parameters.append(
            {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    return {
        method: {
            "operationId": op_id,
            "parameters": parameters,
            "responses": {"200": {"description": "ok"}},
        }
    }


def write_document(folder: Path, server_url: str) -> Path:
    paths: dict[str, dict[str, Any]] = {
        "/flaky/{key}": {
            **operation("get", "/flaky/{key}", "getFlaky", "status", "after"),
            **operation("post", "/flaky/{key}", "postFlaky", "status", "after"),
        },
        "/slow": {
            **operation("get", "/slow", "getSlow", "seconds"),
            **operation("post", "/slow", "postSlow", "seconds"),
        },
        "/nul": operation("get", "/nul", "getNul"),
        "/echo": operation("get", "/echo", "echo"),
    }
    document = {
        "openapi": "3.0.3",
        "info": {"title": "upstream", "version": "1"},
        "servers": [{"url": server_url}],
        "paths": paths,
    }
    path = folder / "upstream.json"
    path.write_text(json.dumps(document))
    return path


@contextlib.asynccontextmanager
async def gateway_for(
    folder: Path,
    server_url: str,
    *,
    proxy_environment: dict[str, str] | None = None,
    workers: int = 1,
    **fields: Any,
) -> AsyncIterator[httpx2.AsyncClient]:
    """The gateway's HTTP API for one server whose document (a file) names `server_url`."""
    spec = write_document(folder, server_url)
    server = Server.model_validate({"id": "up", "spec": str(spec), **fields})
    config = Config(servers=(server,), base_dir=folder, proxy_environment=proxy_environment or {})
    gateway = Gateway(config, upstream=make_upstream(), workers=workers)
    catalog = gateway.load()
    (status,) = catalog.sources
    assert status.error is None, status.error
    async with (
        gateway,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(create_app(gateway)),
            base_url="http://localhost",
            timeout=30,
        ) as http,
    ):
        yield http


async def call(http: httpx2.AsyncClient, tool: str, **arguments: Any) -> tuple[int, Any]:
    response = await http.post(f"/v1/tools/{tool}/call", json=arguments)
    body = response.json()
    if response.status_code == 200:
        return 200, (body["status"], body["result"])
    return response.status_code, body["error"]


# -- retries, deadlines, outcomes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "status", "after", "expected"),
    [
        ("getFlaky", "503", "1", (200, (200, {"attempt": 2}))),
        ("getFlaky", "429", "0", (200, (200, {"attempt": 2}))),
        ("postFlaky", "503", "0", (200, (503, {"busy": True}))),  # never twice
        ("getFlaky", "503", "60", (200, (503, {"busy": True}))),  # past the call's deadline
    ],
)
async def test_one_retry_when_the_upstream_asks(
    tmp_path: Path, service: str, tool: str, status: str, after: str, expected: Any
) -> None:
    key = f"{tool}-{status}-{after}-{tmp_path.name}"
    async with gateway_for(tmp_path, service, timeout=5) as http:
        found = await call(http, tool, key=key, status=status, after=after)
    assert found == expected
    assert attempts[key] == (2 if expected[1][0] == 200 else 1)


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        (
            "postSlow",
            "no answer from {S} within 1 s; the outcome is unknown: the POST may or may not "
            "have taken effect",
        ),
        ("getSlow", "no answer from {S} within 1 s"),
    ],
)
async def test_a_timed_out_post_has_an_unknown_outcome(
    tmp_path: Path, service: str, tool: str, message: str
) -> None:
    async with gateway_for(tmp_path, service, timeout=1) as http:
        found = await call(http, tool, seconds="3")
    assert found == (
        504,
        {
            "type": "upstream_timeout",
            "message": "upstream 'up': " + message.replace("{S}", service),
        },
    )


async def test_the_concurrency_cap_answers_busy(tmp_path: Path, service: str) -> None:
    async with gateway_for(tmp_path, service, max_concurrency=1) as http:
        first, second = await asyncio.gather(
            http.post("/v1/tools/getSlow/call", json={"seconds": "1"}),
            http.post("/v1/tools/getSlow/call", json={"seconds": "1"}),
        )
        after = await call(http, "getSlow", seconds="0")
    statuses = sorted([first.status_code, second.status_code])
    busy = first if first.status_code == 503 else second
    assert (statuses, busy.headers["retry-after"], busy.json(), after) == (
        [200, 503],
        "1",
        {
            "error": {
                "type": "upstream_busy",
                "message": "upstream 'up': busy: 1 requests to this server are already in flight "
                "(its max_concurrency); try again in 1 s",
            }
        },
        (200, (200, {"slow": True})),
    )


async def test_a_call_whose_caller_went_away_is_stopped_and_frees_its_slot(
    tmp_path: Path, service: str
) -> None:
    """Callers that gave up (their own timeout) would otherwise hold the server's
    `max_concurrency` slot, and its connection, until the server's `timeout`."""
    spec = write_document(tmp_path, service)
    server = Server.model_validate(
        {"id": "up", "spec": str(spec), "max_concurrency": 1, "timeout": 20}
    )
    gateway = Gateway(Config(servers=(server,), base_dir=tmp_path), upstream=make_upstream())
    gateway.load()
    turn = {"tool_calls": [{"id": "c", "function": {"name": "getSlow", "arguments": "{}"}}]}
    with LoopbackServer(create_app(gateway), lifespan="on") as running:
        async with httpx2.AsyncClient(base_url=running.url, timeout=0.5) as impatient:
            for path, body in [
                ("/v1/tools/getSlow/call", {"seconds": "3"}),
                (
                    "/v1/tool_calls",
                    {
                        **turn,
                        "tool_calls": [
                            {
                                **turn["tool_calls"][0],
                                "function": {"name": "getSlow", "arguments": '{"seconds": "3"}'},
                            }
                        ],
                    },
                ),
            ]:
                with pytest.raises(httpx2.TimeoutException):
                    await impatient.post(path, json=body)
                await asyncio.sleep(0.6)  # the gateway looks at the client 0.5 s in
        async with httpx2.AsyncClient(base_url=running.url, timeout=10) as http:
            after = await http.post("/v1/tools/getSlow/call", json={"seconds": "0"})
            metrics = (await http.get("/metrics")).text
    assert (after.status_code, after.json()["result"]) == (200, {"slow": True})
    assert 'toolbridge_tool_calls_total{outcome="cancelled",tool="getSlow"} 2.0' in metrics


async def test_each_worker_has_its_share_of_the_concurrency_cap(
    tmp_path: Path, service: str
) -> None:
    """Served by 3 workers, a cap of 7 lets each have 2 in flight (6 in all, never 7 x 3)."""
    async with gateway_for(tmp_path, service, workers=3, max_concurrency=7) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/tools/getSlow/call", json={"seconds": "1"}) for _ in range(3))
        )
    statuses = sorted(a.status_code for a in answers)
    (busy,) = [a for a in answers if a.status_code == 503]
    assert (statuses, busy.json()["error"]["message"]) == (
        [200, 200, 503],
        "upstream 'up': busy: 2 requests to this server are already in flight (this worker's "
        "share of its max_concurrency, of 3 workers); try again in 1 s",
    )


@pytest.mark.parametrize(
    ("cap", "workers", "share"), [(16, 1, 16), (16, 3, 5), (2, 2, 1), (1, 4, 1), (100, 0, 100)]
)
def test_a_workers_share_of_a_cap(cap: int, workers: int, share: int) -> None:
    assert share_of(cap, workers) == share


async def test_binary_answers_come_back_as_base64(tmp_path: Path, service: str) -> None:
    async with gateway_for(tmp_path, service) as http:
        found = await call(http, "getNul")
    assert found == (
        200,
        (
            200,
            {
                "base64": "AAAA" * 333 + "AA==",
                "size": 1000,
                "content_type": "text/plain; charset=utf-8",
            },
        ),
    )


# -- answers the gateway refuses ----------------------------------------------------------------

MANY_HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    + b"".join(b"X-%d: v\r\n" % i for i in range(200))
    + (b"Content-Length: 2\r\n\r\nok")
)
LONG_HEADER = b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 100_000 + b"\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (MANY_HEADERS, "the answer has more than 128 header fields"),
        (LONG_HEADER, "the answer's headers are longer than 65536 bytes"),
    ],
)
async def test_oversized_headers_are_refused(tmp_path: Path, answer: bytes, reason: str) -> None:
    with RawServer(answering(answer)) as upstream:
        async with gateway_for(tmp_path, upstream.url) as http:
            found = await call(http, "echo")
    assert found == (
        502,
        {
            "type": "upstream_unavailable",
            "message": f"upstream 'up': no valid answer from {upstream.url}: {reason}",
        },
    )


# -- TLS ---------------------------------------------------------------------------------------

TLS_OK = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"tls": 1}\n'
)


def client_named(peer: dict[str, Any]) -> bytes:
    """An answer naming the common name of the client certificate the connection showed."""
    name = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), None)
    body = json.dumps({"client": name}).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    return TestAuthority(tmp_path_factory.mktemp("ca"))


@pytest.mark.parametrize(
    ("certificate", "fields", "expected"),
    [
        ("good", {"ca_file": "CA"}, (200, (200, {"tls": 1}))),
        (
            "good",
            {},
            "cannot connect to {U}: TLS: certificate verify failed: unable to get local issuer "
            "certificate",
        ),
        (
            "other-name",
            {"ca_file": "CA"},
            "cannot connect to {U}: TLS: certificate verify failed: IP address mismatch, "
            "certificate is not valid for '127.0.0.1'.",
        ),
        (
            "expired",
            {"ca_file": "CA"},
            "cannot connect to {U}: TLS: certificate verify failed: certificate has expired",
        ),
        (
            "good",
            {"ca_file": "OTHER-CA"},
            "cannot connect to {U}: TLS: certificate verify failed: unable to get local issuer "
            "certificate",
        ),
    ],
)
async def test_tls_trusts_the_servers_ca_file_and_names_each_failure(
    tmp_path: Path,
    authority: TestAuthority,
    certificate: str,
    fields: dict[str, str],
    expected: Any,
) -> None:
    issued = {
        "good": lambda: authority.issue("server", ips=("127.0.0.1",)),
        "other-name": lambda: authority.issue("elsewhere", names=("other.example",)),
        "expired": lambda: authority.issue("old", ips=("127.0.0.1",), expired=True),
    }[certificate]()
    other = TestAuthority(tmp_path, "another CA")
    files = {"CA": str(authority.ca_file), "OTHER-CA": str(other.ca_file)}
    chosen: dict[str, Any] = {k: files.get(v, v) for k, v in fields.items()}
    with BlockingTlsServer(authority.server_context(issued), lambda peer: TLS_OK) as upstream:
        async with gateway_for(tmp_path, upstream.url, **chosen) as http:
            found = await call(http, "echo")
    if isinstance(expected, str):
        message = "upstream 'up': " + expected.replace("{U}", upstream.url)
        expected = (502, {"type": "upstream_unavailable", "message": message})
    assert found == expected


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("signed", (200, (200, {"client": "gateway-client"}))),
        (
            None,
            "no valid answer from {U}: TLS: the server requires a client certificate (set "
            "client_cert and client_key)",
        ),
        (
            "stranger",
            "no valid answer from {U}: TLS: the server does not trust the client "
            "certificate's issuer",
        ),
    ],
)
async def test_mutual_tls_shows_the_client_certificate(
    tmp_path: Path, authority: TestAuthority, client: str | None, expected: Any
) -> None:
    clients = TestAuthority(tmp_path, "client CA")
    strangers = TestAuthority(tmp_path, "stranger CA")
    fields: dict[str, Any] = {"ca_file": str(authority.ca_file)}
    if client is not None:
        issuer = clients if client == "signed" else strangers
        issued = issuer.issue("gateway-client", client=True)
        fields |= {"client_cert": str(issued.cert), "client_key": str(issued.key)}
    context = authority.server_context(
        authority.issue("server", ips=("127.0.0.1",)), clients=clients
    )
    with BlockingTlsServer(context, client_named) as upstream:
        async with gateway_for(tmp_path, upstream.url, **fields) as http:
            found = await call(http, "echo")
    if isinstance(expected, str):
        message = "upstream 'up': " + expected.replace("{U}", upstream.url)
        expected = (502, {"type": "upstream_unavailable", "message": message})
    assert found == expected


async def test_plain_http_on_an_https_url_says_so(tmp_path: Path, service: str) -> None:
    url = service.replace("http://", "https://")
    async with gateway_for(tmp_path, url) as http:
        found = await call(http, "echo")
    assert found == (
        502,
        {
            "type": "upstream_unavailable",
            "message": f"upstream 'up': cannot connect to {url}: TLS: the server did not answer "
            "in TLS (is it plain HTTP?)",
        },
    )


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"ca_file": "missing.pem"},
            "server 'up': ca_file: cannot read {F}/missing.pem: No such file or directory",
        ),
        (
            {"ca_file": "upstream.json"},
            "server 'up': ca_file: {F}/upstream.json holds no PEM certificate",
        ),
        (
            {"client_cert": "upstream.json"},
            "server 'up': client_cert/client_key: {F}/upstream.json is not a PEM certificate "
            "with its private key",
        ),
    ],
)
def test_bad_certificate_files_keep_only_that_server_down(
    tmp_path: Path, fields: dict[str, str], error: str
) -> None:
    spec = write_document(tmp_path, "https://127.0.0.1:9/")
    servers = (
        Server.model_validate({"id": "up", "spec": str(spec), **fields}),
        Server.model_validate({"id": "fine", "spec": str(spec), "prefix": "fine"}),
    )
    gateway = Gateway(Config(servers=servers, base_dir=tmp_path), upstream=make_upstream())
    up, fine = gateway.load().sources
    assert ((up.error or "").split(" (")[0], fine.error, len(fine.conversion.tools)) == (  # type: ignore[union-attr]
        error.replace("{F}", str(tmp_path)),
        None,
        6,
    )


# -- proxies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "through"),
    [
        ("server", True),  # a server's own proxy carries everything, loopback too
        ("environment", True),
        ("environment-loopback", False),  # never through the environment's proxy
    ],
)
async def test_requests_go_through_the_configured_proxy(
    tmp_path: Path, service: str, how: str, through: bool
) -> None:
    """The upstream by name (`service.test`, which only the proxy knows) or by its loopback
    address; which proxy applies to which URL is `test_transport.py`'s table."""
    port = service.rsplit(":", 1)[1]
    named = f"http://service.test:{port}"
    proxy = Proxy(names={"service.test": "127.0.0.3"})
    with RawServer(proxy) as proxied:
        fields: dict[str, Any] = {"proxy": proxied.url} if how == "server" else {}
        environment = {} if how == "server" else {"http_proxy": proxied.url}
        url = named if how == "environment" else service
        async with gateway_for(tmp_path, url, proxy_environment=environment, **fields) as http:
            found = await call(http, "echo")
    host = url.removeprefix("http://")
    assert found == (200, (200, {"path": "/echo", "host": host}))
    assert proxy.seen == ([f"GET {url}/echo"] if through else [])


async def test_a_proxy_that_cannot_be_reached_is_named_not_the_upstream(
    tmp_path: Path, service: str
) -> None:
    """The upstream is up; its server's proxy is not: the error says which one failed (and
    not the proxy's password)."""
    port = free_port()  # nothing listens there
    proxy = f"http://gw:proxy-secret-77@127.0.0.1:{port}"
    async with gateway_for(tmp_path, service, proxy=proxy) as http:
        found = await call(http, "echo")
    assert found == (
        502,
        {
            "type": "upstream_unavailable",
            "message": f"upstream 'up': cannot connect to the proxy http://127.0.0.1:{port} "
            f"(for {service}): Connection refused",
        },
    )


async def test_https_through_a_proxy_with_credentials(
    tmp_path: Path, authority: TestAuthority
) -> None:
    """CONNECT through a proxy that wants credentials; TLS to the upstream inside the tunnel,
    checked against the server's ca_file; the proxy's password never shows in an error."""
    proxy = Proxy(credentials="gw:proxy-secret-99")
    context = authority.server_context(authority.issue("server", ips=("127.0.0.1",)))
    with (
        BlockingTlsServer(context, lambda peer: TLS_OK) as upstream,
        RawServer(proxy) as proxied,
    ):
        authed = proxied.url.replace("http://", "http://gw:proxy-secret-99@")
        async with gateway_for(
            tmp_path, upstream.url, proxy=authed, ca_file=str(authority.ca_file)
        ) as http:
            found = await call(http, "echo")
        wrong = proxied.url.replace("http://", "http://gw:wrong-secret-11@")
        async with gateway_for(
            tmp_path, upstream.url, proxy=wrong, ca_file=str(authority.ca_file)
        ) as http:
            refused = await call(http, "echo")
    target = upstream.url.removeprefix("https://")
    assert found == (200, (200, {"tls": 1}))
    assert proxy.seen == [f"CONNECT {target}", f"407 CONNECT {target}"]
    assert refused[0] == 502
    assert "wrong-secret-11" not in json.dumps(refused)


async def test_documents_and_tokens_go_through_the_servers_proxy_too(service: str) -> None:
    """Everything sent for a server uses its transport: the document fetch, the OAuth2 token
    request and the call."""
    proxy = Proxy()
    with RawServer(proxy) as proxied:
        server = Server.model_validate(
            {
                "id": "up",
                "spec": f"{service}/openapi.json",
                "proxy": proxied.url,
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": f"{service}/oauth/token",
                    "client_id": "gateway",
                    "client_secret": "client-secret-1",
                },
            }
        )
        gateway = Gateway(Config(servers=(server,), base_dir=Path.cwd()), upstream=make_upstream())
        (status,) = gateway.load().sources
        assert status.error is None, status.error
        async with (
            gateway,
            httpx2.AsyncClient(
                transport=httpx2.ASGITransport(create_app(gateway)), base_url="http://localhost"
            ) as http,
        ):
            found = await call(http, "echo")
    host = service.removeprefix("http://")
    assert found == (200, (200, {"path": "/echo", "host": host}))
    assert proxy.seen == [
        f"POST {service}/oauth/token",  # the token for fetching the document
        f"GET {service}/openapi.json",
        f"POST {service}/oauth/token",  # the calls' own token source
        f"GET {service}/echo",
    ]
