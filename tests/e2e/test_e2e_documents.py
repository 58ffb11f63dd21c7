"""Documents read over real HTTP from a server on 127.0.0.1: refs across URLs, and every limit."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.e2e.conftest import live_server
from tests.raw_servers import RawServer
from toolbridge import cli
from toolbridge.config import Config, Server
from toolbridge.errors import DocumentError
from toolbridge.gateway import Gateway
from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import DocumentStore
from toolbridge.openapi.fetching import http_fetcher
from toolbridge.registry import load_sources
from toolbridge.upstream.clients import make_upstream

pytestmark = pytest.mark.e2e


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SPECS = Path(__file__).resolve().parents[2] / "specs"


async def spec_file(request: Request) -> Response:
    relative = Path(request.path_params["path"])
    path = SPECS / relative
    if ".." in relative.parts or not path.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path)


async def slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return PlainTextResponse("openapi: 3.0.0")


async def huge(request: Request) -> Response:
    return PlainTextResponse("x" * 200_000)


async def drip(request: Request) -> Response:
    """A whole document, one byte every 0.1 s: each read is quick, the whole takes minutes."""

    async def one_byte_at_a_time() -> AsyncIterator[bytes]:
        for byte in (SPECS / "demo.yaml").read_bytes():
            yield bytes([byte])
            await asyncio.sleep(0.1)

    return StreamingResponse(one_byte_at_a_time(), media_type="application/yaml")


async def redirect_here(request: Request) -> Response:
    return RedirectResponse("/specs/demo.yaml")


async def redirect_away(request: Request) -> Response:
    return RedirectResponse("http://localhost:9/evil.yaml")


async def login_page(request: Request) -> Response:
    return Response("<!DOCTYPE html><html><form>Password</form></html>", media_type="text/html")


async def to_login(request: Request) -> Response:
    return RedirectResponse("/login?next=/api/spec.yaml")


async def no_servers(request: Request) -> Response:
    text = (SPECS / "demo.yaml").read_text()
    start, end = text.index("servers:"), text.index("paths:")
    return PlainTextResponse(text[:start] + text[end:])


async def server_relative(request: Request) -> Response:
    text = (SPECS / "demo.yaml").read_text().replace("http://127.0.0.1:8901", "/api/v1")
    return PlainTextResponse(text)


APP = Starlette(
    routes=[
        Route("/specs/{path:path}", spec_file),
        Route("/slow.yaml", slow),
        Route("/drip.yaml", drip),
        Route("/huge.yaml", huge),
        Route("/moved.yaml", redirect_here),
        Route("/away.yaml", redirect_away),
        Route("/relative.yaml", server_relative),
        Route("/login", login_page),
        Route("/api/spec.yaml", to_login),
        Route("/no-servers/openapi.yaml", no_servers),
    ]
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with live_server(APP) as url:
        yield url


def test_multifile_document_over_http_follows_refs_across_urls(base_url: str) -> None:
    """Refs to sibling files, a sub-folder and a parent folder resolve against the URL."""
    store = DocumentStore()
    conversion = convert(store, f"{base_url}/specs/refs-multifile/api/openapi.yaml")
    from_file = convert(DocumentStore(), (SPECS / "refs-multifile/api/openapi.yaml").as_uri())
    assert [t.name for t in conversion.tools] == [t.name for t in from_file.tools]
    assert [t.input_schema for t in conversion.tools] == [t.input_schema for t in from_file.tools]
    assert [[(n.kind, n.message) for n in t.notes] for t in conversion.tools] == [
        [],
        [("read-only-omitted", "read-only properties left out of the request: id")],
        [],
        [],
    ]
    # Only what tools need is fetched: the error responses' file is never read.
    assert sorted(u.removeprefix(base_url) for u in store.loaded) == [
        "/specs/refs-multifile/api/openapi.yaml",
        "/specs/refs-multifile/api/parameters.yaml",
        "/specs/refs-multifile/api/paths/pet-by-id.yaml",
        "/specs/refs-multifile/api/schemas/owner.yaml",
        "/specs/refs-multifile/api/schemas/pet.yaml",
    ]


def test_relative_server_url_resolves_against_the_document_url(base_url: str) -> None:
    conversion = convert(DocumentStore(), f"{base_url}/relative.yaml")
    assert {t.http.base_url for t in conversion.tools} == {f"{base_url}/api/v1"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/specs/nothing.yaml", "fetch answered HTTP 404, expected 200"),
        (
            "/away.yaml",
            "redirected, and not followed: http://localhost:9 is not among this server's "
            "destinations (BASE; no allowed_hosts; add the host to the server's allowed_hosts "
            "to reach it)",
        ),
        ("/huge.yaml", "larger than the 100000 byte limit for documents"),
        ("/slow.yaml", "no complete answer within 0.5 s (the deadline for one document)"),
        (
            "/api/spec.yaml",
            "answered with an HTML page (redirected to BASE/login?next=/api/spec.yaml), not an "
            "OpenAPI document; a login page? A document served behind the API's credentials is "
            "fetched with the server's `auth` and `headers` when it lies on the server's own "
            "origin (a `per_user` or `forward` server has no credential of its own to fetch it "
            "with: give `spec` a copy in a file)",
        ),
    ],
)
def test_fetch_failures_name_the_url_and_what_happened(
    base_url: str, path: str, message: str
) -> None:
    store = DocumentStore(fetch=http_fetcher(timeout=0.5, max_bytes=100_000))
    with pytest.raises(DocumentError) as caught:
        store.get(base_url + path)
    assert str(caught.value) == f"{base_url}{path}: {message.replace('BASE', base_url)}"


async def dripping_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A status line, then a header one byte every 0.1 s: the head never ends."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while True:
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("how", ["body", "headers"])
def test_one_deadline_bounds_a_whole_fetch(base_url: str, how: str) -> None:
    """A server that keeps sending, a byte at a time, is cut at the deadline all the same."""
    fetch = http_fetcher(timeout=1.0)
    started = time.monotonic()
    with pytest.raises(DocumentError) as caught, RawServer(dripping_headers) as headers:
        fetch(f"{base_url}/drip.yaml" if how == "body" else f"{headers.url}/drip.yaml")
    elapsed = time.monotonic() - started
    assert str(caught.value).endswith(
        ": no complete answer within 1 s (the deadline for one document)"
    )
    assert elapsed < 2.0


def test_a_sources_fetches_share_a_budget(base_url: str) -> None:
    fetch = http_fetcher(timeout=5.0, budget=1.0)
    started = time.monotonic()
    with pytest.raises(DocumentError) as first:
        fetch(f"{base_url}/slow.yaml")
    with pytest.raises(DocumentError) as second:
        fetch(f"{base_url}/specs/demo.yaml")
    assert time.monotonic() - started < 2.0
    assert str(first.value).startswith(f"{base_url}/slow.yaml: no complete answer within 0.9")
    assert str(second.value) == (
        f"{base_url}/specs/demo.yaml: not fetched: this source's documents took over 1 s in all"
    )


@pytest.mark.anyio
async def test_a_slow_document_holds_neither_startup_nor_a_reload(base_url: str) -> None:
    """The dripping document's source is down after its deadline; the others serve."""
    servers = (
        Server(id="dripping", spec=f"{base_url}/drip.yaml"),
        Server(id="demo", spec=f"{base_url}/specs/demo.yaml", base_url="http://127.0.0.1:9"),
    )
    gateway = Gateway(
        Config(servers=servers, base_dir=Path.cwd()),
        upstream=make_upstream(),
        store=DocumentStore(fetch_timeout=1.0),
    )
    started = time.monotonic()
    dripping, demo = gateway.load().sources
    loaded = time.monotonic() - started
    async with gateway:
        changes = await gateway.reload()
    reloaded = time.monotonic() - started - loaded
    message = f"{base_url}/drip.yaml: no complete answer within 1 s (the deadline for one document)"
    assert (dripping.error, demo.error, changes.count) == (message, None, 6)
    assert (loaded < 2.5, reloaded < 2.5) == (True, True)


