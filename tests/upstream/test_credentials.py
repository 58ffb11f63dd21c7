"""Upstream credentials: what each auth type adds, where an API key goes, OAuth2 tokens fetched
through the seam (cached, refreshed, fetched once for concurrent calls, failing without secrets),
forwarding only when configured, and secrets kept out of reprs and logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from toolbridge.config import Config, Server
from toolbridge.errors import ConfigError, UpstreamUnavailable
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.tools import HttpOperation, SecurityScheme
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.seam import (
    AuthParts,
    Handler,
    MockUpstream,
    Timeouts,
    UpstreamRequest,
    UpstreamResponse,
)
from toolbridge.upstream.static_credentials import redact

pytestmark = pytest.mark.anyio

TOKEN_URL = "https://auth.example/oauth/token"
NO_UPSTREAM = MockUpstream(lambda request: pytest.fail(f"unexpected request {request}"))

HEADER_KEY = SecurityScheme(type="apiKey", location="header", name="X-API-Key")
QUERY_KEY = SecurityScheme(type="apiKey", location="query", name="api_key")
COOKIE_KEY = SecurityScheme(type="apiKey", location="cookie", name="session_key")
INJECTED_KEY = SecurityScheme(type="apiKey", location="header", name="X-Key: injected")
HOST_KEY = SecurityScheme(type="apiKey", location="header", name="Host")
BEARER = SecurityScheme(type="http", scheme="bearer")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def server(auth: dict[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Server:
    data: dict[str, Any] = {"id": "petstore", "spec": "petstore.yaml"}
    if auth is not None:
        data["auth"] = auth
    if headers is not None:
        data["headers"] = headers
    return Server.model_validate(data)


def op(*security: tuple[str, ...]) -> HttpOperation:
    return HttpOperation(
        server="petstore",
        method="GET",
        path="/pets",
        base_url="https://api.example",
        operation_id="listPets",
        security=security,
    )


def credentials(
    auth: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    schemes: Mapping[str, SecurityScheme] | None = None,
    *,
    operations: tuple[HttpOperation, ...] = (),
    upstream: MockUpstream = NO_UPSTREAM,
    clock: Callable[[], float] | None = None,
) -> Credentials:
    return Credentials(
        server(auth, headers),
        schemes or {},
        upstream=upstream,
        operations=operations,
        timeouts=Timeouts(connect=1.0, total=2.0),
        clock=clock or FakeClock(),
    )


def oauth2(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "oauth2_client_credentials",
        "token_url": TOKEN_URL,
        "client_id": "gateway",
        "client_secret": "s3cr3t-client",
        **overrides,
    }


def answer(status: int = 200, body: Any = None, content_type: str = "application/json") -> Handler:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return lambda request: UpstreamResponse(
        status=status, headers=(("content-type", content_type),), body=raw
    )


# -- every auth type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "headers", "schemes", "expected"),
    [
        pytest.param(None, None, None, AuthParts(), id="nothing"),
        pytest.param(
            {"type": "bearer", "token": "tok-123"},
            None,
            None,
            AuthParts(headers=(("Authorization", "Bearer tok-123"),), secrets=("tok-123",)),
            id="bearer",
        ),
        pytest.param(
            {"type": "basic", "username": "user", "password": "password"},
            None,
            None,
            AuthParts(
                headers=(("Authorization", "Basic dXNlcjpwYXNzd29yZA=="),),
                secrets=("dXNlcjpwYXNzd29yZA==", "password"),
            ),
            id="basic",
        ),
        pytest.param(
            {"type": "basic", "username": "zoë", "password": "pä:ss"},
            None,
            None,
            AuthParts(
                headers=(("Authorization", "Basic em/Dqzpww6Q6c3M="),),
                secrets=("em/Dqzpww6Q6c3M=", "pä:ss"),
            ),
            id="basic-utf8-colon-in-password",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "name": "X-Key", "in": "header"},
            None,
            None,
            AuthParts(headers=(("X-Key", "key-123"),), secrets=("key-123",)),
            id="api_key-header-from-config",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "name": "key", "in": "query"},
            None,
            {"k": HEADER_KEY},
            AuthParts(query=(("key", "key-123"),), secrets=("key-123",)),
            id="api_key-config-beats-document",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "name": "sid", "in": "cookie"},
            None,
            None,
            AuthParts(cookies=(("sid", "key-123"),), secrets=("key-123",)),
            id="api_key-cookie-from-config",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123"},
            None,
            {"bearer": BEARER, "key": QUERY_KEY},
            AuthParts(query=(("api_key", "key-123"),), secrets=("key-123",)),
            id="api_key-from-the-one-scheme",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "name": "x-api-key"},
            None,
            {"h": HEADER_KEY, "q": QUERY_KEY},
            AuthParts(headers=(("x-api-key", "key-123"),), secrets=("key-123",)),
            id="api_key-in-from-the-scheme-of-that-name",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "in": "cookie"},
            None,
            {"h": HEADER_KEY, "c": COOKIE_KEY},
            AuthParts(cookies=(("session_key", "key-123"),), secrets=("key-123",)),
            id="api_key-name-from-the-scheme-in-that-place",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123"},
            None,
            {
                "a": HEADER_KEY,
                "b": SecurityScheme(type="apiKey", location="header", name="x-API-key"),
            },
            AuthParts(headers=(("X-API-Key", "key-123"),), secrets=("key-123",)),
            id="api_key-two-schemes-one-place",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123"},
            {"X-Tenant": "acme"},
            {"key": QUERY_KEY},
            AuthParts(
                headers=(("X-Tenant", "acme"),),
                query=(("api_key", "key-123"),),
                secrets=("key-123",),
            ),
            id="api_key-query-with-static-header",
        ),
        pytest.param(
            {"type": "bearer", "token": "tok-123"},
            {"X-Tenant": "acme", "X-Upstream-Token": "token abcdef"},
            None,
            AuthParts(
                headers=(
                    ("Authorization", "Bearer tok-123"),
                    ("X-Tenant", "acme"),
                    ("X-Upstream-Token", "token abcdef"),
                ),
                secrets=("tok-123", "token abcdef", "abcdef"),
            ),
            id="bearer-with-static-headers",
        ),
        pytest.param(
            oauth2(),
            None,
            None,
            AuthParts(headers=(("Authorization", "Bearer at-1"),), secrets=("at-1",)),
            id="oauth2",
        ),
    ],
)
async def test_parts_per_auth_type(
    auth: dict[str, Any] | None,
    headers: Mapping[str, str] | None,
    schemes: Mapping[str, SecurityScheme] | None,
    expected: AuthParts,
) -> None:
    upstream = MockUpstream(answer(body={"access_token": "at-1", "token_type": "Bearer"}))
    creds = credentials(auth, headers, schemes, upstream=upstream)
    assert await creds.parts(op(), {"Authorization": "Bearer caller-key"}) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("Proxy-Authorization", True),
        ("X-API-Key", True),
        ("X-Auth-Token", True),
        ("X-Client-Secret", True),
        ("Cookie", True),
        ("X-Session", True),
        ("X-Password", True),
        ("Api-Key", True),
        ("X-Tenant", False),
        ("Accept-Language", False),
        ("User-Agent", False),
    ],
)
async def test_static_header_secrets_by_name(name: str, secret: bool) -> None:
    """A static header whose name looks like it carries a credential is masked in logs."""
    parts = await credentials(headers={name: "value-1"}).parts(op())
    assert parts == AuthParts(headers=((name, "value-1"),), secrets=("value-1",) if secret else ())


# -- api_key: one place per operation when the document has several ---------------------------

SEVERAL = {"HeaderKey": HEADER_KEY, "QueryKey": QUERY_KEY, "Bearer": BEARER}


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (
            op(("HeaderKey",)),
            AuthParts(headers=(("X-API-Key", "key-123"),), secrets=("key-123",)),
        ),
        (op(("QueryKey",)), AuthParts(query=(("api_key", "key-123"),), secrets=("key-123",))),
        (
            op(("Bearer",), ("QueryKey", "Bearer"), ("HeaderKey",)),
            AuthParts(query=(("api_key", "key-123"),), secrets=("key-123",)),
        ),
        (op(("Bearer",)), AuthParts()),
        (op(), AuthParts()),
        (None, AuthParts()),
    ],
)
async def test_api_key_place_from_the_operations_security(
    operation: HttpOperation | None, expected: AuthParts
) -> None:
    """With several apiKey schemes, each operation's security names the one it takes."""
    creds = credentials(
        {"type": "api_key", "value": "key-123"},
        schemes=SEVERAL,
        operations=(op(("HeaderKey",)), op()),
    )
    assert await creds.parts(operation) == expected


