"""The gateway served by real uvicorn, calling real upstreams on 127.0.0.1, used over HTTP.

One upstream echoes what it receives (tests/fake_upstream.py), so each test sees the exact request
the gateway built; its /fault routes are slow, fail or answer garbage. A port nobody listens
on stands for a service that is down.
"""

from __future__ import annotations

import base64
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.fake_upstream import create_upstream
from toolbridge.config_file import load_config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALICE = {"Authorization": "Bearer alice-secret-key-1"}
OPS = {"Authorization": "Bearer ops-secret-key-1"}
TOKEN = "upstream-token-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with LoopbackServer(create_upstream()) as server:
        yield server.url


@pytest.fixture(scope="module")
def gateway_url(upstream_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("config")
    config_file = folder / "toolbridge.yaml"
    config_file.write_text(
        textwrap.dedent(
            f"""\
            auth:
              api_keys:
                - {{user: alice, key: "${{ALICE_KEY}}", groups: [support]}}
                - {{user: ops, key: "${{OPS_KEY}}", admin: true}}
            servers:
              - id: styles
                spec: {ROOT}/specs/params-styles.yaml
                base_url: {upstream_url}/api
                access: {{groups: [support]}}
              - id: bodies
                spec: {ROOT}/specs/body-form-multipart.yaml
                base_url: {upstream_url}/api
                auth: {{type: bearer, token: "${{PETS_TOKEN}}"}}
                headers: {{X-Team: gateway-tests}}
                access: {{groups: [support]}}
              - id: faults
                spec: {ROOT}/tests/fixtures/faults.yaml
                base_url: {upstream_url}
                timeout: 1
                access: {{users: [alice]}}
              - id: down
                spec: {ROOT}/specs/demo.yaml
                base_url: http://127.0.0.1:{free_port()}
                prefix: down
                access: {{users: ["*"]}}
              - id: hidden
                spec: {ROOT}/specs/filters.yaml
                base_url: {upstream_url}
              - id: broken
                spec: {folder}/missing.yaml
            tools:
              - id: clock
                path: {ROOT}/src/toolbridge/demo/tools/clock.py
                access: {{users: [alice], methods: [GET]}}
              - id: weather
                path: {ROOT}/tests/fixtures/tools/weather.py
            """
        )
    )
    environ = {
        "ALICE_KEY": "alice-secret-key-1",
        "OPS_KEY": "ops-secret-key-1",
        "PETS_TOKEN": TOKEN,
    }
    config = load_config(config_file, environ)
    gateway = Gateway(config, upstream=make_upstream(), max_response_bytes=50_000)
    gateway.load()
    app = create_app(gateway)
    with LoopbackServer(app, lifespan="on") as server:  # the lifespan closes the gateway
        yield server.url


@pytest.fixture
def client(gateway_url: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=gateway_url, timeout=10) as http:
        yield http


def call(
    client: httpx2.Client, name: str, arguments: Any, headers: dict[str, str] = ALICE
) -> httpx2.Response:
    return client.post(f"/v1/tools/{name}/call", json=arguments, headers=headers)


def echoed(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert (response.status_code, body["ok"], body["status"]) == (200, True, 200), body
    result: dict[str, Any] = body["result"]
    return result


# -- listing and describing -----------------------------------------------------------------


def test_without_a_key_every_endpoint_but_health_is_401(client: httpx2.Client) -> None:
    response = client.get("/v1/tools")
    assert (response.status_code, response.headers["www-authenticate"], response.json()) == (
        401,
        'Bearer realm="toolbridge"',
        {"error": {"type": "unauthenticated", "message": "send Authorization: Bearer <api key>"}},
    )
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_caller_lists_only_the_tools_granted_to_them(client: httpx2.Client) -> None:
    names = [t["function"]["name"] for t in client.get("/v1/tools", headers=ALICE).json()["tools"]]
    assert names == [
        "searchPets",
        "getPetPhotos",
        "listOwnerPets",
        "login",
        "uploadPetPhoto",
        "replacePetNotes",
        "uploadMicrochipDump",
        "recordVaccination",
        "fault",
        "down_listNotes",
        "down_createNote",
        "down_getNote",
        "down_deleteNote",
        "down_updateNote",
        "down_getStatus",
        "now",
        "days_between",
        "convert_time",
    ]
    admin = client.get("/v1/tools?format=anthropic", headers=OPS).json()["tools"]
    # The `hidden` server and the `weather` local tools have no access: admins only.
    assert len(admin) == len(names) + 6 + 2


def test_a_tool_the_caller_may_not_use_does_not_exist_for_them(client: httpx2.Client) -> None:
    hidden = client.get("/v1/tools/listPets", headers=ALICE)
    unknown = client.get("/v1/tools/noSuchTool", headers=ALICE)
    assert (hidden.status_code, unknown.status_code) == (404, 404)
    assert hidden.json() == {"error": {"type": "not_found", "message": "no tool named 'listPets'"}}
    assert call(client, "listPets", {}).status_code == 404
    assert client.get("/v1/tools/listPets", headers=OPS).status_code == 200


def test_one_tool_in_canonical_form(client: httpx2.Client) -> None:
    body = client.get("/v1/tools/getPetPhotos", headers=ALICE).json()
    assert body["source"] == {
        "kind": "openapi",
        "server": "styles",
        "method": "GET",
        "path": "/pets/{petIds}/photos{format}",
        "operation_id": "getPetPhotos",
    }
    assert body["input_schema"]["required"] == ["petIds", "format"]
    assert body["annotations"]["readOnlyHint"] is True


def test_servers_report_each_source_and_the_one_that_is_down(client: httpx2.Client) -> None:
    """Admins see every source; others only those with a grant naming them."""
    servers = {s["id"]: s for s in client.get("/v1/servers", headers=OPS).json()["servers"]}
    assert [(k, v["status"], v["tools"]) for k, v in servers.items()] == [
        ("styles", "ok", 3),
        ("bodies", "ok", 5),
        ("faults", "ok", 1),
        ("down", "ok", 6),
        ("hidden", "ok", 6),
        ("broken", "error", 0),
        ("clock", "ok", 3),
        ("weather", "ok", 2),
    ]
    assert servers["broken"]["error"].endswith("missing.yaml: no such file")
    assert {k: v["notes"] for k, v in servers.items() if v["notes"]} == {
        "weather": [
            {
                "kind": "requirement-missing",
                "message": "requirement 'toolbridge-test-missing-package' is not installed "
                "(toolbridge installs a file's requirements only when its entry says "
                "`install_requirements: true`)",
                "where": "tests/fixtures/tools/weather.py",
            }
        ]
    }
    assert TOKEN not in str(servers)
    alice = client.get("/v1/servers", headers=ALICE).json()["servers"]
    assert [s["id"] for s in alice] == ["styles", "bodies", "faults", "down", "clock"]


# -- requests exactly as the spec describes them --------------------------------------------


def test_query_styles_reach_the_upstream_as_specified(client: httpx2.Client) -> None:
    arguments = {
        "species": ["cat", "dog"],
        "colors": ["black", "white"],
        "tags": ["calm", "indoor"],
        "ids": [1, 2, 3],
        "filter": {"name": "Rex", "minAge": 1},
    }
    result = echoed(call(client, "searchPets", arguments))
    assert (result["method"], result["path"]) == ("GET", "/api/pets/search")
    assert result["query"] == (
        "species=cat&species=dog&colors=black,white&tags=calm%20indoor&ids=1|2|3"
        "&filter%5Bname%5D=Rex&filter%5BminAge%5D=1"
    )


def test_path_values_cannot_change_the_route(client: httpx2.Client) -> None:
    result = echoed(
        call(client, "listOwnerPets", {"owner": {"first": "../../admin", "last": "x?y#z"}})
    )
    assert result["raw_path"] == "/api/owners/;first=..%2F..%2Fadmin;last=x%3Fy%23z/pets"
    assert result["query"] == ""


def test_credentials_and_static_headers_are_added_and_the_callers_key_is_not(
    client: httpx2.Client,
) -> None:
    result = echoed(call(client, "replacePetNotes", {"petId": 7, "body": "Likes naps."}))
    headers = result["headers"]
    # The token reached the upstream; its echo is redacted on the way back to the caller.
    assert (headers["authorization"], headers["x-team"], headers["content-type"]) == (
        "Bearer [redacted]",
        "gateway-tests",
        "text/plain; charset=utf-8",
    )
    assert (result["method"], result["path"], result["body"]) == (
        "PUT",
        "/api/pets/7/notes",
        "Likes naps.",
    )
    styles = echoed(call(client, "getPetPhotos", {"petIds": [1, 2], "format": "png"}))
    assert "authorization" not in styles["headers"]  # alice's own key never travels upstream


def test_form_body(client: httpx2.Client) -> None:
    result = echoed(
        call(client, "login", {"username": "ann", "password": "s3cret", "scopes": ["a", "b"]})
    )
    assert result["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert result["body"].startswith("username=ann&password=s3cret")


def test_multipart_file_upload(client: httpx2.Client) -> None:
    photo = base64.b64encode(b"\x89PNG fake").decode()
    arguments = {
        "petId": 3,
        "file": {"content": photo, "filename": "rex.png", "content_type": "image/png"},
        "metadata": {"caption": "Rex"},
    }
    result = echoed(call(client, "uploadPetPhoto", arguments))
    assert result["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert 'filename="rex.png"' in result["body"]
    assert "\x89PNG fake" in base64.b64decode(result["body_base64"]).decode("latin-1")


def test_binary_body(client: httpx2.Client) -> None:
    raw = bytes(range(10))
    arguments = {"petId": 1, "body": base64.b64encode(raw).decode()}
    result = echoed(call(client, "uploadMicrochipDump", arguments))
    assert (result["headers"]["content-type"], base64.b64decode(result["body_base64"])) == (
        "application/octet-stream",
        raw,
    )


# -- errors the caller and the model see ----------------------------------------------------


def test_invalid_arguments_are_422_with_each_problem(client: httpx2.Client) -> None:
    response = call(client, "getPetPhotos", {"petIds": ["x"], "colour": "red"})
    assert response.status_code == 422
    assert response.json()["error"]["problems"] == [
        {"path": "$", "message": '"format" is a required property'},
        {"path": "$", "message": "Additional properties are not allowed ('colour' was unexpected)"},
        {"path": "$.petIds[0]", "message": '"x" is not of type "integer"'},
    ]
    assert call(client, "getPetPhotos", [1]).status_code == 422


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {"kind": "error"},
            {
                "ok": False,
                "status": 500,
                "content_type": "application/json",
                "result": {"message": "it broke"},
            },
        ),
        (
            {"kind": "missing"},
            {
                "ok": False,
                "status": 404,
                "content_type": "application/json",
                "result": {"message": "no such pet"},
            },
        ),
    ],
)
def test_upstream_errors_are_results_the_model_can_read(
    client: httpx2.Client, arguments: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = call(client, "fault", arguments)
    assert (response.status_code, response.json()) == (200, expected)


def test_a_slow_upstream_is_504_naming_the_server(client: httpx2.Client) -> None:
    response = call(client, "fault", {"kind": "slow", "seconds": 5})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "upstream_timeout"
    assert "'faults'" in response.json()["error"]["message"]


def test_a_down_upstream_is_502_naming_the_server(client: httpx2.Client) -> None:
    response = call(client, "down_listNotes", {})
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["message"].startswith("upstream 'down': ")) == (
        "upstream_unavailable",
        True,
    )


def test_a_huge_answer_is_cut_with_a_marker(client: httpx2.Client) -> None:
    body = call(client, "fault", {"kind": "huge", "bytes": 200_000}).json()
    assert (body["ok"], body["truncated"], len(body["result"]) < 60_000) == (True, True, True)


def test_garbage_json_comes_back_as_text(client: httpx2.Client) -> None:
    body = call(client, "fault", {"kind": "garbage"}).json()
    assert (body["ok"], body["result"]) == (True, "{not json")


def test_binary_answers_are_base64(client: httpx2.Client) -> None:
    body = call(client, "fault", {"kind": "image"}).json()
    assert body["result"]["content_type"] == "image/png"
    assert base64.b64decode(body["result"]["base64"]).startswith(b"\x89PNG")


def test_redirects_are_followed_only_within_the_origin(client: httpx2.Client) -> None:
    here = echoed(call(client, "fault", {"kind": "redirect-here"}))
    assert here["path"] == "/echo/redirected"
    away = call(client, "fault", {"kind": "redirect-away"}).json()
    assert (away["ok"], away["status"]) == (False, 302)


# -- operations -------------------------------------------------------------------------------


def test_reload_is_for_admins(client: httpx2.Client) -> None:
    assert client.post("/v1/admin/reload", headers=ALICE).status_code == 403
    response = client.post("/v1/admin/reload", headers=OPS)
    answer = response.json()
    broken = answer["sources"][5].pop("error")
    assert (response.status_code, answer) == (
        200,
        {
            "applied": True,
            "sources": [
                {"id": "styles", "change": "unchanged", "tools": 3, "error": None},
                {"id": "bodies", "change": "unchanged", "tools": 5, "error": None},
                {"id": "faults", "change": "unchanged", "tools": 1, "error": None},
                {"id": "down", "change": "unchanged", "tools": 6, "error": None},
                {"id": "hidden", "change": "unchanged", "tools": 6, "error": None},
                {"id": "broken", "change": "failed", "tools": 0},
                {"id": "clock", "change": "unchanged", "tools": 3, "error": None},
                {"id": "weather", "change": "unchanged", "tools": 2, "error": None},
            ],
            "tools": {"count": 26, "added": [], "removed": [], "changed": []},
            "settings": [],
        },
    )
    assert broken.endswith("missing.yaml: no such file")


def test_local_tools_sit_under_the_same_access_control(client: httpx2.Client) -> None:
    ok = call(client, "days_between", {"start": "2024-01-01", "end": "2024-01-11"})
    assert (ok.status_code, ok.json()["result"]) == (200, 10)
    assert call(client, "get_weather", {"city": "Rome"}).status_code == 404  # admins only
    admin = call(client, "get_weather", {"city": "Rome"}, headers=OPS).json()
    assert admin["result"].startswith("Rome: sunny")


def test_metrics_count_calls(client: httpx2.Client) -> None:
    call(client, "getPetPhotos", {"petIds": [1], "format": "jpg"})
    text = client.get("/metrics").text
    assert 'toolbridge_tool_calls_total{outcome="ok",tool="getPetPhotos"}' in text