def test_without_servers_calls_go_to_the_documents_own_origin(base_url: str) -> None:
    """OpenAPI 3: no `servers` means `/`, relative to where the document came from."""
    conversion = convert(DocumentStore(), f"{base_url}/no-servers/openapi.yaml")
    assert ({t.http.base_url for t in conversion.tools}, conversion.notes) == ({f"{base_url}/"}, ())


def test_redirect_within_the_origin_is_followed(base_url: str) -> None:
    document = DocumentStore().get(f"{base_url}/moved.yaml")
    assert document.data["info"]["title"] == "Notes (toolbridge demo service)"


def test_cli_reads_a_url(base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`toolbridge tools --spec URL` as a user runs it."""
    assert cli.main(["tools", "--spec", f"{base_url}/specs/demo.yaml"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["listNotes", "GET", "/notes"]
    assert lines[-1] == "6 tools"


TWO_FILES = {
    "/api/openapi.yaml": """\
openapi: 3.0.3
info: {title: two files, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      responses:
        "200":
          description: ok
          content: {application/json: {schema: {$ref: "part.yaml#/A"}}}
""",
    "/api/part.yaml": "A: {type: object, properties: {id: {type: string}}}\n",
}


def test_check_validates_a_url_document_with_what_its_server_fetched(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its `$ref`s resolve against the URL, from the documents the server's own fetch read
    (not fetched again under other rules), each fetched once."""
    fetched: list[str] = []

    async def serve(request: Request) -> Response:
        fetched.append(request.url.path)
        return PlainTextResponse(TWO_FILES[request.url.path])

    app = Starlette(routes=[Route(path, serve) for path in TWO_FILES])
    with live_server(app) as url:
        assert cli.main(["check", "--spec", f"{url}/api/openapi.yaml"]) == 0
    lines = capsys.readouterr().out.splitlines()
    validation = [line for line in lines if line.startswith("  spec validation")]
    assert (validation, fetched) == (["  spec validation: valid"], list(TWO_FILES))


async def guarded_spec(request: Request) -> Response:
    if request.headers.get("authorization") != "Bearer doc-token-1":
        return PlainTextResponse("no", status_code=401)
    return FileResponse(SPECS / "demo.yaml")


GUARDED = Starlette(routes=[Route("/openapi.yaml", guarded_spec)])


@pytest.mark.parametrize(
    ("auth", "same_origin", "expected"),
    [
        ({"type": "bearer", "token": "doc-token-1"}, True, "ok"),
        # no base_url: the calls go to the document's own origin, so its credentials go too
        ({"type": "bearer", "token": "doc-token-1"}, None, "ok"),
        (None, True, "fetch answered HTTP 401, expected 200"),
        # credentials never travel to another origin, even when the document lives there
        (
            {"type": "bearer", "token": "doc-token-1"},
            False,
            "fetch answered HTTP 401, expected 200",
        ),
    ],
)
def test_a_document_behind_the_apis_own_credentials(
    auth: dict[str, str] | None, same_origin: bool | None, expected: str
) -> None:
    with live_server(GUARDED) as url:
        fields: dict[str, object] = {"id": "notes", "spec": f"{url}/openapi.yaml"}
        if same_origin is not None:
            fields["base_url"] = url if same_origin else "http://127.0.0.2:9"
        if auth:
            fields["auth"] = auth
        config = Config(servers=(Server.model_validate(fields),), base_dir=Path.cwd())
        (status,) = load_sources(config, DocumentStore())
    assert (status.error or "ok").removeprefix(f"{url}/openapi.yaml: ") == expected


def rs256_key(kid: str) -> tuple[Any, dict[str, Any]]:
    """A private RSA key and its public JWK, named `kid`."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "use": "sig"}


def test_a_slow_key_server_and_junk_tokens_never_hold_a_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each junk token (an unknown `kid`) fetched the key set on the event loop, 5 s each, with
    every other request waiting: now the set is fetched in a thread, once per cooldown."""
    import jwt
    from starlette.responses import JSONResponse

    from toolbridge.config import Auth, Jwt
    from toolbridge.errors import Unauthenticated
    from toolbridge.identity import Authenticator, RemoteKeys

    monkeypatch.setattr(RemoteKeys, "FIRST_WAIT", 0.2)  # a start waits that long for the keys
    private, public = rs256_key("k1")
    fetched: list[int] = []

    async def slow_jwks(request: Request) -> Response:
        fetched.append(1)
        await asyncio.sleep(1.0)
        return JSONResponse({"keys": [public]})

    payload = {"sub": "dana", "iss": "idp", "exp": int(time.time()) + 60}
    # Anyone can send this: RS256 with a kid no key set has, and no valid signature.
    junk = (
        ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
            for part in ({"alg": "RS256", "kid": "x"}, payload)
        )
        + ".c2lnbmF0dXJl"
    )
    token = jwt.encode(payload, private, algorithm="RS256", headers={"kid": "k1"})
    with live_server(Starlette(routes=[Route("/jwks.json", slow_jwks)])) as url:
        authenticator = Authenticator(Auth(jwt=Jwt(jwks=f"{url}/jwks.json", issuer="idp")))
        refused = []
        for _ in range(20):  # while the first fetch is still under way
            with pytest.raises(Unauthenticated) as caught:
                authenticator.authenticate(f"Bearer {junk}")
            refused.append(str(caught.value))
        remote = authenticator.jwt._remote if authenticator.jwt else None
        assert remote is not None
        assert remote._fetching is not None
        remote._fetching.join(5)
        accepted = authenticator.authenticate(f"Bearer {token}").id
        for _ in range(20):  # the set is fetched; an unknown kid asks again once per cooldown
            with pytest.raises(Unauthenticated):
                authenticator.authenticate(f"Bearer {junk}")
    assert (set(refused), accepted, len(fetched)) == (
        {"JWT signing key 'x' is not among the configured keys"},
        "dana",
        1,
    )


def test_jwt_keys_from_a_jwks_url() -> None:
    """RS256 tokens checked with keys fetched (once, then cached) from a JWKS URL."""
    import time as clock

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from starlette.responses import JSONResponse

    from toolbridge.config import Auth, Jwt
    from toolbridge.identity import Authenticator

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    fetched: list[int] = []

    async def jwks(request: Request) -> Response:
        fetched.append(1)
        return JSONResponse({"keys": [{**public, "kid": "k1", "use": "sig"}]})

    with live_server(Starlette(routes=[Route("/jwks.json", jwks)])) as url:
        authenticator = Authenticator(Auth(jwt=Jwt(jwks=f"{url}/jwks.json", issuer="idp")))
        payload = {"sub": "dana", "iss": "idp", "exp": int(clock.time()) + 60}
        token = jwt.encode(payload, private, algorithm="RS256", headers={"kid": "k1"})
        first = authenticator.authenticate(f"Bearer {token}")
        second = authenticator.authenticate(f"Bearer {token}")
    assert (first.id, second.id, len(fetched)) == ("dana", "dana", 1)