async def test_a_scheme_no_request_can_carry_takes_no_key_and_the_others_serve() -> None:
    """The document's fault (`X-Key: injected`): it took the whole source down, blaming the
    config's `auth.name`."""
    creds = credentials(
        {"type": "api_key", "value": "key-123"},
        schemes={"bad": INJECTED_KEY, "good": HEADER_KEY},
        operations=(op(("bad",)), op(("good",))),
    )
    assert await creds.parts(op(("bad",))) == AuthParts(
        headers=(("X-API-Key", "key-123"),), secrets=("key-123",)
    )


# -- config errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "headers", "schemes", "operations", "message"),
    [
        pytest.param(
            {"type": "api_key", "value": "key-123"},
            None,
            {"bearer": BEARER},
            (),
            "server 'petstore': auth: api_key 'name' and 'in' are missing and the document "
            "declares no apiKey security scheme to take it from",
            id="api_key-nothing-to-take-from",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "in": "header"},
            None,
            None,
            (),
            "server 'petstore': auth: api_key 'name' is missing and the document declares no "
            "apiKey security scheme to take it from",
            id="api_key-no-name",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123"},
            None,
            {"bad": INJECTED_KEY, "host": HOST_KEY},
            (),
            "server 'petstore': auth: api_key 'name' and 'in' are missing and the document's "
            "apiKey schemes name a place no request can carry a key: bad (header 'X-Key: "
            "injected'), host (header 'Host')",
            id="api_key-only-unusable-schemes",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "name": "token"},
            None,
            {"q": QUERY_KEY, "h": HEADER_KEY},
            (),
            "server 'petstore': auth: api_key 'in' is missing and none of the document's apiKey "
            "schemes fits: h (header 'X-API-Key'), q (query 'api_key')",
            id="api_key-name-matches-no-scheme",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123"},
            None,
            SEVERAL,
            (op(("Bearer",)), op()),
            "server 'petstore': auth: the document declares several apiKey schemes "
            "(HeaderKey (header 'X-API-Key'), QueryKey (query 'api_key')) and no operation's "
            "security names one; set 'name' and 'in' to say where the key goes",
            id="api_key-several-and-no-operation-names-one",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123"},
            None,
            {"k": SecurityScheme(type="apiKey", location="header", name="X API Key")},
            (),
            "server 'petstore': auth: api_key 'name' and 'in' are missing and the document's "
            "apiKey schemes name a place no request can carry a key: k (header 'X API Key')",
            id="api_key-bad-header-name-from-document",
        ),
        pytest.param(
            {"type": "api_key", "value": "a;b=c", "name": "sid", "in": "cookie"},
            None,
            None,
            (),
            "server 'petstore': auth.value contains characters a cookie cannot carry",
            id="api_key-cookie-value",
        ),
        pytest.param(
            {"type": "api_key", "value": "", "name": "k", "in": "query"},
            None,
            None,
            (),
            "server 'petstore': auth.value is empty (is its environment variable set?)",
            id="api_key-empty",
        ),
        pytest.param(
            {"type": "bearer", "token": ""},
            None,
            None,
            (),
            "server 'petstore': auth.token is empty (is its environment variable set?)",
            id="bearer-empty",
        ),
        pytest.param(
            {"type": "bearer", "token": "tok\r\nX-Evil: 1"},
            None,
            None,
            (),
            "server 'petstore': auth.token contains a line break, a control character or one "
            "outside ISO-8859-1, which no HTTP header can carry",
            id="bearer-line-break",
        ),
        pytest.param(
            {"type": "bearer", "token": "tok-日本"},
            None,
            None,
            (),
            "server 'petstore': auth.token contains a line break, a control character or one "
            "outside ISO-8859-1, which no HTTP header can carry",
            id="bearer-beyond-latin-1",
        ),
        pytest.param(
            {"type": "basic", "username": "a:b", "password": "pw"},
            None,
            None,
            (),
            "server 'petstore': auth.username must not contain ':'",
            id="basic-colon-in-username",
        ),
        pytest.param(
            oauth2(token_url="/oauth/token?secret=x"),
            None,
            None,
            (),
            "server 'petstore': auth.token_url: expected an absolute http(s) URL, found "
            "'/oauth/token'",
            id="oauth2-relative-token-url",
        ),
        pytest.param(
            oauth2(token_url="https://id:pw@auth.example/token"),
            None,
            None,
            (),
            "server 'petstore': auth.token_url must not carry credentials; use client_id and "
            "client_secret",
            id="oauth2-credentials-in-token-url",
        ),
        pytest.param(
            {"type": "bearer", "token": "tok-123"},
            {"authorization": "Bearer other"},
            None,
            (),
            "server 'petstore': headers.Authorization conflicts with auth, which sets "
            "Authorization itself; remove one of them",
            id="static-header-conflicts-with-auth",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "name": "X-Key", "in": "header"},
            {"x-key": "other"},
            None,
            (),
            "server 'petstore': headers.X-Key conflicts with auth, which sets X-Key itself; "
            "remove one of them",
            id="static-header-conflicts-with-api-key",
        ),
        pytest.param(
            {"type": "api_key", "value": "key-123", "name": "X-Key\n", "in": "header"},
            None,
            None,
            (),
            "server 'petstore': auth.name: 'X-Key\\n' cannot name a header",
            id="api-key-name-ending-in-a-line-break",
        ),
        pytest.param(
            None,
            {"X-Tenant": "a", "x-tenant": "b"},
            None,
            (),
            "server 'petstore': headers: 'x-tenant' is given twice",
            id="static-header-twice",
        ),
        pytest.param(
            {"type": "forward", "header": "Content-Length"},
            None,
            None,
            (),
            "server 'petstore': auth.header: 'Content-Length' cannot be forwarded (expected a "
            "header name other than the connection's own: Host, Content-Length, "
            "Transfer-Encoding, Connection, Upgrade, ...)",
            id="forward-framing-header",
        ),
    ],
)
def test_config_errors(
    auth: dict[str, Any] | None,
    headers: Mapping[str, str] | None,
    schemes: Mapping[str, SecurityScheme] | None,
    operations: tuple[HttpOperation, ...],
    message: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        credentials(auth, headers, schemes, operations=operations)
    assert str(caught.value) == message


# -- forward -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "caller", "expected"),
    [
        pytest.param(
            {"type": "forward"},
            {"authorization": "Bearer caller-jwt"},
            AuthParts(
                headers=(("Authorization", "Bearer caller-jwt"),),
                secrets=("Bearer caller-jwt", "caller-jwt"),
            ),
            id="default-header-any-case",
        ),
        pytest.param(
            {"type": "forward", "header": "X-User-Token"},
            {"Authorization": "Bearer gateway-key", "X-User-Token": "ut-42"},
            AuthParts(headers=(("X-User-Token", "ut-42"),), secrets=("ut-42",)),
            id="named-header-only",
        ),
        pytest.param({"type": "forward"}, {}, AuthParts(), id="caller-sent-none"),
        pytest.param({"type": "forward"}, {"Authorization": ""}, AuthParts(), id="empty"),
        pytest.param(
            {"type": "forward"}, {"Authorization": "a\r\nb: c"}, AuthParts(), id="unsendable"
        ),
        pytest.param(
            None, {"Authorization": "Bearer gateway-key"}, AuthParts(), id="no-auth-never-forwards"
        ),
        pytest.param(
            {"type": "bearer", "token": "tok-123"},
            {"Authorization": "Bearer gateway-key"},
            AuthParts(headers=(("Authorization", "Bearer tok-123"),), secrets=("tok-123",)),
            id="bearer-never-forwards",
        ),
    ],
)
async def test_forward(
    auth: dict[str, Any] | None, caller: dict[str, str], expected: AuthParts
) -> None:
    """The caller's header goes on only with `type: forward`, and only the one configured."""
    assert await credentials(auth).parts(op(), caller) == expected


