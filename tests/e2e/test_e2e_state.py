"""The state store through a real `toolbridge serve` (embedded SQLite beside the config): the
admin API registering servers and tools, `/v1/me` valves and credentials, restarts, export.

Canary secrets go in through the API; they must come back out nowhere: not in listings, errors,
logs, the export, nor in clear in the database file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
import yaml
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.e2e.conftest import live_server
from tests.e2e.serving import KEYS, Served, bearer
from tests.fake_upstream import create_upstream, digest
from toolbridge.redaction import MARKER

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FILTER_FILES = ROOT / "tests" / "fixtures" / "filters"
CANARY_TOKEN = "canary-token-7f3a9c1e5b"
CANARY_VALVE = "canary-valve-2d8e4f6a0c"
CANARY_OWN = "canary-own-9b1c3e5d7f"

CONFIG: dict[str, Any] = {
    "watch": False,
    "auth": {
        "api_keys": [
            {"user": "alice", "key": KEYS["alice"], "groups": ["support"]},
            {"user": "bob", "key": KEYS["bob"], "groups": ["support"]},
            {"user": "ops", "key": KEYS["ops"], "admin": True},
        ]
    },
    "servers": [
        {"id": "notes", "spec": "specs/demo.yaml", "access": {"groups": ["support"]}},
    ],
    "tools": [
        {"id": "weather", "path": "tools/weather.py", "access": {"groups": ["support"]}},
    ],
}

SHOUT = '''"""
title: Shout
version: 1.0.0
"""

from pydantic import BaseModel


class Tools:
    class Valves(BaseModel):
        api_key: str = ""
        suffix: str = "!"

    def __init__(self) -> None:
        self.valves = self.Valves()

    def shout(self, text: str) -> str:
        """Say it loudly."""
        return text.upper() + self.valves.suffix + (" (keyed)" if self.valves.api_key else "")
'''


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with live_server(create_upstream()) as url:
        yield url


@pytest.fixture
def env() -> dict[str, str]:
    return {"TOOLBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}


@pytest.fixture
def folder(tmp_path: Path, upstream: str) -> Path:
    (tmp_path / "specs").mkdir()
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "specs" / "demo.yaml", tmp_path / "specs" / "demo.yaml")
    shutil.copy(
        ROOT / "tests" / "fixtures" / "tools" / "weather.py", tmp_path / "tools" / "weather.py"
    )
    config = {**CONFIG, "servers": [{**CONFIG["servers"][0], "base_url": upstream}]}
    (tmp_path / "toolbridge.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


@pytest.fixture
def served(folder: Path, env: dict[str, str]) -> Iterator[Served]:
    server = Served(folder, env=env)
    yield server
    server.stop()


def post(served: Served, path: str, body: Any, user: str = "ops") -> httpx2.Response:
    return httpx2.post(served.url + path, json=body, headers=bearer(user), timeout=60)


def put(served: Served, path: str, body: Any, user: str = "ops") -> httpx2.Response:
    return httpx2.put(served.url + path, json=body, headers=bearer(user), timeout=60)


def get(served: Served, path: str, user: str = "ops") -> httpx2.Response:
    return httpx2.get(served.url + path, headers=bearer(user), timeout=60)


def uploaded_server(upstream: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "more",
        "document": (ROOT / "specs" / "demo.yaml").read_text(),
        "base_url": upstream,
        "prefix": "more",
        "include": {"operations": ["getStatus"]},
        "auth": {"type": "bearer", "token": CANARY_TOKEN},
        "access": {"groups": ["support"]},
        **extra,
    }


def test_a_server_registered_through_the_api_is_served_at_once(
    served: Served, upstream: str
) -> None:
    created = post(served, "/v1/admin/servers", uploaded_server(upstream))
    called = served.call("more_getStatus").json()
    listed = get(served, "/v1/admin/servers").json()
    sources = get(served, "/v1/servers").json()["servers"]

    assert created.status_code == 201, created.text
    answer = created.json()
    assert (answer["server"]["id"], answer["changes"]["tools"]["added"]) == (
        "more",
        ["more_getStatus"],
    )
    assert called["result"]["header_sha256"]["authorization"] == digest(f"Bearer {CANARY_TOKEN}")
    assert called["result"]["headers"]["authorization"] == f"Bearer {MARKER}"  # never back out
    assert [(s["id"], s["origin"]) for s in listed["servers"]] == [
        ("notes", "config"),
        ("more", "api"),
    ]
    assert listed["servers"][1]["entry"]["auth"] == {"type": "bearer", "token": "********"}
    # Where it came from, not where this process wrote it for its loaders.
    assert [(s["id"], s["location"]) for s in sources] == [
        ("notes", "specs/demo.yaml"),
        ("more", "admin API: documents/more.yaml"),
        ("weather", "tools/weather.py"),
    ]
    assert CANARY_TOKEN not in created.text + str(listed)


def test_if_match_makes_an_admin_write_apply_only_to_the_revision_it_was_made_on(
    served: Served, upstream: str
) -> None:
    """Two admins (or a script and an admin) edit one entry: the second, made on what the
    first replaced, is refused (412) instead of undoing the first unseen."""
    path = "/v1/admin/servers/more"

    def put_if(revision: str, prefix: str) -> httpx2.Response:
        headers = {**bearer("ops"), "If-Match": revision}
        body = uploaded_server(upstream, prefix=prefix)
        return httpx2.put(served.url + path, json=body, headers=headers, timeout=60)

    created = post(served, "/v1/admin/servers", uploaded_server(upstream))
    read = created.json()["server"]["revision"]  # the number of its write in the change feed
    first = put_if(f'"{read}"', "first")
    second = put_if(f'"{read}"', "second")
    malformed = put_if("yesterday", "third")
    deleted_stale = httpx2.delete(
        served.url + path, headers={**bearer("ops"), "If-Match": f'"{read}"'}, timeout=60
    )
    listed = get(served, "/v1/admin/servers").json()["servers"]
    any_revision = put_if("*", "fourth")
    now = any_revision.json()["server"]["revision"]
    deleted = httpx2.delete(
        served.url + path, headers={**bearer("ops"), "If-Match": f'"{now}", "{read}"'}, timeout=60
    )

    revisions = [r.json()["server"]["revision"] for r in (created, first, any_revision)]
    assert [(r.status_code, r.headers.get("etag")) for r in (created, first, any_revision)] == [
        (201, f'"{revisions[0]}"'),
        (200, f'"{revisions[1]}"'),
        (200, f'"{revisions[2]}"'),
    ]
    assert revisions == sorted(set(revisions))  # each write a new one, rising
    assert (second.status_code, second.json()["error"]) == (
        412,
        {
            "type": "precondition_failed",
            "message": f"server 'more' is at revision {revisions[1]}, not {read} (If-Match): it "
            "was changed since it was read; read it again, and send the change made on that",
        },
    )
    assert (malformed.status_code, deleted_stale.status_code) == (400, 412)
    assert malformed.json()["error"]["message"] == (
        'If-Match: expected * or the entity tags this API answers ("3", the entry\'s revision; '
        "at most 32), found 'yesterday'"
    )
    assert [(s["id"], s["entry"].get("prefix"), s.get("revision")) for s in listed] == [
        ("notes", None, None),
        ("more", "first", revisions[1]),
    ]
    assert deleted.status_code == 200, deleted.text


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        pytest.param(
            {"id": "x", "spec": "specs/demo.yaml", "prefx": "p"},
            422,
            {"type": "invalid_config", "message": "servers[x].prefx: unknown key 'prefx'"},
            id="unknown-key",
        ),
        pytest.param(
            {"id": "x", "spec": "specs/demo.yaml", "auth": {"type": "bearer"}},
            422,
            {
                "type": "invalid_config",
                "message": "servers[x].auth: required key 'token' is missing",
            },
            id="missing-key",
        ),
        pytest.param(
            {"id": "x", "spec": "specs/nothing.yaml"},
            422,
            {
                "type": "invalid_config",
                "message": "servers[x]: the source cannot be loaded: "
                "specs/nothing.yaml: no such file",
            },
            id="no-document",
        ),
        pytest.param(
            {"id": "notes", "spec": "specs/demo.yaml"},
            409,
            {
                "type": "conflict",
                "message": "'notes' is already a source (defined in toolbridge.yaml); "
                "pick another id",
            },
            id="id-of-the-file",
        ),
        pytest.param(
            {
                "id": "x",
                "document": "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n"
                "  /a:\n    get:\n      responses:\n        '200':\n"
                "          $ref: '/etc/hostname'\n",
            },
            422,
            {
                "type": "invalid_config",
                "message": "servers[x]: the source cannot be loaded: an uploaded document may "
                "refer only to itself; found $ref '/etc/hostname' at /paths/~1a/get/responses/200",
            },
            id="upload-refers-to-a-file-of-the-host",
        ),
        pytest.param(
            {
                "id": "x",
                "spec": "specs/demo.yaml",
                "auth": {"type": "per_user", "scheme": "api_key"},
            },
            422,
            {
                "type": "invalid_config",
                "message": "servers[x]: the source cannot be loaded: server 'x': auth: api_key "
                "'name' and 'in' are missing and the document declares no apiKey security scheme "
                "to take it from",
            },
            id="own-credential-with-no-place-to-go",
        ),
        pytest.param(
            {"id": "x", "document": "openapi: 3.0.3\npaths: [not, a, mapping\n"},
            422,
            {
                "type": "invalid_config",
                "message": "servers[x]: the source cannot be loaded: admin API: documents/x.yaml: "
                "is not valid YAML at line 3, column 1: did not find expected ',' or ']'",
            },
            id="upload-that-is-no-yaml",
        ),
    ],
)
def test_a_bad_entry_is_refused_as_the_file_would_be(
    served: Served, body: dict[str, Any], status: int, error: dict[str, str]
) -> None:
    answer = post(served, "/v1/admin/servers", body)
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    assert get(served, "/v1/admin/servers").json()["servers"][1:] == []


@pytest.mark.parametrize(
    "spec",
    [
        "{upstream}/fault/error?api_key={canary}",
        "http://ops:{canary}@{host}/fault/error",
        "{upstream}/fault/missing?X-Amz-Signature={canary}",
    ],
)
def test_an_entry_refused_is_said_without_its_secrets(
    served: Served, upstream: str, spec: str
) -> None:
    """Its secrets are not the gateway's yet (it was refused): the refusal redacts them itself."""
    url = spec.format(upstream=upstream, canary=CANARY_OWN, host=upstream.split("//")[1])
    answer = post(served, "/v1/admin/servers", {"id": "leaky", "spec": url})
    assert (answer.status_code, CANARY_OWN in answer.text, "[redacted]" in answer.text) == (
        422,
        False,
        True,
    )
    assert CANARY_OWN not in served.log.read_text()


