"""OAuth2 client credentials over real HTTP: a token server on 127.0.0.1 that checks the client's
Basic authentication and the form it posts, reached through the real upstream clients, and an
API on the same server that accepts only the tokens it issued.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.e2e.conftest import live_server
from toolbridge.config import Config, Server
from toolbridge.errors import UpstreamUnavailable
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.tools import HttpOperation
from toolbridge.upstream.clients import UpstreamKind, make_upstream
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.seam import Timeouts, Upstream, UpstreamRequest

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CLIENT_ID = "gateway:1"
CLIENT_SECRET = "s3cr3t/with+odd chars"
OPS = Principal(id="ops", admin=True)
OP = HttpOperation(server="pets", method="GET", path="/pets", base_url=None, operation_id="list")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TokenServer:
    """Issues tok-1, tok-2, ... to the one client it knows, and records every token request."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.forms: list[dict[str, list[str]]] = []

    async def token(self, request: Request) -> Response:
        scheme, _, blob = request.headers.get("authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(blob or "").decode().partition(":")
        # RFC 6749 2.3.1: both halves arrive form-urlencoded.
        if scheme != "Basic" or (unquote_plus(client_id), unquote_plus(secret)) != (
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "client authentication failed"},
                status_code=401,
            )
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        form = parse_qs((await request.body()).decode(), strict_parsing=True)
        self.forms.append(form)
        if form.get("grant_type") != ["client_credentials"]:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if request.query_params.get("slow"):
            await asyncio.sleep(2)
        self.issued.append(f"tok-{len(self.issued) + 1}")
        return JSONResponse(
            {"access_token": self.issued[-1], "token_type": "Bearer", "expires_in": 3600}
        )

    async def pets(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.issued:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse([{"id": 1, "name": "Rex"}])


@pytest.fixture(scope="module")
def token_server() -> Iterator[tuple[str, TokenServer]]:
    state = TokenServer()
    app = Starlette(
        routes=[
            Route("/oauth/token", state.token, methods=["POST"]),
            Route("/pets", state.pets),
        ]
    )
    with live_server(app) as url:
        yield url, state


@pytest.fixture(params=["aiohttp", "httpx"])
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    kind: UpstreamKind = request.param
    client = make_upstream(kind)
    try:
        yield client
    finally:
        await client.aclose()


def credentials(
    token_url: str, upstream: Upstream, secret: str = CLIENT_SECRET, **auth: Any
) -> Credentials:
    server = Server.model_validate(
        {
            "id": "pets",
            "spec": "pets.yaml",
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": token_url,
                "client_id": CLIENT_ID,
                "client_secret": secret,
                **auth,
            },
        }
    )
    return Credentials(server, {}, upstream=upstream, timeouts=Timeouts(connect=2, total=1))


async def test_token_fetched_once_and_accepted_by_the_api(
    token_server: tuple[str, TokenServer], upstream: Upstream
) -> None:
    """Twenty concurrent calls share one token request; the API accepts the token."""
    url, state = token_server
    before = len(state.forms)
    creds = credentials(f"{url}/oauth/token", upstream, scopes=["pets:read", "pets:write"])
    parts = await asyncio.gather(*(creds.parts(OP) for _ in range(20)))
    token = state.issued[-1]
    response = await upstream.send(
        UpstreamRequest(server="pets", method="GET", url=f"{url}/pets", headers=parts[0].headers),
        timeouts=Timeouts(),
        max_bytes=1000,
    )
    assert (
        {p.headers for p in parts},
        state.forms[before:],
        response.status,
        response.body,
    ) == (
        {(("Authorization", f"Bearer {token}"),)},
        [{"grant_type": ["client_credentials"], "scope": ["pets:read pets:write"]}],
        200,
        b'[{"id":1,"name":"Rex"}]',
    )


async def test_wrong_client_secret(
    token_server: tuple[str, TokenServer], upstream: Upstream
) -> None:
    url, _ = token_server
    creds = credentials(f"{url}/oauth/token", upstream, secret="not-the-secret")
    with pytest.raises(UpstreamUnavailable) as caught:
        await creds.parts(OP)
    assert (str(caught.value), caught.value.timeout) == (
        f"upstream 'pets': token endpoint {url}/oauth/token answered HTTP 401 "
        "(invalid_client: client authentication failed)",
        False,
    )