async def test_forward_keeps_static_headers() -> None:
    creds = credentials({"type": "forward"}, {"X-Tenant": "acme"})
    assert await creds.parts(op(), {"Authorization": "Bearer jwt-1"}) == AuthParts(
        headers=(("Authorization", "Bearer jwt-1"), ("X-Tenant", "acme")),
        secrets=("Bearer jwt-1", "jwt-1"),
    )
    assert await creds.parts(op(), {}) == AuthParts(headers=(("X-Tenant", "acme"),))


# -- oauth2 client credentials -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "basic", "body"),
    [
        pytest.param(
            {},
            "Z2F0ZXdheTpzM2NyM3QtY2xpZW50",  # gateway:s3cr3t-client
            b"grant_type=client_credentials",
            id="no-scopes",
        ),
        pytest.param(
            {"scopes": ["pets:read", "pets:write"]},
            "Z2F0ZXdheTpzM2NyM3QtY2xpZW50",
            b"grant_type=client_credentials&scope=pets%3Aread+pets%3Awrite",
            id="scopes-space-joined",
        ),
        pytest.param(
            {"client_id": "app:1", "client_secret": "a b+c/d"},
            "YXBwJTNBMTphK2IlMkJjJTJGZA==",  # app%3A1:a+b%2Bc%2Fd (RFC 6749 2.3.1)
            b"grant_type=client_credentials",
            id="client-credentials-form-encoded",
        ),
    ],
)
async def test_token_request(overrides: dict[str, Any], basic: str, body: bytes) -> None:
    """The client credentials grant: a form POST with the client authenticated by Basic."""
    upstream = MockUpstream(answer(body={"access_token": "at-1"}))
    await credentials(oauth2(**overrides), upstream=upstream).parts(op())
    assert upstream.requests == [
        UpstreamRequest(
            server="petstore",
            pool="token:petstore",  # never a call's connection
            method="POST",
            url=TOKEN_URL,
            headers=(
                ("Authorization", f"Basic {basic}"),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ),
            body=body,
        )
    ]