def test_fixed_arguments_registered_through_the_api_are_sealed_listed_hidden_and_sent(
    served: Served, upstream: str
) -> None:
    """`arguments` may hold a token, as `headers` may: sealed in the store, `********` in the
    listing (sent back so, the stored value is kept, and checked as it is: a number too), sent
    on calls, never in an answer."""
    fixture = ROOT / "tests" / "fixtures" / "fixed_arguments.yaml"
    entry = {
        "id": "fixedargs",
        "document": fixture.read_text(),
        "base_url": upstream,
        "prefix": "fixedargs",
        "arguments": {"token": CANARY_TOKEN, "team": "T9", "workspace": 7},
        "tools": {"listMessages": {"arguments": {"channel": CANARY_VALVE}}},
        "access": {"groups": ["support"]},
    }
    created = post(served, "/v1/admin/servers", entry)
    assert created.status_code == 201, created.text
    (listed,) = [
        s["entry"]
        for s in get(served, "/v1/admin/servers").json()["servers"]
        if s["id"] == "fixedargs"
    ]
    assert listed["arguments"] == {"token": "********", "team": "********", "workspace": "********"}
    assert listed["tools"] == {"listMessages": {"arguments": {"channel": "********"}}}
    sent_back = {k: v for k, v in listed.items() if k != "spec"} | {"document": entry["document"]}
    again = put(served, "/v1/admin/servers/fixedargs", sent_back)
    assert again.status_code == 200, again.text
    called = served.call("fixedargs_listMessages").json()  # a tool's own: `channel`
    assert (called["result"]["path"], called["result"]["query"]) == (
        "/echo/T9/messages",
        f"token={MARKER}&channel={CANARY_VALVE}",  # (a channel id is no secret: not redacted)
    )
    noted = served.call("fixedargs_postNote", title="t").json()
    assert orjson.loads(noted["result"]["body"]) == {"workspace": 7, "title": "t"}
    assert CANARY_TOKEN not in created.text + again.text + str(listed) + str(called)
    assert CANARY_VALVE not in created.text + again.text + str(listed)
    database = b"".join(p.read_bytes() for p in served.log.parent.glob("toolbridge-state.db*"))
    assert (CANARY_TOKEN.encode() in database, CANARY_VALVE.encode() in database) == (False, False)


