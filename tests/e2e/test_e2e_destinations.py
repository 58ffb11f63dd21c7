"""Where a server's requests and credentials go, as a table of cases against real servers.

The API and its document live on 127.0.0.1; 127.0.0.2 stands in for another host (the
attacker's, or a partner's). Every request either host receives is recorded, and the server's
bearer token is a canary: wherever a case says the other host must see nothing, it must not see
that token either. Each case loads a real gateway (`serve`'s app on its own loopback port),
calls a tool over HTTP and reads `check`'s notes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from toolbridge.config import Config, Server
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = pytest.mark.e2e

CANARY = "canary-7f3a9c21-never-elsewhere"
"""The server's bearer token: it may reach the API and hosts the operator allowed, nothing else."""


@dataclass
class Host:
    """One loopback host: serves `documents` by path, echoes everything else (saying which host
    it is), and records every request it receives."""

    name: str
    documents: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        with self.lock:
            self.seen.append(
                f"{request.method} {request.url}\n{headers}\n\n{body.decode('latin-1')}"
            )
        path = request.url.path
        if path == "/redirect":
            return RedirectResponse(request.query_params["to"], status_code=302)
        if path in self.documents:
            return PlainTextResponse(self.documents[path], media_type="application/json")
        return JSONResponse({"host": self.name, "path": path})

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])

    def reset(self, documents: dict[str, str] | None = None) -> None:
        with self.lock:
            self.seen.clear()
        self.documents = documents or {}


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[Host, Host, str, str]]:
    api, other = Host("api"), Host("other")
    with (
        LoopbackServer(api.app(), host="127.0.0.1") as api_server,
        LoopbackServer(other.app(), host="127.0.0.2") as other_server,
    ):
        yield api, other, api_server.url, other_server.url


def document(servers: list[str] | None = None, pet_ref: str | None = None) -> str:
    """A document with one GET (`ping`) and, with `pet_ref`, a POST whose body is that `$ref`."""
    paths: dict[str, Any] = {
        "/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}
    }
    if pet_ref is not None:
        paths["/pets"] = {
            "post": {
                "operationId": "addPet",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": pet_ref}}}},
                "responses": {"200": {"description": "ok"}},
            }
        }
    data: dict[str, Any] = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}}
    if servers is not None:
        data["servers"] = [{"url": url} for url in servers]
    data["paths"] = paths
    return json.dumps(data)