def token_server(*lifetimes: Any) -> MockUpstream:
    """A token endpoint handing out at-1, at-2, ... with the given expires_in (None: absent)."""
    count = 0

    def handle(request: UpstreamRequest) -> UpstreamResponse:
        nonlocal count
        count += 1
        body: dict[str, Any] = {"access_token": f"at-{count}", "token_type": "bearer"}
        if lifetimes[count - 1] is not None:
            body["expires_in"] = lifetimes[count - 1]
        return UpstreamResponse(status=200, body=orjson.dumps(body))

    return MockUpstream(handle)


@pytest.mark.parametrize(
    ("expires_in", "fresh_until"),
    [
        pytest.param(None, 3540.0, id="absent-3600-minus-margin"),
        pytest.param(7200, 7140.0, id="margin-60s"),
        pytest.param("300", 240.0, id="numeric-string"),
        pytest.param(30, 15.0, id="short-lived-margin-is-half"),
        pytest.param("soon", 3540.0, id="garbage-means-absent"),
        pytest.param(True, 3540.0, id="boolean-means-absent"),
    ],
)
async def test_token_cached_until_expiry_then_refreshed(
    expires_in: Any, fresh_until: float
) -> None:
    clock = FakeClock()
    start = clock.now
    upstream = token_server(expires_in, expires_in)
    creds = credentials(oauth2(), upstream=upstream, clock=clock)
    first = AuthParts(headers=(("Authorization", "Bearer at-1"),), secrets=("at-1",))
    second = AuthParts(headers=(("Authorization", "Bearer at-2"),), secrets=("at-2",))
    seen = [await creds.parts(op())]
    clock.now = start + fresh_until - 0.001
    seen.append(await creds.parts(op()))
    clock.now = start + fresh_until
    seen.append(await creds.parts(op()))
    seen.append(await creds.parts(op()))
    assert (seen, len(upstream.requests)) == ([first, first, second, second], 2)