def test_the_files_sources_are_read_only_and_admins_only_may_write(served: Served) -> None:
    edited = put(served, "/v1/admin/servers/notes", {"spec": "specs/demo.yaml"})
    deleted = httpx2.delete(served.url + "/v1/admin/servers/notes", headers=bearer("ops"))
    by_alice = post(served, "/v1/admin/servers", {"id": "x", "spec": "s.yaml"}, user="alice")
    assert [r.status_code for r in (edited, deleted, by_alice)] == [409, 409, 403]
    assert edited.json()["error"]["message"] == (
        "server 'notes' is defined in toolbridge.yaml: edit the file (the API changes only "
        "the sources it registered)"
    )


def test_a_name_or_id_longer_than_any_is_quoted_cut_in_the_error(served: Served) -> None:
    long = "x" * 5000
    shown = f"{'x' * 80!r}... (5,000 characters)"
    answers = [
        httpx2.delete(served.url + f"/v1/admin/servers/{long}", headers=bearer("ops")),
        httpx2.delete(served.url + f"/v1/admin/tools/{long}", headers=bearer("ops")),
        httpx2.delete(served.url + f"/v1/me/credentials/{long}", headers=bearer("alice")),
        get(served, f"/v1/me/valves/{long}", user="alice"),
        post(served, f"/v1/tools/{long}/call", {}),
        put(served, "/v1/admin/servers/short", {"id": long, "spec": "specs/demo.yaml"}),
    ]
    assert [(r.status_code, r.json()["error"]["message"]) for r in answers] == [
        (404, f"no server {shown} was registered through the API"),
        (404, f"no tools entry {shown} was registered through the API"),
        (404, f"no server {shown} that takes your own credential"),
        (404, f"no tools entry or filter {shown} with UserValves that you may use"),
        (404, f"no tool named {shown}"),
        (400, f"the body's id {shown} is not the URL's 'short'"),
    ]


def test_a_registered_tool_with_secret_valves_and_an_import_pinned_by_its_hash(
    served: Served,
) -> None:
    created = post(
        served,
        "/v1/admin/tools",
        {
            "id": "shout",
            "content": SHOUT,
            "valves": {"api_key": CANARY_VALVE, "suffix": "!!"},
            "access": {"groups": ["support"]},
        },
    )
    first = served.call("shout", text="hi").json()["result"]
    changed = put(served, "/v1/admin/tools/shout/valves", {"suffix": "?", "api_key": "********"})
    second = served.call("shout", text="hi").json()["result"]
    listed = get(served, "/v1/admin/tools").json()

    def tool_file(request: Request) -> Response:
        return PlainTextResponse(SHOUT)

    with live_server(Starlette(routes=[Route("/shout.py", tool_file)])) as files:
        digest = hashlib.sha256(SHOUT.encode()).hexdigest()
        wrong = post(
            served,
            "/v1/admin/tools/import",
            {"id": "again", "url": f"{files}/shout.py", "sha256": "0" * 64},
        )
        right = post(
            served,
            "/v1/admin/tools/import",
            {"id": "again", "url": f"{files}/shout.py", "sha256": digest},
        )
        absent = post(
            served,
            "/v1/admin/tools/import",
            {"id": "gone", "url": f"{files}/nothing.py", "sha256": digest},
        )
    assert created.status_code == 201, created.text
    assert (first, changed.status_code, second) == ("HI!! (keyed)", 200, "HI? (keyed)")
    shown = {t["id"]: t.get("valves") for t in listed["tools"]}
    assert shown == {"weather": None, "shout": {"api_key": "********", "suffix": "?"}}
    assert (wrong.status_code, wrong.json()["error"]["message"]) == (
        422,
        f"{files}/shout.py: the file's sha256 is {digest}, not the {'0' * 64} given; "
        "nothing was stored",
    )
    assert right.status_code == 201
    assert (absent.status_code, absent.json()["error"]["message"]) == (
        422,
        f"{files}/nothing.py: fetch answered HTTP 404, expected 200; nothing was stored",
    )
    assert CANARY_VALVE not in created.text + changed.text + str(listed)