async def test_token_endpoint_too_slow(
    token_server: tuple[str, TokenServer], upstream: Upstream
) -> None:
    url, _ = token_server
    creds = credentials(f"{url}/oauth/token?slow=1", upstream)
    with pytest.raises(UpstreamUnavailable) as caught:
        await creds.parts(OP)
    port = url.rsplit(":", 1)[1]
    assert (str(caught.value), caught.value.timeout) == (
        f"upstream 'pets': token endpoint {url}/oauth/token: no answer from "
        f"http://127.0.0.1:{port} within 1 s",
        True,
    )


async def test_token_endpoint_down(upstream: Upstream) -> None:
    with socket.socket() as sock:  # a port nothing listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    creds = credentials(f"http://127.0.0.1:{port}/oauth/token", upstream)
    with pytest.raises(UpstreamUnavailable) as caught:
        await creds.parts(OP)
    assert (str(caught.value), caught.value.timeout) == (
        f"upstream 'pets': token endpoint http://127.0.0.1:{port}/oauth/token: cannot connect "
        f"to http://127.0.0.1:{port}: Connection refused",
        False,
    )


# -- through the gateway: one deadline, and a POST never sent twice ----------------------------

THINGS = """\
openapi: 3.0.3
info: {title: Things, version: "1"}
servers: [{url: "BASE"}]
paths:
  /things:
    get: {operationId: listThings, responses: {"200": {description: ok}}}
    post: {operationId: addThing, responses: {"200": {description: ok}}}
"""


class Refusing:
    """An API that refuses every token (401), after `delay` seconds, and counts the calls; its
    token endpoint answers after `token_delay` seconds."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.tokens = 0
        self.delay = 0.0
        self.token_delay = 0.0

    async def token(self, request: Request) -> Response:
        await asyncio.sleep(self.token_delay)
        self.tokens += 1
        return JSONResponse({"access_token": f"tok-{self.tokens}", "expires_in": 3600})

    async def things(self, request: Request) -> Response:
        self.calls.append(request.method)
        await asyncio.sleep(self.delay)
        return JSONResponse({"error": "unauthorized"}, status_code=401)


@pytest.fixture(scope="module")
def refusing() -> Iterator[tuple[str, Refusing]]:
    state = Refusing()
    app = Starlette(
        routes=[
            Route("/oauth/token", state.token, methods=["POST"]),
            Route("/things", state.things, methods=["GET", "POST"]),
        ]
    )
    with live_server(app) as url:
        yield url, state


@contextlib.asynccontextmanager
async def oauth_gateway(tmp_path: Path, url: str, timeout: float) -> AsyncIterator[Gateway]:
    (tmp_path / "things.yaml").write_text(THINGS.replace("BASE", url))
    server = Server.model_validate(
        {
            "id": "things",
            "spec": "things.yaml",
            "timeout": timeout,
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": f"{url}/oauth/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        }
    )
    config = Config(servers=(server,), base_dir=tmp_path)
    async with Gateway(config, upstream=make_upstream()) as gateway:
        yield gateway


async def test_a_refused_token_is_fetched_again_and_only_a_get_sent_again(
    tmp_path: Path, refusing: tuple[str, Refusing]
) -> None:
    """A POST the API refused with 401 may have acted (behind some proxies): it is not sent
    again, but the next call has a new token."""
    url, state = refusing
    state.calls.clear()
    state.delay = state.token_delay = 0.0
    async with oauth_gateway(tmp_path, url, timeout=5) as gateway:
        posted = await gateway.call(OPS, "addThing", {})
        tokens_after_post = state.tokens
        got = await gateway.call(OPS, "listThings", {})
    assert (posted.status, got.status, state.calls) == (401, 401, ["POST", "GET", "GET"])
    assert state.tokens - tokens_after_post == 2  # the GET's first token, and its second


async def test_the_servers_timeout_bounds_the_call_with_its_token_fetch_and_retry(
    tmp_path: Path, refusing: tuple[str, Refusing]
) -> None:
    url, state = refusing
    state.calls.clear()
    state.delay, state.token_delay = 0.6, 0.6
    async with oauth_gateway(tmp_path, url, timeout=1.5) as gateway:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as caught:
            await gateway.call(OPS, "listThings", {})
        took = time.monotonic() - started
    state.delay = state.token_delay = 0.0
    # token 0.6 s, a 401 at 1.2 s, a new token would end at 1.8 s: past the call's 1.5 s.
    assert (caught.value.timeout, state.calls, took < 1.7) == (True, ["GET"], True)
    assert str(caught.value) == (
        "upstream 'things': no access token from the token endpoint within the call's 1.5 s"
    )