async def test_discard_forgets_only_that_token() -> None:
    """After a 401 the invoker discards the token; a stale discard keeps a newer token."""
    upstream = token_server(None, None, None)
    creds = credentials(oauth2(), upstream=upstream)
    await creds.parts(op())
    creds.discard("at-1")
    second = await creds.parts(op())
    creds.discard("at-1")
    assert (await creds.parts(op()), second, len(upstream.requests)) == (
        AuthParts(headers=(("Authorization", "Bearer at-2"),), secrets=("at-2",)),
        AuthParts(headers=(("Authorization", "Bearer at-2"),), secrets=("at-2",)),
        2,
    )


async def test_concurrent_calls_share_one_fetch() -> None:
    release = asyncio.Event()

    async def handle(request: UpstreamRequest) -> UpstreamResponse:
        await release.wait()
        return UpstreamResponse(status=200, body=b'{"access_token": "at-1", "expires_in": 60}')

    upstream = MockUpstream(handle)
    creds = credentials(oauth2(), upstream=upstream)

    async def open_gate() -> None:
        await asyncio.sleep(0.01)
        release.set()

    *results, _ = await asyncio.gather(*(creds.parts(op()) for _ in range(20)), open_gate())
    expected = AuthParts(headers=(("Authorization", "Bearer at-1"),), secrets=("at-1",))
    assert (results, len(upstream.requests)) == ([expected] * 20, 1)