LOCKBOX = '''"""
title: Lockbox
"""

from pydantic import BaseModel, Field, SecretStr


class Tools:
    class Valves(BaseModel):
        token: SecretStr = SecretStr("")
        passphrase: str = Field("", json_schema_extra={"secret": True})
        label: str = "box"

    class UserValves(BaseModel):
        pin: str = Field("", json_schema_extra={"input": {"type": "password"}})

    def __init__(self) -> None:
        self.valves = self.Valves()

    def peek(self, __user__: dict) -> str:
        """What it holds, and how long each secret is."""
        token = self.valves.token.get_secret_value()
        pin = __user__["valves"].pin if "valves" in __user__ else ""
        held = (token, self.valves.passphrase, pin)
        return f"{self.valves.label} {held} {[len(s) for s in held]}"
'''


def test_valves_secret_by_type_or_marker_are_sealed_like_those_secret_by_name(
    served: Served, folder: Path
) -> None:
    """`SecretStr`, `json_schema_extra={"secret": True}` and Open WebUI's password input: kept
    encrypted, listed as ********, kept when a listing is sent back, never in an answer."""
    valves = {"token": CANARY_VALVE, "passphrase": CANARY_TOKEN, "label": "box"}
    body = {
        "id": "lockbox",
        "content": LOCKBOX,
        "valves": valves,
        "access": {"groups": ["support"]},
    }
    created = post(served, "/v1/admin/tools", body)
    own = put(served, "/v1/me/valves/lockbox", {"pin": CANARY_OWN}, user="alice")
    first = served.call("peek").json()["result"]
    listed = {t["id"]: t.get("valves") for t in get(served, "/v1/admin/tools").json()["tools"]}
    sent_back = put(served, "/v1/admin/tools/lockbox/valves", {**listed["lockbox"], "label": "tin"})
    second = served.call("peek").json()["result"]
    mine = get(served, "/v1/me/valves/lockbox", user="alice").json()
    stored = b"".join(path.read_bytes() for path in folder.glob("toolbridge-state.db*"))

    lengths = [len(CANARY_VALVE), len(CANARY_TOKEN), len(CANARY_OWN)]
    assert (created.status_code, own.status_code, sent_back.status_code) == (201, 200, 200)
    assert created.json()["tool"]["valves"] == {
        "token": "********",
        "passphrase": "********",
        "label": "box",
    }
    assert own.json() == {"tool": "lockbox", "valves": {"pin": "********"}}
    assert listed["lockbox"] == {"token": "********", "passphrase": "********", "label": "box"}
    assert first == f"box ('{MARKER}', '{MARKER}', '{MARKER}') {lengths}"
    assert second == f"tin ('{MARKER}', '{MARKER}', '{MARKER}') {lengths}"
    assert mine == {"tool": "lockbox", "valves": {"pin": "********"}}
    for canary in (CANARY_VALVE, CANARY_TOKEN, CANARY_OWN):
        assert canary.encode() not in stored
        assert canary not in served.log.read_text()


def test_valves_named_secret_in_the_request_are_redacted_from_answers_and_the_log(
    served: Served,
) -> None:
    """The admin API's `secret` list seals those valves at rest, and makes them secrets the
    gateway redacts wherever they would leave, as those secret by name or type."""
    body = {
        "id": "whisper",
        "content": SHOUT,
        "prefix": "whisper",
        "valves": {"suffix": CANARY_OWN},
        "secret": ["suffix"],
    }
    created = post(served, "/v1/admin/tools", body)
    called = served.call("whisper_shout", user="ops", text="hi").json()
    assert (created.status_code, created.json()["tool"]["valves"]) == (201, {"suffix": "********"})
    assert called["result"] == "HI[redacted]"
    assert CANARY_OWN not in served.log.read_text()
    # A Valves field named `secret` is set through PUT .../valves like any other (it is no
    # list of names), and sealed by its name.
    keeper = SHOUT.replace('suffix: str = "!"', 'suffix: str = "!"\n        secret: str = ""')
    post(served, "/v1/admin/tools", {"id": "keeper", "content": keeper, "prefix": "keeper"})
    named = put(served, "/v1/admin/tools/keeper/valves", {"secret": CANARY_OWN, "suffix": "?"})
    assert (named.status_code, named.json()["valves"]) == (
        200,
        {"secret": "********", "suffix": "?"},
    )
    for ident in ("whisper", "keeper"):
        gone = httpx2.delete(served.url + f"/v1/admin/tools/{ident}", headers=bearer("ops"))
        assert gone.status_code in (200, 204)


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        pytest.param(
            "PUT",
            "/v1/admin/tools/wrapped/valves",
            {"valves": {"api_key": CANARY_VALVE}},
            "tools[wrapped]: the file cannot be loaded: valves 'valves' are not fields of any "
            "Valves model",
            id="valves-wrapped-as-the-answer-shows-them",
        ),
        pytest.param(
            "POST",
            "/v1/admin/tools",
            {"id": "typo", "content": SHOUT, "valves": {"sufix": "!"}},
            "tools[typo]: the file cannot be loaded: valves 'sufix' are not fields of any "
            "Valves model",
            id="a-valve-the-file-has-not",
        ),
        pytest.param(
            "POST",
            "/v1/admin/tools",
            {"id": "empty", "content": "x = 1\n"},
            "tools[empty]: the file cannot be loaded: no public function to offer: it defines "
            "no `class Tools` nor public function",
            id="no-tool-in-the-file",
        ),
        pytest.param(
            "POST",
            "/v1/admin/tools",
            {
                "id": "retry",
                "content": SHOUT.replace('suffix: str = "!"', "retries: int = 1"),
                "valves": {"retries": "often"},
                "secret": ["retries"],
            },
            "tools[retry]: the file cannot be loaded: tools 'retry': tools/retry.py: "
            "valves.retries: Input should be a valid integer, unable to parse string as an "
            "integer",
            id="a-secret-valves-name-is-said-and-its-value-not",
        ),
    ],
)
def test_valves_a_tool_file_has_no_field_for_are_refused_and_nothing_is_stored(
    served: Served, method: str, path: str, body: dict[str, Any], message: str
) -> None:
    """Valves the file cannot take would be stored unused (a secret among them in clear) and
    shown back; a file with no tool offers nothing. Each is refused, and nothing changes."""
    made = post(served, "/v1/admin/tools", {"id": "wrapped", "content": SHOUT})
    assert made.status_code in (201, 409), made.text  # the table's cases share the server
    before = get(served, "/v1/admin/tools").json()
    answer = httpx2.request(method, served.url + path, json=body, headers=bearer("ops"))
    assert (answer.status_code, answer.json()["error"]["message"]) == (422, message)
    assert get(served, "/v1/admin/tools").json() == before
    assert CANARY_VALVE not in answer.text + str(before)