PET = json.dumps({"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}})


@dataclass
class Outcome:
    call: Any
    """`{"from": host}` when the call was answered, else the error body's type and message."""
    notes: list[str]
    other_saw: int
    canary_leaked: bool


def run_case(
    hosts: tuple[Host, Host, str, str],
    *,
    spec_path: str = "/openapi.json",
    api_documents: dict[str, str],
    other_documents: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    tool: str = "ping",
    arguments: dict[str, Any] | None = None,
) -> Outcome:
    api, other, api_url, _ = hosts
    api.reset(api_documents)
    other.reset(other_documents)
    fields = {"id": "api", "spec": api_url + spec_path, "auth": {"type": "bearer", "token": CANARY}}
    server = Server.model_validate({**fields, **(extra or {})})
    gateway = Gateway(Config(servers=(server,), base_dir=Path.cwd()), upstream=make_upstream())
    catalog = gateway.load()
    (status,) = catalog.sources
    notes = [n.message for n in status.conversion.notes] if status.conversion else []
    notes += [
        f"{t.name}: {n.message}" for t in catalog for n in t.notes if n.kind == "unresolved-ref"
    ]
    if status.error:
        notes.append(f"DOWN: {status.error}")
    call: Any = None
    if catalog.get(tool) is not None:
        with (
            LoopbackServer(create_app(gateway), lifespan="on") as served,
            httpx2.Client(base_url=served.url, timeout=20) as http,
        ):
            response = http.post(f"/v1/tools/{tool}/call", json=arguments or {})
        body = response.json()
        if response.status_code == 200 and body.get("ok"):
            call = {"from": body["result"]["host"]}
        elif response.status_code == 200:
            call = {"status": body["status"]}
        else:
            call = {"http": response.status_code, **body["error"]}
    with other.lock:
        seen = list(other.seen)
    return Outcome(call, notes, len(seen), any(CANARY in s for s in seen))


def refused(api: str, url: str, allowed: str = "no allowed_hosts") -> str:
    return (
        f"{url} is not among this server's destinations ({api}; {allowed}; add the host to the "
        "server's allowed_hosts to reach it)"
    )


LINK_LOCAL = "a link-local address (cloud metadata services live there); requests never go there"


def ports(hosts: tuple[Host, Host, str, str]) -> tuple[str, str]:
    return hosts[2].rsplit(":", 1)[1], hosts[3].rsplit(":", 1)[1]


# Each case: the servers the document names (with {A} and {O}: the API's and the other host's
# port), extra config, and what the call answers. `None` as servers: the document names none.
SERVER_CASES = [
    # the document's own origin, however it is spelt: allowed
    pytest.param(["http://127.0.0.1:{A}/"], {}, "api", id="own-origin"),
    pytest.param(["http://2130706433:{A}/"], {}, "api", id="own-origin-as-integer"),
    pytest.param(["/"], {}, "api", id="relative"),
    pytest.param(None, {}, "api", id="no-servers-means-slash"),
    # another host the document names: refused, in every spelling
    pytest.param(["http://127.0.0.2:{O}/"], {}, "http://127.0.0.2:{O}", id="other-host"),
    pytest.param(["http://2130706434:{O}/"], {}, "http://127.0.0.2:{O}", id="other-as-integer"),
    pytest.param(["http://0x7f000002:{O}/"], {}, "http://127.0.0.2:{O}", id="other-as-hex"),
    pytest.param(["http://127.2:{O}/"], {}, "http://127.0.0.2:{O}", id="other-short"),
    pytest.param(["http://0177.0.0.2:{O}/"], {}, "http://127.0.0.2:{O}", id="other-octal"),
    pytest.param(
        ["http://[::ffff:127.0.0.2]:{O}/"], {}, "http://127.0.0.2:{O}", id="other-ipv4-mapped"
    ),
    pytest.param(["http://127.0.0.1:{O}/"], {}, "http://127.0.0.1:{O}", id="own-host-other-port"),
    pytest.param(["http://localhost:{A}/"], {}, "http://localhost:{A}", id="a-name-is-not-an-ip"),
    pytest.param(["https://127.0.0.1:{A}/"], {}, "https://127.0.0.1:{A}", id="other-scheme"),
    # allowed_hosts opens exactly what it names
    pytest.param(
        ["http://127.0.0.2:{O}/"], {"allowed_hosts": ["127.0.0.2:{O}"]}, "other", id="allowed"
    ),
    pytest.param(
        ["http://0x7f000002:{O}/"],
        {"allowed_hosts": ["2130706434:{O}"]},
        "other",
        id="allowed-any-spelling",
    ),
    pytest.param(
        ["http://127.0.0.2:{O}/"],
        {"allowed_hosts": ["127.0.0.2"]},
        "http://127.0.0.2:{O}",
        id="allowed-without-port-is-80-and-443",
    ),
    # base_url wins over the document
    pytest.param(
        ["http://127.0.0.2:{O}/"], {"base_url": "http://127.0.0.1:{A}"}, "api", id="base-url-wins"
    ),
]


@pytest.mark.parametrize(("servers", "extra", "expected"), SERVER_CASES)
def test_calls_go_only_to_the_configured_origin_and_allowed_hosts(
    hosts: tuple[Host, Host, str, str],
    servers: list[str] | None,
    extra: dict[str, Any],
    expected: str,
) -> None:
    a, o = ports(hosts)

    def fill(text: str) -> str:
        return text.replace("{A}", a).replace("{O}", o)

    filled = {
        k: [fill(v) for v in vs] if isinstance(vs, list) else fill(vs) for k, vs in extra.items()
    }
    named = [fill(s) for s in servers] if servers is not None else None
    outcome = run_case(hosts, api_documents={"/openapi.json": document(named)}, extra=filled)
    allowed = filled.get("allowed_hosts")
    listed = f"allowed_hosts: {', '.join(allowed)}" if allowed else "no allowed_hosts"
    if expected in ("api", "other"):
        assert (outcome.call, outcome.notes) == ({"from": expected}, [])
        assert outcome.other_saw == (1 if expected == "other" else 0)
        return
    destination = fill(expected)
    assert named  # every refused case names a server
    api_origin = f"http://127.0.0.1:{a}"
    reason = refused(api_origin, destination, listed.replace("2130706434", "127.0.0.2"))
    assert (outcome.call, outcome.notes, outcome.other_saw, outcome.canary_leaked) == (
        {
            "http": 502,
            "type": "destination_refused",
            "message": f"upstream 'api': refused: {reason}",
        },
        [f"the document sends the calls of 1 tool to {named[0]}; they are refused: {reason}"],
        0,
        False,
    )


@pytest.mark.parametrize(
    ("base_url", "allowed", "destination", "reason"),
    [
        ("http://169.254.169.254/", ["169.254.169.254"], "http://169.254.169.254:80", LINK_LOCAL),
        ("http://0xa9fea9fe/", [], "http://169.254.169.254:80", LINK_LOCAL),
        ("http://[::ffff:169.254.169.254]/", [], "http://169.254.169.254:80", LINK_LOCAL),
        (
            "http://metadata.google.internal/",
            ["metadata.google.internal"],
            "http://metadata.google.internal:80",
            "a cloud metadata service's host name; requests never go there",
        ),
        (
            "http://[fd00:ec2::254]/",
            [],
            "http://[fd00:ec2::254]:80",
            "the AWS instance metadata service's address; requests never go there",
        ),
    ],
)
def test_metadata_services_are_never_reached_even_when_configured(
    hosts: tuple[Host, Host, str, str],
    base_url: str,
    allowed: list[str],
    destination: str,
    reason: str,
) -> None:
    outcome = run_case(
        hosts,
        api_documents={"/openapi.json": document()},
        extra={"base_url": base_url, "allowed_hosts": allowed},
    )
    message = f"{destination} is {reason}"
    assert (outcome.call, outcome.notes) == (
        {
            "http": 502,
            "type": "destination_refused",
            "message": f"upstream 'api': refused: {message}",
        },
        [f"the document sends the calls of 1 tool to {base_url}; they are refused: {message}"],
    )


def test_a_document_naming_the_metadata_service_is_refused(
    hosts: tuple[Host, Host, str, str],
) -> None:
    outcome = run_case(
        hosts,
        api_documents={"/openapi.json": document(["http://169.254.169.254/latest/"])},
        extra={"allowed_hosts": ["169.254.169.254"]},
    )
    message = f"http://169.254.169.254:80 is {LINK_LOCAL}"
    assert outcome.call == {
        "http": 502,
        "type": "destination_refused",
        "message": f"upstream 'api': refused: {message}",
    }


@pytest.mark.parametrize(
    ("ref", "extra", "resolved"),
    [
        ("{OTHER}/pet.json#/Pet", {}, False),
        ("http://2130706434:{O}/pet.json#/Pet", {}, False),
        ("{OTHER}/pet.json#/Pet", {"allowed_hosts": ["127.0.0.2:{O}"]}, True),
        ("{API}/pet.json#/Pet", {}, True),
    ],
)
def test_remote_refs_are_fetched_only_from_allowed_hosts(
    hosts: tuple[Host, Host, str, str], ref: str, extra: dict[str, Any], resolved: bool
) -> None:
    _, _, api_url, other_url = hosts
    a, o = ports(hosts)
    ref = ref.replace("{OTHER}", other_url).replace("{API}", api_url).replace("{O}", o)
    extra = {k: [x.replace("{O}", o) for x in v] for k, v in extra.items()}
    outcome = run_case(
        hosts,
        api_documents={"/openapi.json": document(pet_ref=ref), "/pet.json": PET},
        other_documents={"/pet.json": PET},
        extra=extra,
        tool="addPet",
        arguments={"name": "Rex"} if resolved else {},
    )
    if resolved:
        assert (outcome.notes, outcome.call) == ([], {"from": "api"})
        return
    where = ref.split("#")[0].rsplit("/", 1)[0]
    reason = refused(f"http://127.0.0.1:{a}", "http://127.0.0.2:" + o)
    assert where  # the ref names the other host, in some spelling
    assert (outcome.notes, outcome.other_saw, outcome.canary_leaked) == (
        [
            f"addPet: $ref '{ref}' cannot be followed (remote reference not followed: "
            f"{reason}); that part accepts any value"
        ],
        0,
        False,
    )


@pytest.mark.parametrize("allowed", [False, True])
def test_a_document_redirected_to_another_host(
    hosts: tuple[Host, Host, str, str], allowed: bool
) -> None:
    """Followed only to an allowed host, and the API's credentials never go along."""
    _, _, api_url, other_url = hosts
    a, o = ports(hosts)
    extra = {"allowed_hosts": [f"127.0.0.2:{o}"], "base_url": api_url} if allowed else {}
    outcome = run_case(
        hosts,
        spec_path=f"/redirect?to={other_url}/openapi.json",
        api_documents={},
        other_documents={"/openapi.json": document([api_url + "/"])},
        extra=extra,
    )
    assert not outcome.canary_leaked
    if allowed:
        assert (outcome.call, outcome.other_saw) == ({"from": "api"}, 1)
        return
    reason = refused(f"http://127.0.0.1:{a}", f"http://127.0.0.2:{o}")
    assert (outcome.notes, outcome.other_saw) == (
        [
            f"DOWN: {api_url}/redirect?to={other_url}/openapi.json: redirected, and not followed: "
            f"{reason}"
        ],
        0,
    )


def test_an_upstream_redirect_to_another_host_is_not_followed(
    hosts: tuple[Host, Host, str, str],
) -> None:
    other_url = hosts[3]
    doc = json.loads(document())
    doc["paths"]["/redirect"] = {
        "get": {
            "operationId": "away",
            "parameters": [{"name": "to", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}},
        }
    }
    outcome = run_case(
        hosts,
        api_documents={"/openapi.json": json.dumps(doc)},
        tool="away",
        arguments={"to": f"{other_url}/steal"},
    )
    assert (outcome.call, outcome.other_saw, outcome.canary_leaked) == ({"status": 302}, 0, False)