async def test_concurrent_calls_share_one_failure_then_retry() -> None:
    """Calls waiting on a fetch that fails get its error; the next call tries again."""
    release = asyncio.Event()

    async def handle(request: UpstreamRequest) -> UpstreamResponse:
        await release.wait()
        return UpstreamResponse(status=503, body=b"down")

    upstream = MockUpstream(handle)
    creds = credentials(oauth2(), upstream=upstream)

    async def open_gate() -> None:
        await asyncio.sleep(0.01)
        release.set()

    *results, _ = await asyncio.gather(
        *(creds.parts(op()) for _ in range(5)), open_gate(), return_exceptions=True
    )
    message = (
        "upstream 'petstore': token endpoint https://auth.example/oauth/token answered HTTP 503"
    )
    assert [str(r) for r in results] == [message] * 5
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert len(upstream.requests) == 1
    with pytest.raises(UpstreamUnavailable):
        await creds.parts(op())
    assert len(upstream.requests) == 2


async def test_cancelled_fetch_lets_the_waiters_fetch() -> None:
    """A caller cancelled mid-fetch (client gone) leaves no failure behind for the others."""
    calls = 0

    async def handle(request: UpstreamRequest) -> UpstreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)
        return UpstreamResponse(status=200, body=b'{"access_token": "at-2"}')

    creds = credentials(oauth2(), upstream=MockUpstream(handle))
    first = asyncio.ensure_future(creds.parts(op()))
    await asyncio.sleep(0.01)
    waiter = asyncio.ensure_future(creds.parts(op()))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await waiter == AuthParts(headers=(("Authorization", "Bearer at-2"),), secrets=("at-2",))
    assert first.cancelled()