def test_a_tool_file_that_exits_at_import_is_refused_and_the_gateway_serves_on(
    served: Served,
) -> None:
    answer = post(served, "/v1/admin/tools", {"id": "ender", "content": "raise SystemExit(3)\n"})
    health = httpx2.get(served.url + "/healthz", timeout=10)
    assert (answer.status_code, answer.json()["error"]["message"], health.status_code) == (
        422,
        "tools[ender]: the file cannot be loaded: tools 'ender': tools/ender.py:1: cannot be "
        "imported: SystemExit: 3",
        200,
    )
    assert "ender" not in str(get(served, "/v1/admin/tools").json())


def test_a_caller_may_set_only_the_fields_of_a_tools_user_valves(served: Served) -> None:
    answer = put(served, "/v1/me/valves/weather", {"home": "Oslo", "bogus": 1}, user="alice")
    kept = get(served, "/v1/me/valves/weather", user="alice").json()
    problem = "not a field of its UserValves (it has: home, max_days)"
    assert (answer.status_code, answer.json()["error"]) == (
        422,
        {
            "type": "invalid_arguments",
            "message": f"invalid arguments for \"UserValves of 'weather'\": $.bogus: {problem}",
            "problems": [{"path": "$.bogus", "message": problem}],
        },
    )
    assert kept == {"tool": "weather", "valves": None}


def test_a_source_registered_while_the_config_file_is_invalid_says_it_is_not_applied_yet(
    folder: Path, env: dict[str, str], upstream: str
) -> None:
    """The entry is stored (it was checked, and is good); the config file, which every reload
    reads, is not: the answer says so, and the next reload that succeeds applies it."""
    config_file = folder / "toolbridge.yaml"
    good = config_file.read_text()
    served = Served(folder, env=env)
    try:
        config_file.write_text(good + "bogus: 1\n")
        created = post(served, "/v1/admin/servers", uploaded_server(upstream))
        before = served.call("more_getStatus").status_code
        config_file.write_text(good)
        reloaded = served.reload()
        after = served.call("more_getStatus").status_code
    finally:
        served.stop()
    line = len(good.splitlines()) + 1
    assert (created.status_code, created.json()["changes"]) == (
        201,
        {
            "applied": False,
            "error": f"stored, not applied yet: toolbridge.yaml:{line}: bogus: unknown key "
            "'bogus'; it applies with the next reload that succeeds",
        },
    )
    assert (before, reloaded.status_code, after) == (404, 200, 200)


def test_an_id_the_config_file_takes_after_the_api_registered_it_is_the_files(
    folder: Path, env: dict[str, str], upstream: str
) -> None:
    """The file's entry is served (the file is the truth for what it names); the API's is
    listed as not served, cannot be changed (it would never apply), and may be deleted; the
    log says so once."""
    config_file = folder / "toolbridge.yaml"
    served = Served(folder, env=env)
    try:
        created = post(served, "/v1/admin/servers", uploaded_server(upstream))
        config = yaml.safe_load(config_file.read_text())
        entry = {"id": "more", "spec": "specs/demo.yaml", "base_url": upstream, "prefix": "file"}
        config["servers"].append({**entry, "access": {"groups": ["support"]}})
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        reloaded = served.reload()
        listed = {
            (s["id"], s["origin"], s.get("served", True))
            for s in get(served, "/v1/admin/servers").json()["servers"]
        }
        edited = put(served, "/v1/admin/servers/more", uploaded_server(upstream))
        tools = [t["function"]["name"] for t in get(served, "/v1/tools").json()["tools"]]
        deleted = httpx2.delete(served.url + "/v1/admin/servers/more", headers=bearer("ops"))
        still = served.call("file_getStatus").status_code
    finally:
        served.stop()
    assert [r.status_code for r in (created, reloaded, edited, deleted)] == [201, 200, 409, 200]
    assert listed == {("notes", "config", True), ("more", "config", True), ("more", "api", False)}
    assert edited.json()["error"]["message"] == (
        "server 'more' is defined in toolbridge.yaml: edit the file (the API changes only the "
        "sources it registered): the API's entry of that id is not served (delete it)"
    )
    assert ("file_getStatus" in tools, "more_getStatus" in tools, still) == (True, False, 200)
    warned = [line for line in served.log.read_text().splitlines() if "the file's entry" in line]
    assert len(warned) == 1
    assert warned[0].endswith(
        "'more' is defined in the config file and registered through the admin API: the file's "
        "entry is served, the API's is not (delete the API's, or give one another id)"
    )