SECRET = "s3cr3t-client"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        pytest.param(
            answer(401, {"error": "invalid_client", "error_description": "Bad client"}),
            "token endpoint https://auth.example/oauth/token answered HTTP 401 "
            "(invalid_client: Bad client)",
            id="oauth-error",
        ),
        pytest.param(
            answer(400, {"error": "invalid_scope"}),
            "token endpoint https://auth.example/oauth/token answered HTTP 400 (invalid_scope)",
            id="oauth-error-no-description",
        ),
        pytest.param(
            answer(
                401,
                {"error": "invalid_client", "error_description": f"secret {SECRET} is wrong"},
            ),
            "token endpoint https://auth.example/oauth/token answered HTTP 401 "
            "(invalid_client: secret *** is wrong)",
            id="echoed-secret-masked",
        ),
        pytest.param(
            answer(500, b"<html>oops</html>", "text/html"),
            "token endpoint https://auth.example/oauth/token answered HTTP 500",
            id="server-error",
        ),
        pytest.param(
            answer(200, b"<html>login</html>", "text/html"),
            "token endpoint https://auth.example/oauth/token answered HTTP 200 with a body that "
            "is not a JSON object (text/html)",
            id="not-json",
        ),
        pytest.param(
            answer(200, ["at-1"]),
            "token endpoint https://auth.example/oauth/token answered HTTP 200 with a body that "
            "is not a JSON object (application/json)",
            id="json-not-an-object",
        ),
        pytest.param(
            answer(200, {"access_token": "x" * 70_000}),
            "token endpoint https://auth.example/oauth/token answered HTTP 200 with a body that "
            "is not a JSON object (application/json, cut at the size limit)",
            id="too-large",
        ),
        pytest.param(
            answer(200, {"token_type": "bearer", "expires_in": 60}),
            "token endpoint https://auth.example/oauth/token answered HTTP 200 without "
            "access_token",
            id="no-access-token",
        ),
        pytest.param(
            answer(200, {"access_token": ""}),
            "token endpoint https://auth.example/oauth/token answered HTTP 200 without "
            "access_token",
            id="empty-access-token",
        ),
        pytest.param(
            answer(200, {"access_token": "at\r\nX-Evil: 1"}),
            "token endpoint https://auth.example/oauth/token answered with an access_token no "
            "header can carry",
            id="unsendable-access-token",
        ),
    ],
)
async def test_token_endpoint_failures(handler: Handler, message: str) -> None:
    """Each failure names the token URL and the status; none shows a secret."""
    creds = credentials(oauth2(token_url=TOKEN_URL + "?tenant=t1"), upstream=MockUpstream(handler))
    with pytest.raises(UpstreamUnavailable) as caught:
        await creds.parts(op())
    assert (str(caught.value), caught.value.server, caught.value.timeout) == (
        f"upstream 'petstore': {message}",
        "petstore",
        False,
    )
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("timeout", [False, True])
async def test_token_endpoint_unreachable(timeout: bool) -> None:
    def handle(request: UpstreamRequest) -> UpstreamResponse:
        what = "no answer within 2 s" if timeout else "connection refused"
        raise UpstreamUnavailable("petstore", what, timeout=timeout)

    creds = credentials(oauth2(), upstream=MockUpstream(handle))
    with pytest.raises(UpstreamUnavailable) as caught:
        await creds.parts(op())
    what = "no answer within 2 s" if timeout else "connection refused"
    assert (str(caught.value), caught.value.timeout) == (
        f"upstream 'petstore': token endpoint https://auth.example/oauth/token: {what}",
        timeout,
    )


# -- secrets: repr, the secrets property, redact -----------------------------------------------


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, "<Credentials server='petstore' auth='none' headers=[X-Api-Key]>"),
        (
            {"type": "bearer", "token": "tok-123"},
            "<Credentials server='petstore' auth='bearer' headers=[Authorization, X-Api-Key]>",
        ),
        (
            {"type": "basic", "username": "user", "password": "password"},
            "<Credentials server='petstore' auth='basic' headers=[Authorization, X-Api-Key]>",
        ),
        (
            {"type": "api_key", "value": "key-123", "name": "k", "in": "query"},
            "<Credentials server='petstore' auth='api_key' headers=[X-Api-Key]>",
        ),
        (
            oauth2(),
            "<Credentials server='petstore' auth='oauth2_client_credentials' headers=[X-Api-Key]>",
        ),
        ({"type": "forward"}, "<Credentials server='petstore' auth='forward' headers=[X-Api-Key]>"),
    ],
)
async def test_repr_shows_no_secret(auth: dict[str, Any] | None, expected: str) -> None:
    upstream = MockUpstream(answer(body={"access_token": "at-1"}))
    creds = credentials(auth, {"X-Api-Key": "static-secret"}, upstream=upstream)
    await creds.parts(op(), {"Authorization": "Bearer caller"})
    assert repr(creds) == expected


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, ("Bearer static", "static")),
        ({"type": "bearer", "token": "tok-123"}, ("tok-123", "Bearer static", "static")),
        (
            {"type": "basic", "username": "user", "password": "password"},
            ("dXNlcjpwYXNzd29yZA==", "password", "Bearer static", "static"),
        ),
        (
            {"type": "api_key", "value": "key-123", "name": "k", "in": "query"},
            ("key-123", "Bearer static", "static"),
        ),
        (
            oauth2(),
            (
                "Bearer static",
                "static",
                "s3cr3t-client",
                "Z2F0ZXdheTpzM2NyM3QtY2xpZW50",
                "at-1",
            ),
        ),
    ],
)
async def test_secrets_property(auth: dict[str, Any] | None, expected: tuple[str, ...]) -> None:
    """Everything secret the server's config holds, for masking errors beyond one request."""
    upstream = MockUpstream(answer(body={"access_token": "at-1"}))
    creds = credentials(auth, {"X-Vendor-Auth": "Bearer static"}, upstream=upstream)
    await creds.parts(op())
    assert creds.secrets == expected


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("Authorization: Bearer tok-123", ["tok-123"], "Authorization: Bearer ***"),
        ("curl 'https://x/pets?api_key=a%2Fb%20c'", ["a/b c"], "curl 'https://x/pets?api_key=***'"),
        ("https://x/pets?api_key=a%2Fb+c", ["a/b c"], "https://x/pets?api_key=***"),
        ("Basic dXNlcjpwYXNz and pass", ["dXNlcjpwYXNz", "pass"], "Basic *** and ***"),
        ("Bearer abcdef", ["Bearer abcdef", "abcdef"], "***"),
        ("key=abc, id=a", ["abc", "a", ""], "key=abc, id=a"),
        ("nothing to hide", [], "nothing to hide"),
        ("a.b*c a+b*c", ["a.b*c"], "*** a+b*c"),
    ],
)
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected


SUPPLIED_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "chat", "version": "1"},
    "paths": {
        "/chat.postMessage": {
            "post": {
                "operationId": "postMessage",
                "parameters": [
                    {
                        "name": "token",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "key", "in": "query", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "channel",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


@pytest.mark.parametrize(
    ("settings", "arguments", "sent_query", "sent_token"),
    [
        # Nothing configured there: both are arguments, sent as given.
        ({}, ["channel", "key", "token"], {"channel": "C1", "key": "k-arg"}, "t-arg"),
        # `headers` sets the `token` header (any case): not an argument; the config's is sent.
        (
            {"headers": {"Token": "canary-header-0123"}},
            ["channel", "key"],
            {"channel": "C1", "key": "k-arg"},
            "canary-header-0123",
        ),
        # An api_key the config places itself, where the document has a parameter only.
        (
            {"auth": {"type": "api_key", "value": "canary-key-0123", "name": "key", "in": "query"}},
            ["channel", "token"],
            {"channel": "C1", "key": "canary-key-0123"},
            "t-arg",
        ),
        # A forwarded header.
        ({"auth": {"type": "forward", "header": "TOKEN"}}, ["channel", "key"], None, None),
        # Bearer goes in Authorization, which is never an argument: both stay.
        (
            {"auth": {"type": "bearer", "token": "canary-bearer-0123"}},
            ["channel", "key", "token"],
            {"channel": "C1", "key": "k-arg"},
            "t-arg",
        ),
    ],
)
async def test_a_parameter_the_servers_config_sets_is_no_argument(
    tmp_path: Path,
    settings: dict[str, Any],
    arguments: list[str],
    sent_query: dict[str, str] | None,
    sent_token: str | None,
) -> None:
    """A model is not asked for a value (a token, often) that the config's replaces: Slack's
    document has a required `token` header on 123 operations."""
    (tmp_path / "chat.json").write_text(orjson.dumps(SUPPLIED_DOCUMENT).decode())
    sent: list[UpstreamRequest] = []

    def upstream(request: UpstreamRequest) -> UpstreamResponse:
        sent.append(request)
        return UpstreamResponse(
            status=200, headers=(("content-type", "application/json"),), body=b"{}"
        )

    entry = {"id": "chat", "spec": "chat.json", "base_url": "http://chat.test", **settings}
    config = Config.model_validate({"servers": [entry], "base_dir": tmp_path})
    async with Gateway(config, upstream=MockUpstream(upstream)) as gateway:
        tool = gateway.catalog.tools["postMessage"]
        given = {"channel": "C1", "key": "k-arg", "token": "t-arg"}
        args = {name: value for name, value in given.items() if name in arguments}
        if sent_query is not None:
            result = await gateway.call(Principal(id="ops", admin=True), "postMessage", args)
            assert result.ok
    notes = [n.message for n in tool.notes if n.kind == "configured-parameter"]
    assert (sorted(tool.input_schema["properties"]), sorted(tool.input_schema["required"])) == (
        arguments,
        arguments,
    )
    assert len(notes) == 3 - len(arguments)
    if sent_query is not None:
        (request,) = sent
        assert dict(parse_qsl(urlsplit(request.url).query)) == sent_query
        assert [v for k, v in request.headers if k.lower() == "token"] == [sent_token]