def test_a_process_without_the_key_of_some_entries_serves_the_rest_and_is_not_ready(
    folder: Path, env: dict[str, str], upstream: str
) -> None:
    """A replica left with a key a rotation retired cannot open what was sealed with the new
    one: those entries are not served there (it says so, and is not ready), and every other
    change still applies, deletions first of all."""
    served = Served(folder, env=env)
    try:
        assert post(served, "/v1/admin/servers", uploaded_server(upstream)).status_code == 201
        plain = uploaded_server(upstream, id="plain", prefix="plain")
        del plain["auth"]
        assert post(served, "/v1/admin/servers", plain).status_code == 201
    finally:
        served.stop()
    other = {"TOOLBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    again = Served(folder, env=other, log="again.log", until="/healthz")
    try:
        ready = httpx2.get(f"{again.url}/readyz", timeout=10)
        calls = [again.call(t).status_code for t in ("more_getStatus", "plain_getStatus")]
        deleted = httpx2.delete(f"{again.url}/v1/admin/servers/plain", headers=bearer("ops"))
        unknown = again.call("plain_getStatus").json()["error"]
        after = [s["id"] for s in get(again, "/v1/servers").json()["servers"]]
    finally:
        again.stop()
    assert (ready.status_code, ready.json()["status"]) == (503, "not_ready")
    assert ready.json()["reason"] == (
        "entries registered through the admin API that this process's TOOLBRIDGE_SECRET_KEY "
        "cannot open are not served here (1; the log names them)"
    )
    assert (calls, deleted.status_code) == ([503, 200], 200)
    assert ("plain" in after, "more" in after) == (False, False)  # deleted; not openable here
    assert unknown == {
        "type": "secret_key",
        "message": "no tool named 'plain_getStatus' here, and it may be one registered through "
        "the admin API that this process's TOOLBRIDGE_SECRET_KEY cannot open",
    }
    said = [line for line in again.log.read_text().splitlines() if "not served here" in line]
    assert len(said) == 1, said
    assert "cannot decrypt the stored secret of server 'more': " in said[0]
    assert CANARY_TOKEN not in again.log.read_text() + ready.text


def test_audit_entries_and_changes_past_their_time_are_pruned_by_a_running_gateway(
    folder: Path, env: dict[str, str]
) -> None:
    """`state.audit_days` (here 30; `state` without a `url` keeps the default file): entries
    written long ago are deleted soon after the gateway starts, and the prune is audited."""
    import asyncio
    from datetime import UTC, datetime

    from toolbridge.state.store import Store

    config = yaml.safe_load((folder / "toolbridge.yaml").read_text())
    (folder / "toolbridge.yaml").write_text(yaml.safe_dump({**config, "state": {"audit_days": 30}}))

    async def written_long_ago() -> None:
        url = f"sqlite:///{folder / 'toolbridge-state.db'}"
        async with await Store.open(url, clock=lambda: datetime(2020, 1, 1, tzinfo=UTC)) as old:
            for n in range(3):
                await old.record_change("reload", "reload", {"replica": f"old{n}"}, by="ops")

    asyncio.run(written_long_ago())
    served = Served(folder, env=env)
    try:
        deadline, audit = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            audit = [
                (e["actor"], e["action"], e["target"], e["detail"])
                for e in get(served, "/v1/admin/audit").json()["audit"]
            ]
            if any(action == "feed.prune" for _, action, _, _ in audit):
                break
            time.sleep(0.2)
    finally:
        served.stop()
    assert audit == [("gateway", "feed.prune", "3", {"audit": 3, "changes": 3})]


def test_the_audit_log_pages_back_and_is_read_by_action(served: Served) -> None:
    for n in range(3):
        tool = {"id": f"shout{n}", "content": SHOUT}
        assert post(served, "/v1/admin/tools", tool).status_code == 201
        assert put(served, f"/v1/admin/tools/shout{n}/valves", {}).status_code == 200

    def page(query: str) -> dict[str, Any]:
        answer = get(served, f"/v1/admin/audit{query}")
        assert answer.status_code == 200, answer.text
        return {
            "audit": [(e["action"], e["target"]) for e in answer.json()["audit"]],
            "next": answer.json().get("next"),
        }

    first = page("?limit=2&action=tool")
    assert first == {
        "audit": [("tool.create", "shout2"), ("tool.create", "shout1")],
        "next": first["next"],
    }
    assert first["next"].startswith("/v1/admin/audit?limit=2&before=")
    assert page(first["next"].removeprefix("/v1/admin/audit")) == {
        "audit": [("tool.create", "shout0")],
        "next": None,
    }
    assert page("?action=tool_valves.update&limit=5")["audit"] == [
        ("tool_valves.update", f"shout{n}") for n in (2, 1, 0)
    ]
    refused = [
        get(served, f"/v1/admin/audit{query}")
        for query in ("?limit=0", "?limit=1001", "?before=x", "?sort=id")
    ]
    assert [(r.status_code, r.json()["error"]["message"]) for r in refused] == [
        (400, "`limit`: expected a whole number from 1 to 1000, found '0'"),
        (400, "`limit`: expected a whole number from 1 to 1000, found '1001'"),
        (400, "`before`: expected a whole number from 1 to 9223372036854775807, found 'x'"),
        (400, "GET /v1/admin/audit takes limit, before and action; found 'sort'"),
    ]
    assert get(served, "/v1/admin/audit?limit=1", user="alice").status_code == 403


def test_registered_sources_outlive_a_restart_and_are_exported(
    folder: Path, env: dict[str, str], upstream: str
) -> None:
    served = Served(folder, env=env)
    try:
        assert post(served, "/v1/admin/servers", uploaded_server(upstream)).status_code == 201
        tool = {"id": "shout", "content": SHOUT, "valves": {"api_key": CANARY_VALVE}}
        assert post(served, "/v1/admin/tools", tool).status_code == 201
    finally:
        served.stop()
    again = Served(folder, env=env, log="again.log")
    try:
        echoed = again.call("more_getStatus").json()["result"]
        after_restart = echoed["header_sha256"]["authorization"]
        audit = [
            (e["actor"], e["action"], e["target"])
            for e in get(again, "/v1/admin/audit").json()["audit"]
        ]
    finally:
        again.stop()
    exported = subprocess.run(
        [sys.executable, "-m", "toolbridge", "export", "--out", "out"],
        cwd=folder,
        env={**env, "PATH": "", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        capture_output=True,
        text=True,
        check=False,
    )

    assert after_restart == digest(f"Bearer {CANARY_TOKEN}")
    assert audit[:2] == [("ops", "tool.create", "shout"), ("ops", "server.create", "more")]
    assert (exported.returncode, exported.stdout) == (
        0,
        "wrote out/toolbridge.registered.yaml: 1 servers, 1 tools\n"
        "set these environment variables to the secrets (not exported):\n"
        "  TOOLBRIDGE_MORE_AUTH_TOKEN\n  TOOLBRIDGE_SHOUT_VALVES_API_KEY\n",
    )
    written = yaml.safe_load((folder / "out" / "toolbridge.registered.yaml").read_text())
    assert written["servers"][0]["auth"] == {
        "type": "bearer",
        "token": "${TOOLBRIDGE_MORE_AUTH_TOKEN}",
    }
    assert (written["servers"][0]["spec"], written["tools"][0]["path"]) == (
        "specs/more.yaml",
        "tools/shout.py",
    )
    everything = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert (CANARY_TOKEN.encode() in everything, CANARY_VALVE.encode() in everything) == (
        False,
        False,
    )


def with_own_server(folder: Path, upstream: str) -> None:
    """The folder's config with `mine`: the demo's `getStatus` at `upstream`, called with each
    caller's own credential (`per_user`)."""
    config = yaml.safe_load((folder / "toolbridge.yaml").read_text())
    config["servers"].append(
        {
            "id": "mine",
            "spec": "specs/demo.yaml",
            "base_url": upstream,
            "prefix": "mine",
            "include": {"operations": ["getStatus"]},
            "auth": {"type": "per_user"},
            "access": {"groups": ["support"]},
        }
    )
    (folder / "toolbridge.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_each_caller_keeps_their_own_valves_and_credentials(
    folder: Path, env: dict[str, str], upstream: str
) -> None:
    with_own_server(folder, upstream)
    served = Served(folder, env=env)
    try:
        before = served.call("mine_getStatus")
        stored = put(served, "/v1/me/credentials/mine", {"token": CANARY_OWN}, user="alice")
        wrong = put(served, "/v1/me/credentials/mine", {"password": "x"}, user="alice")
        unsendable = put(served, "/v1/me/credentials/mine", {"token": "tok-日本"}, user="alice")
        alice = served.call("mine_getStatus").json()["result"]["headers"]["authorization"]
        bob = served.call("mine_getStatus", user="bob")
        valves = put(served, "/v1/me/valves/weather", {"home": "Lisbon"}, user="alice")
        bad_valves = put(served, "/v1/me/valves/weather", {"max_days": 0}, user="alice")
        home = served.call("get_weather").json()["result"]
        bobs_home = served.call("get_weather", user="bob").json()["result"]
        mine = get(served, "/v1/me/credentials", user="alice").json()
    finally:
        served.stop()

    assert (before.status_code, before.json()["error"]) == (
        403,
        {
            "type": "credential_required",
            "message": "server 'mine' takes each caller's own credential, and 'alice' has stored "
            'none: PUT /v1/me/credentials/mine with {"token": "..."}',
        },
    )
    assert (stored.status_code, stored.json()) == (200, {"server": "mine", "fields": ["token"]})
    assert (wrong.status_code, wrong.json()["error"]["type"]) == (422, "invalid_arguments")
    assert (unsendable.status_code, unsendable.json()["error"]["problems"]) == (
        422,
        [
            {
                "path": "$",
                "message": "token: holds a character no HTTP header can carry (a line break, a "
                "control character, or one outside ISO-8859-1)",
            }
        ],
    )
    # The upstream got alice's own token (what it echoes is exactly it, redacted on the way
    # back: a caller's credential is a secret as the operator's are); bob has none.
    assert (alice, bob.status_code) == (f"Bearer {MARKER}", 403)
    assert (valves.status_code, bad_valves.status_code) == (200, 422)
    assert (home.split(":")[0], bobs_home.split(":")[0]) == ("Lisbon", "Paris")
    assert mine == {"credentials": [{"server": "mine", "fields": ["token"]}]}
    assert CANARY_OWN not in (served.log.read_text() + str(mine) + stored.text)


def test_a_deleted_server_takes_its_callers_credentials_with_it(
    served: Served, upstream: str
) -> None:
    """Also from each process's memory: a credential used (and so cached) before the delete
    never reaches a server registered later under the same id."""
    entry = uploaded_server(upstream, id="mine", auth={"type": "per_user"})
    registered = post(served, "/v1/admin/servers", entry)
    stored = put(served, "/v1/me/credentials/mine", {"token": CANARY_OWN}, user="alice")
    time.sleep(1.5)  # the change feed has said the credential changed: what is read now stays
    used = served.call("more_getStatus").json()["result"]["headers"]["authorization"]
    deleted = httpx2.delete(served.url + "/v1/admin/servers/mine", headers=bearer("ops"))
    again = post(served, "/v1/admin/servers", entry)
    after = served.call("more_getStatus")
    assert [r.status_code for r in (registered, stored, deleted, again)] == [201, 200, 200, 201]
    assert (used, after.status_code, after.json()["error"]["type"]) == (
        f"Bearer {MARKER}",
        403,
        "credential_required",
    )


ECHO = '''"""
title: Echo
version: 1.0.0
"""


class Tools:
    def echo(self, text: str) -> str:
        """Say it back."""
        return text
'''


def test_each_caller_keeps_their_own_filter_valves(folder: Path, env: dict[str, str]) -> None:
    """A filter's UserValves are kept like a tool's, at /v1/me/valves/{filter id}, and used on
    the caller's calls that the request's header does not say otherwise for."""
    (folder / "tools" / "echo.py").write_text(ECHO)
    (folder / "filters").mkdir()
    shutil.copy(FILTER_FILES / "redact_emails.py", folder / "filters" / "redact_emails.py")
    config = yaml.safe_load((folder / "toolbridge.yaml").read_text())
    config["tools"].append(
        {"id": "echoes", "path": "tools/echo.py", "access": {"groups": ["support"]}}
    )
    config["filters"] = [
        {"id": "redact", "path": "filters/redact_emails.py", "sources": ["echoes"]},
        {"id": "elsewhere", "path": "filters/redact_emails.py", "tools": ["nothing_*"]},
    ]
    (folder / "toolbridge.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    served = Served(folder, env=env)
    address = {"text": "write to eve@example.net"}
    try:
        before = served.call("echo", **address).json()["result"]
        stored = put(served, "/v1/me/valves/redact", {"keep_domain": True}, user="alice")
        shown = get(served, "/v1/me/valves/redact", user="alice").json()
        wrong = put(served, "/v1/me/valves/redact", {"keep_domain": "maybe"}, user="alice")
        nothing_around = put(served, "/v1/me/valves/elsewhere", {"keep_domain": True}, "alice")
        after = served.call("echo", **address).json()["result"]
        bobs = served.call("echo", user="bob", **address).json()["result"]
        said = httpx2.post(
            f"{served.url}/v1/tools/echo/call",
            json=address,
            headers={
                **bearer("alice"),
                "x-toolbridge-filter-valves": '{"redact": {"keep_domain": false}}',
            },
            timeout=10,
        ).json()["result"]
    finally:
        served.stop()

    assert (before, after, bobs, said) == (
        "write to [email]",
        "write to [email]@example.net",
        "write to [email]",
        "write to [email]",
    )
    assert (stored.status_code, stored.json()) == (
        200,
        {"tool": "redact", "valves": {"keep_domain": True}},
    )
    assert shown == {"tool": "redact", "valves": {"keep_domain": True}}
    assert (wrong.status_code, wrong.json()["error"]["type"]) == (422, "invalid_arguments")
    assert (nothing_around.status_code, nothing_around.json()["error"]["message"]) == (
        404,
        "no tools entry or filter 'elsewhere' with UserValves that you may use",
    )


def test_an_upstream_out_of_step_never_hands_one_callers_answer_to_another(
    folder: Path, env: dict[str, str]
) -> None:
    """An upstream (or a box before it) that sends each answer twice, the second a moment
    later: on a connection kept alive, the extra answer is taken for the next request's. With
    each caller's own credentials (`per_user`), the next request on a connection is only ever
    the same caller's: bob received answers made for alice, with her token in them, before."""
    import asyncio

    from tests.raw_servers import RawServer, read_request

    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            auth = next(
                (line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                 if line.lower().startswith(b"authorization:")),
                b"",
            )  # fmt: skip
            body = orjson.dumps({"auth": auth.decode()})
            answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            answer += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            writer.write(answer)
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(answer)  # once too many, late

    with RawServer(twice) as upstream:
        with_own_server(folder, upstream.url)
        served = Served(folder, env=env)
        try:
            for user in ("alice", "bob"):
                token = {"token": f"{CANARY_OWN}-{user}"}
                assert put(served, "/v1/me/credentials/mine", token, user=user).status_code == 200
            answers: list[tuple[str, str]] = []
            for _ in range(8):  # alice, then bob at once, while alice's extra answer is due
                for user in ("alice", "bob"):
                    result = served.call("mine_getStatus", user=user).json()["result"]
                    answers.append((user, str(result)))
        finally:
            served.stop()
    crossed = [
        (user, said)
        for user, said in answers
        if any(f"{CANARY_OWN}-{other}" in said for other in ("alice", "bob") if other != user)
    ]
    assert crossed == []
