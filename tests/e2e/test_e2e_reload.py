"""Live configuration against a real `toolbridge serve`: every edit of toolbridge.yaml applies on
reload (admin API, SIGHUP, the watched file), with every worker, and the answer says what changed.

The gateway runs as a subprocess on a free loopback port; its upstreams are echo servers on
loopback (tests/fake_upstream.py), so a test sees exactly what a reload changed on the wire.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
import yaml
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ToolsListChanged
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.conftest import live_server
from tests.e2e.serving import KEYS, Served, bearer
from tests.fake_upstream import create_upstream, digest
from toolbridge.redaction import MARKER
from toolbridge.serve.mcp_start import PATH as MCP_PATH

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "jwt-secret-for-the-reload-tests-0123456789"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    """Two echo upstreams: a call shows which one answered by the Host it was sent."""
    with live_server(create_upstream()) as first, live_server(create_upstream()) as second:
        yield first, second


def base_config(upstream: str) -> dict[str, Any]:
    return {
        "watch": False,
        "auth": {
            "api_keys": [
                {"user": "alice", "key": KEYS["alice"], "groups": ["support"]},
                {"user": "bob", "key": KEYS["bob"], "groups": ["support"]},
                {"user": "ops", "key": KEYS["ops"], "admin": True},
            ]
        },
        "servers": [
            {
                "id": "notes",
                "spec": "specs/demo.yaml",
                "base_url": upstream,
                "access": {"groups": ["support"]},
            }
        ],
        "tools": [
            {
                "id": "weather",
                "path": "tools/weather.py",
                "valves": {"units": "metric"},
                "access": {"groups": ["support"]},
            }
        ],
    }


def write(folder: Path, config: dict[str, Any]) -> None:
    text = yaml.safe_dump(config, sort_keys=False)
    temporary = folder / "toolbridge.yaml.tmp"
    temporary.write_text(text)
    temporary.replace(folder / "toolbridge.yaml")  # as editors that save atomically do


def folder_for(tmp_path: Path, config: dict[str, Any]) -> Path:
    (tmp_path / "specs").mkdir()
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "specs" / "demo.yaml", tmp_path / "specs" / "demo.yaml")
    shutil.copy(
        ROOT / "tests" / "fixtures" / "tools" / "weather.py", tmp_path / "tools" / "weather.py"
    )
    write(tmp_path, config)
    return tmp_path


@pytest.fixture
def served(tmp_path: Path, upstreams: tuple[str, str]) -> Iterator[Served]:
    folder_for(tmp_path, base_config(upstreams[0]))
    server = Served(tmp_path)
    yield server
    server.stop()


def changed(answer: dict[str, Any]) -> dict[str, Any]:
    """What a reload answer says changed: sources that did not stay the same, and the tools."""
    return {
        "applied": answer["applied"],
        "sources": {s["id"]: s["change"] for s in answer["sources"] if s["change"] != "unchanged"},
        "added": answer["tools"]["added"],
        "removed": answer["tools"]["removed"],
        "changed": [(c["name"], c["fields"]) for c in answer["tools"]["changed"]],
        "settings": answer["settings"],
    }


# -- every key takes effect ---------------------------------------------------------------------

Edit = Callable[[dict[str, Any], tuple[str, str]], None]
Effect = Callable[[Served, tuple[str, str], Path], None]


def add_server(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["servers"].append(
        {
            "id": "more",
            "spec": "specs/demo.yaml",
            "base_url": upstreams[1],
            "prefix": "more",
            "include": {"operations": ["getStatus"]},
            "access": {"groups": ["support"]},
        }
    )


def added_server_answers(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    echoed = served.call("more_getStatus").json()["result"]
    assert echoed["headers"]["host"] == upstreams[1].removeprefix("http://")


def remove_server(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["servers"] = []


def removed_server_is_gone(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    assert served.call("getStatus").status_code == 404


def revoke_bob(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["auth"]["api_keys"] = [k for k in config["auth"]["api_keys"] if k["user"] != "bob"]


def bob_is_refused(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    assert served.call("getStatus", user="bob").status_code == 401
    assert served.call("getStatus", user="alice").status_code == 200


def narrow_grant(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["servers"][0]["access"] = {"users": ["bob"]}


def alice_no_longer_sees_it(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    assert served.call("getStatus", user="alice").status_code == 404
    assert served.call("getStatus", user="bob").status_code == 200


def add_rate_limit(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["auth"]["rate_limit"] = {"per_minute": 1, "burst": 1}


def second_call_is_limited(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    statuses = [served.call("getStatus").status_code for _ in range(2)]
    assert statuses == [200, 429]


def imperial_valves(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["tools"][0]["valves"] = {"units": "imperial"}


def weather_in_fahrenheit(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    assert "70 °F" in served.call("get_weather", city="Rome").json()["result"]


def add_header(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["servers"][0]["headers"] = {"X-Team": "blue"}


def header_is_sent(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    assert served.call("getStatus").json()["result"]["headers"]["x-team"] == "blue"


def move_base_url(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["servers"][0]["base_url"] = upstreams[1]


def calls_go_to_the_new_host(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    host = served.call("getStatus").json()["result"]["headers"]["host"]
    assert host == upstreams[1].removeprefix("http://")


def change_credentials(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["servers"][0]["auth"] = {"type": "bearer", "token": "token-after-reload"}


def new_token_is_sent(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    echoed = served.call("getStatus").json()["result"]
    assert echoed["header_sha256"]["authorization"] == digest("Bearer token-after-reload")
    assert echoed["headers"]["authorization"] == f"Bearer {MARKER}"  # a secret never comes back


def add_audit(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["audit"] = {"file": "audit.jsonl"}


def calls_are_audited(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    served.call("getStatus")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (folder / "audit.jsonl").exists():
        time.sleep(0.1)
    time.sleep(0.5)  # the call log writes in batches
    lines = (folder / "audit.jsonl").read_text().splitlines()
    assert [yaml.safe_load(line)["tool"] for line in lines] == ["getStatus"]


def add_jwt(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["auth"]["jwt"] = {"secret": JWT_SECRET, "issuer": "idp"}


def jwt_callers_are_let_in(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    claims = {"sub": "carol", "iss": "idp", "groups": ["support"], "exp": int(time.time()) + 60}
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    answer = httpx2.post(
        f"{served.url}/v1/tools/getStatus/call",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200


def add_toolset(config: dict[str, Any], upstreams: tuple[str, str]) -> None:
    config["toolsets"] = [{"id": "reading", "include": {"methods": ["GET"], "sources": ["notes"]}}]


def toolset_is_served(served: Served, upstreams: tuple[str, str], folder: Path) -> None:
    listed = httpx2.get(f"{served.url}/toolsets/reading/v1/tools", headers=bearer("alice"))
    names = [tool["function"]["name"] for tool in listed.json()["tools"]]
    assert names == ["listNotes", "getNote", "getStatus"]


EDITS: list[tuple[str, Edit, dict[str, Any], Effect]] = [
    (
        "server-added",
        add_server,
        {"sources": {"more": "added"}, "added": ["more_getStatus"], "settings": []},
        added_server_answers,
    ),
    (
        "server-removed",
        remove_server,
        {
            "sources": {"notes": "removed"},
            "removed": [
                "listNotes",
                "createNote",
                "getNote",
                "deleteNote",
                "updateNote",
                "getStatus",
            ],
            "settings": [],
        },
        removed_server_is_gone,
    ),
    ("key-revoked", revoke_bob, {"settings": ["auth.api_keys"]}, bob_is_refused),
    ("grant-removed", narrow_grant, {"sources": {"notes": "reloaded"}}, alice_no_longer_sees_it),
    ("rate-limit", add_rate_limit, {"settings": ["auth.rate_limit"]}, second_call_is_limited),
    ("valves", imperial_valves, {"sources": {"weather": "reloaded"}}, weather_in_fahrenheit),
    ("headers", add_header, {"sources": {"notes": "reloaded"}}, header_is_sent),
    ("base-url", move_base_url, {"sources": {"notes": "reloaded"}}, calls_go_to_the_new_host),
    ("credentials", change_credentials, {"sources": {"notes": "reloaded"}}, new_token_is_sent),
    ("audit", add_audit, {"settings": ["audit"]}, calls_are_audited),
    ("jwt", add_jwt, {"settings": ["auth.jwt"]}, jwt_callers_are_let_in),
    ("toolsets", add_toolset, {"settings": ["toolsets"]}, toolset_is_served),
]


@pytest.mark.parametrize(
    ("edit", "expected", "effect"), [e[1:] for e in EDITS], ids=[e[0] for e in EDITS]
)
def test_each_edit_takes_effect_at_the_next_reload(
    served: Served,
    tmp_path: Path,
    upstreams: tuple[str, str],
    edit: Edit,
    expected: dict[str, Any],
    effect: Effect,
) -> None:
    config = base_config(upstreams[0])
    edit(config, upstreams)
    write(tmp_path, config)

    answer = served.reload()

    assert answer.status_code == 200
    want = {"applied": True, "sources": {}, "added": [], "removed": [], "changed": []}
    want["settings"] = []
    want.update(expected)
    assert changed(answer.json()) == want
    effect(served, upstreams, tmp_path)


def kept_alive_after(url: str, idle: float) -> bool:
    """Whether a kept-alive connection that answered one request is still open after `idle`
    seconds of nothing (the server closes it at its keep-alive timeout)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            answer += sock.recv(4096)
        time.sleep(idle)
        sock.settimeout(0.5)
        try:
            return sock.recv(1) != b""  # b"": closed by the server
        except TimeoutError:
            return True  # nothing to read, and not closed
        except ConnectionResetError:
            return False


@pytest.mark.parametrize("workers", [1, 2])
def test_http_limits_apply_to_every_connection_from_the_next_reload(
    tmp_path: Path, upstreams: tuple[str, str], workers: int
) -> None:
    """`http`'s connection limits are the config of the moment on every worker: a head with
    more fields than `max_headers` is refused (431), an idle kept-alive connection is closed
    after `keep_alive_timeout`, from the reload on."""
    config = base_config(upstreams[0])
    folder = folder_for(tmp_path, config)
    many = {f"x-field-{i}": "v" for i in range(60)}
    served = Served(folder, *(("--workers", str(workers)) if workers > 1 else ()))
    try:
        before = [httpx2.get(f"{served.url}/healthz", headers=many).status_code for _ in range(6)]
        open_before = kept_alive_after(served.url, 1.5)
        write(folder, {**config, "http": {"max_headers": 50, "keep_alive_timeout": 0.5}})
        reloaded = served.reload()
        after = [httpx2.get(f"{served.url}/healthz", headers=many).status_code for _ in range(6)]
        open_after = [kept_alive_after(served.url, 1.5) for _ in range(4)]
    finally:
        served.stop()
    assert reloaded.json()["settings"] == ["http"]
    assert (before, open_before) == ([200] * 6, True)
    assert (after, open_after) == ([431] * 6, [False] * 4)


@pytest.mark.parametrize("workers", [1, 2])
def test_who_may_read_metrics_is_the_config_of_the_moment(
    tmp_path: Path, upstreams: tuple[str, str], workers: int
) -> None:
    """`auth.metrics`: `/metrics` names the tools called (admin-only ones too), so an operator
    may keep it to callers with a key (a scraper's, with no grants) or to admins; every
    worker follows the reload."""
    config = base_config(upstreams[0])
    folder = folder_for(tmp_path, config)
    served = Served(folder, *(("--workers", str(workers)) if workers > 1 else ()))

    def statuses() -> list[tuple[int, int, int]]:
        url = f"{served.url}/metrics"
        return [
            (
                httpx2.get(url).status_code,
                httpx2.get(url, headers=bearer("alice")).status_code,
                httpx2.get(url, headers=bearer("ops")).status_code,
            )
            for _ in range(4)
        ]

    try:
        public = statuses()
        write(folder, {**config, "auth": {**config["auth"], "metrics": "callers"}})
        said = [served.reload().json()["settings"]]
        callers = statuses()
        write(folder, {**config, "auth": {**config["auth"], "metrics": "admins"}})
        said.append(served.reload().json()["settings"])
        admins = statuses()
        refused = httpx2.get(f"{served.url}/metrics", headers=bearer("alice")).json()
    finally:
        served.stop()
    assert said == [["auth.metrics"], ["auth.metrics"]]
    assert (public, callers, admins) == (
        [(200, 200, 200)] * 4,
        [(401, 200, 200)] * 4,
        [(401, 403, 200)] * 4,
    )
    assert refused == {
        "error": {
            "type": "forbidden",
            "message": "`/metrics` is for admins (`auth.metrics: admins`)",
        }
    }


# -- what a reload answers, and what it refuses ---------------------------------------------------


def test_a_dry_run_answers_the_diff_and_changes_nothing(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    config = base_config(upstreams[0])
    add_server(config, upstreams)
    config["servers"][0]["include"] = {"operations": ["getStatus", "listNotes"]}
    write(tmp_path, config)

    dry = served.reload(dry_run=True)
    unsure = httpx2.post(
        f"{served.url}/v1/admin/reload?dry_run=on", headers=bearer("ops"), timeout=60
    )

    assert (dry.status_code, changed(dry.json())) == (
        200,
        {
            "applied": False,
            "sources": {"notes": "reloaded", "more": "added"},
            "added": ["more_getStatus"],
            "removed": ["createNote", "getNote", "deleteNote", "updateNote"],
            "changed": [],
            "settings": [],
        },
    )
    assert (served.call("more_getStatus").status_code, served.call("getNote").status_code) == (
        404,
        422,  # still there: it only lacks its argument
    )
    assert (unsure.status_code, unsure.json()["error"]["message"]) == (
        400,
        "`dry_run`: expected true or false (also 1/0, yes/no), found 'on'",
    )


def test_a_changed_description_is_a_changed_tool(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    spec = tmp_path / "specs" / "demo.yaml"
    spec.write_text(spec.read_text().replace("summary: Service status", "summary: Is it up?"))

    answer = served.reload().json()

    [change] = answer["tools"]["changed"]
    descriptions = change.pop("description")
    assert change == {"name": "getStatus", "fields": ["description", "annotations"]}
    assert (descriptions["before"].split("\n")[0], descriptions["after"].split("\n")[0]) == (
        "Service status",
        "Is it up?",
    )


def test_an_invalid_config_is_refused_whole_and_the_running_one_keeps_serving(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    config = base_config(upstreams[0])
    revoke_bob(config, upstreams)
    config["servers"][0]["spek"] = "typo"
    write(tmp_path, config)

    refused = served.reload()

    lines = (tmp_path / "toolbridge.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "spek:" in text)
    assert (refused.status_code, refused.json()["error"]) == (
        422,
        {
            "type": "invalid_config",
            "message": f"toolbridge.yaml:{line}: servers[0].spek: unknown key 'spek'",
        },
    )
    assert served.call("getStatus", user="bob").status_code == 200  # nothing was applied
    assert "servers[0].spek: unknown key 'spek'" in served.log.read_text()


def test_a_config_naming_an_audit_file_that_cannot_be_opened_is_refused(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    config = base_config(upstreams[0])
    config["audit"] = {"file": "no-such-folder/calls.jsonl"}
    write(tmp_path, config)

    refused = served.reload()

    message = (
        f"audit.file: cannot open {tmp_path.resolve()}/no-such-folder/calls.jsonl: "
        "No such file or directory"
    )
    assert (refused.status_code, refused.json()["error"]) == (
        422,
        {"type": "invalid_config", "message": message},
    )
    assert served.call("getStatus").status_code == 200
    assert f"reload refused, still serving the last config: {message}" in served.log.read_text()


def test_a_reload_does_not_remove_auth(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    """Without `auth` every caller would be an anonymous admin: that takes a restart."""
    config = base_config(upstreams[0])
    del config["auth"]
    write(tmp_path, config)

    refused = served.reload()

    assert (refused.status_code, refused.json()["error"]) == (
        422,
        {
            "type": "invalid_config",
            "message": "the config has no `auth` section any more: a reload does not remove it "
            "(every caller would be an anonymous admin); restart the gateway to serve without "
            "it",
        },
    )
    anonymous = httpx2.get(f"{served.url}/v1/tools", timeout=10)
    assert (anonymous.status_code, served.call("getStatus").status_code) == (401, 200)


def test_a_reload_does_not_move_the_state_store(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    """Writes would go on to the open store while `export` and the next start read the other:
    what the admin API registered would be gone at the next start."""
    config = base_config(upstreams[0])
    config["state"] = {"url": "sqlite:///other/state.db"}
    write(tmp_path, config)

    refused = served.reload()

    assert (refused.status_code, refused.json()["error"]) == (
        422,
        {
            "type": "invalid_config",
            "message": f"the config names another state store (sqlite:///{tmp_path}/other/"
            f"state.db) than the one open (sqlite:///{tmp_path}/toolbridge-state.db): a reload "
            "does not move it, as it holds what the admin API registered and each caller's data; "
            "restart the gateway to use the other",
        },
    )
    assert not (tmp_path / "other").exists()


def test_the_config_file_is_watched(tmp_path: Path, upstreams: tuple[str, str]) -> None:
    config = base_config(upstreams[0])
    config["watch"] = True
    folder_for(tmp_path, config)
    served = Served(tmp_path)
    try:
        add_server(config, upstreams)
        write(tmp_path, config)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and served.call("more_getStatus").status_code != 200:
            time.sleep(0.2)
        assert served.call("more_getStatus").status_code == 200
        revoke_bob(config, upstreams)
        write(tmp_path, config)
        while time.monotonic() < deadline and served.call("getStatus", "bob").status_code != 401:
            time.sleep(0.2)
        assert served.call("getStatus", "bob").status_code == 401
    finally:
        served.stop()


def test_a_config_behind_a_swapped_symlink_is_watched_and_reloaded_by_every_worker(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    """A Kubernetes ConfigMap: toolbridge.yaml -> ..data/toolbridge.yaml, ..data -> ..v1, and an
    update swaps ..data to ..v2 whole (the old folder then goes). Every read follows the link
    as it is then."""
    config = base_config(upstreams[0])
    config["watch"] = True
    folder_for(tmp_path, config)
    (tmp_path / "toolbridge.yaml").unlink()

    def version(name: str, text: str) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "toolbridge.yaml").write_text(text)
        (tmp_path / "..data_tmp").symlink_to(name)
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")

    config["servers"][0]["spec"] = str(tmp_path / "specs" / "demo.yaml")
    version("..v1", yaml.safe_dump(config))
    (tmp_path / "toolbridge.yaml").symlink_to("..data/toolbridge.yaml")
    served = Served(tmp_path, "--workers", "2")
    try:
        add_server(config, upstreams)
        config["servers"][1]["spec"] = str(tmp_path / "specs" / "demo.yaml")
        version("..v2", yaml.safe_dump(config))
        shutil.rmtree(tmp_path / "..v1")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            # Each worker watches the file itself: the second may follow the first by a look.
            answers = {served.call("more_getStatus").status_code for _ in range(8)}  # both
            if answers == {200}:
                break
            time.sleep(0.2)
        reloaded = served.reload()
    finally:
        served.stop()
    assert (answers, reloaded.status_code) == ({200}, 200)
    assert "cannot be read" not in served.log.read_text()


def test_sighup_reloads_the_config(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    config = base_config(upstreams[0])
    revoke_bob(config, upstreams)
    write(tmp_path, config)

    served.process.send_signal(signal.SIGHUP)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and served.call("getStatus", "bob").status_code != 401:
        time.sleep(0.2)
    assert served.call("getStatus", "bob").status_code == 401


def test_toolbridge_reload_from_a_shell(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    config = base_config(upstreams[0])
    add_server(config, upstreams)
    write(tmp_path, config)
    env = {**os.environ, "TOOLBRIDGE_API_KEY": KEYS["ops"]}
    command = [sys.executable, "-m", "toolbridge", "reload", "--url", served.url]

    dry = subprocess.run(
        [*command, "--dry-run"], env=env, capture_output=True, text=True, check=False
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    again = subprocess.run(
        [*command, "--dry-run"], env=env, capture_output=True, text=True, check=False
    )
    refused = subprocess.run(
        command,
        env={**env, "TOOLBRIDGE_API_KEY": KEYS["alice"]},
        capture_output=True,
        text=True,
        check=False,
    )

    assert (dry.returncode, dry.stdout) == (
        0,
        "more: added (1 tool)\ntools added: more_getStatus\n"
        "would change (dry run): 9 tools in all\n",
    )
    assert (done.returncode, done.stdout) == (
        0,
        "more: added (1 tool)\ntools added: more_getStatus\napplied: 9 tools in all\n",
    )
    assert (again.returncode, again.stdout) == (
        0,
        "nothing would change (dry run): 9 tools in all\n",
    )
    assert (refused.returncode, refused.stderr) == (
        1,
        "toolbridge: reload refused (403): reloading is for admins "
        "(set TOOLBRIDGE_API_KEY to an admin's key)\n",
    )


# -- holding a changed document ------------------------------------------------------------------


def document_server(text: list[str]) -> Starlette:
    """Serves `text[0]` as the document at /openapi.yaml, and echoes everything else."""
    echo = create_upstream()

    async def document(request: Request) -> Response:
        return Response(text[0], media_type="application/yaml")

    return Starlette(routes=[Route("/openapi.yaml", document), *echo.routes])


def test_a_held_source_serves_its_approved_document_until_the_change_is_approved(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    original = (ROOT / "specs" / "demo.yaml").read_text()
    text = [original]
    with live_server(document_server(text)) as docs:
        config = base_config(upstreams[0])
        config["servers"] = [
            {
                "id": "notes",
                "spec": f"{docs}/openapi.yaml",
                "base_url": docs,
                "on_change": "hold",
                "access": {"groups": ["support"]},
            }
        ]
        folder_for(tmp_path, config)
        served = Served(tmp_path)
        try:
            text[0] = original.replace("summary: Service status", "summary: Is it up?").replace(
                "operationId: deleteNote", "operationId: removeNote"
            )
            answer = served.reload().json()
            # Registering another source reloads that one only: the held change still waits.
            extra = {"id": "extra", "spec": f"{docs}/openapi.yaml", "prefix": "extra"}
            registered = httpx2.post(
                f"{served.url}/v1/admin/servers", json=extra, headers=bearer("ops"), timeout=30
            )
            servers = httpx2.get(f"{served.url}/v1/servers", headers=bearer("ops")).json()
            served_description = httpx2.get(
                f"{served.url}/v1/tools/getStatus", headers=bearer("ops")
            ).json()["description"]
            approved = httpx2.post(
                f"{served.url}/v1/admin/sources/notes/approve", headers=bearer("ops"), timeout=30
            )
            after = httpx2.get(f"{served.url}/v1/tools/getStatus", headers=bearer("ops")).json()
            again = httpx2.post(
                f"{served.url}/v1/admin/sources/notes/approve", headers=bearer("ops")
            )
        finally:
            served.stop()
    assert changed(answer) == {
        "applied": True,
        "sources": {"notes": "held"},
        "added": [],
        "removed": [],
        "changed": [],
        "settings": [],
    }
    assert registered.status_code == 201
    held = servers["servers"][0]["held"]
    assert (held["tools"]["added"], held["tools"]["removed"]) == (["removeNote"], ["deleteNote"])
    assert [(c["name"], c["fields"]) for c in held["tools"]["changed"]] == [
        ("getStatus", ["description", "annotations"])
    ]
    assert held["approved_sha256"] == servers["servers"][0]["sha256"] != held["sha256"]
    assert served_description.startswith("Service status")
    assert (approved.status_code, changed(approved.json())) == (
        200,
        {
            "applied": True,
            "sources": {"notes": "reloaded"},
            "added": ["removeNote"],
            "removed": ["deleteNote"],
            "changed": [("getStatus", ["description", "annotations"])],
            "settings": [],
        },
    )
    assert after["description"].startswith("Is it up?")
    assert (again.status_code, again.json()["error"]["message"]) == (
        404,
        "source 'notes' has no held change to approve",
    )


def test_a_held_source_keeps_its_approved_version_across_restarts(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    """The approved version is kept in the state store (SQLite beside the config): a document
    that changed while the gateway was down is held at the next start, not served."""
    original = (ROOT / "specs" / "demo.yaml").read_text()
    text = [original]

    def status_description(served: Served) -> str:
        tool = httpx2.get(f"{served.url}/v1/tools/getStatus", headers=bearer("ops")).json()
        return next(s for s in ("Service status", "Is it up?") if tool["description"].startswith(s))

    def held(served: Served) -> Any:
        servers = httpx2.get(f"{served.url}/v1/servers", headers=bearer("ops")).json()
        return servers["servers"][0].get("held")

    with live_server(document_server(text)) as docs:
        config = base_config(upstreams[0])
        config["servers"] = [
            {
                "id": "notes",
                "spec": f"{docs}/openapi.yaml",
                "on_change": "hold",
                "access": {"groups": ["support"]},
            }
        ]
        folder_for(tmp_path, config)
        first = Served(tmp_path, log="first.log")
        seen = [(status_description(first), held(first))]
        # A source registered through the admin API is read again at each start: that must
        # not make the held one's new documents approved on the way.
        extra = {"id": "extra", "spec": f"{docs}/openapi.yaml", "prefix": "extra"}
        registered = httpx2.post(
            f"{first.url}/v1/admin/servers", json=extra, headers=bearer("ops"), timeout=30
        )
        first.stop()
        text[0] = original.replace("summary: Service status", "summary: Is it up?")
        second = Served(tmp_path, log="second.log")
        try:
            seen.append((status_description(second), held(second)))
            approved = httpx2.post(
                f"{second.url}/v1/admin/sources/notes/approve", headers=bearer("ops"), timeout=30
            )
            seen.append((status_description(second), held(second)))
        finally:
            second.stop()
        third = Served(tmp_path, log="third.log")
        seen.append((status_description(third), held(third)))
        third.stop()

    assert (registered.status_code, approved.status_code) == (201, 200)
    assert [(description, bool(waiting)) for description, waiting in seen] == [
        ("Service status", False),
        ("Service status", True),  # changed while down: held, the approved version served
        ("Is it up?", False),
        ("Is it up?", False),  # approved before the restart
    ]
    assert [c["name"] for c in seen[1][1]["tools"]["changed"]] == ["getStatus"]
    log = (tmp_path / "second.log").read_text()
    assert "source notes: its documents changed while the gateway was down" in log


# -- several workers ----------------------------------------------------------------------------


def test_every_worker_applies_a_reload_before_it_is_answered(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    config = base_config(upstreams[0])
    folder_for(tmp_path, config)
    served = Served(tmp_path, "--workers", "2")
    try:
        # /readyz answered from one worker; the other may still be starting (a loaded machine).
        deadline = time.monotonic() + 60
        while served.reload().json()["workers"]["total"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        edited = deepcopy(config)
        add_server(edited, upstreams)
        revoke_bob(edited, upstreams)
        write(tmp_path, edited)
        answer = served.reload()
        # Fresh connections, so the kernel spreads them over both workers.
        seen = [
            (
                served.call("more_getStatus").status_code,
                served.call("getStatus", "bob").status_code,
            )
            for _ in range(20)
        ]
    finally:
        served.stop()
    assert (answer.status_code, answer.json()["workers"]) == (200, {"total": 2, "applied": 2})
    assert set(seen) == {(200, 401)}
    # Each worker logs as `serve` does (a worker's own process had no log setup).
    applied = [line for line in served.log.read_text().splitlines() if "reloaded: added" in line]
    assert len(applied) == 2
    assert all(re.match(r"\d{4}-\d\d-\d\d .* INFO toolbridge\.", line) for line in applied)


# -- who is told ----------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_listening_mcp_clients_are_told_only_of_reloads_that_change_their_tools(
    served: Served, tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    """Each notification makes every listening client list the whole catalog again: a reload
    that changed nothing (or a down source's retry) says nothing."""
    async with (
        httpx2.AsyncClient(headers=bearer("alice"), timeout=10) as http,
        Client(streamable_http_client(f"{served.url}{MCP_PATH}", http_client=http)) as client,
        client.listen(tools_list_changed=True) as heard,
    ):
        assert heard.honored.tools_list_changed is True
        same = await anyio.to_thread.run_sync(served.reload)
        assert changed(same.json())["sources"] == {}
        with anyio.move_on_after(2) as quiet:
            await anext(aiter(heard))
        config = base_config(upstreams[0])
        add_server(config, upstreams)
        write(tmp_path, config)
        await anyio.to_thread.run_sync(served.reload)
        with anyio.fail_after(10):
            told = await anext(aiter(heard))
    assert (quiet.cancelled_caught, told) == (True, ToolsListChanged())


def _workers(pid: int) -> list[int]:
    """The worker processes of the `serve` at `pid` (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"resource_tracker" not in command:
            found.append(int(stat.parent.name))
    return found


def test_a_worker_started_after_a_refused_edit_serves_what_its_siblings_serve(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    """The file holds an edit the workers refused; a worker that dies is started again by the
    supervisor. It served the file's edit's error as a traceback, every second, until the file
    was mended; now it serves the config its siblings serve, and says why once."""
    config = base_config(upstreams[0])
    add_server(config, upstreams)
    folder_for(tmp_path, config)
    served = Served(tmp_path, "--workers", "2")
    try:
        (tmp_path / "toolbridge.yaml").write_text(
            (tmp_path / "toolbridge.yaml").read_text() + "spek: nope\n"
        )
        refused = served.reload()
        dead, _ = sorted(_workers(served.process.pid))
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(set(_workers(served.process.pid)) - {dead}) < 2:
            time.sleep(0.2)
        time.sleep(2)  # the new one started
        answers = {served.call("more_getStatus").status_code for _ in range(12)}
    finally:
        served.stop()
    log = served.log.read_text()
    assert (refused.status_code, answers, "Traceback" in log) == (422, {200}, False)
    assert log.count("this worker serves the config its siblings serve") == 1


SLOW_TOOL = """\
import pathlib, time
if not pathlib.Path("started").exists():  # the first load only
    pathlib.Path("started").write_text("")
    time.sleep(4)
class Tools:
    def nap(self) -> str:
        return "rested"
"""


@pytest.mark.parametrize("edited", ["config", "document"])
def test_an_edit_made_while_the_gateway_starts_is_applied_once_it_serves(
    tmp_path: Path, upstreams: tuple[str, str], edited: str
) -> None:
    """A start takes seconds (a large catalog, a slow tool file): an edit of the config or of a
    document made after it was read and before the watcher first looks is a change all the
    same, not one left unseen until the file changes again."""
    config = base_config(upstreams[0])
    config["watch"] = True
    config["tools"].append({"id": "slow", "path": "tools/slow.py"})
    folder = folder_for(tmp_path, config)
    (folder / "tools" / "slow.py").write_text(SLOW_TOOL)
    document = folder / "specs" / "demo.yaml"
    said = "Says whether the service is up"

    def edit_while_starting() -> None:
        deadline = time.monotonic() + 60
        while not (folder / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if edited == "config":
            add_server(config, upstreams)
            write(folder, config)
        else:
            document.write_text(document.read_text().replace(said, "Says if the service is up"))

    def seen(served: Served) -> tuple[int, bool]:
        listed = httpx2.get(f"{served.url}/v1/tools", headers=bearer("alice")).json()
        (description,) = [
            t["function"]["description"]
            for t in listed["tools"]
            if t["function"]["name"] == "getStatus"
        ]
        return served.call("more_getStatus").status_code, said not in description

    expected = (200, False) if edited == "config" else (404, True)
    editing = threading.Thread(target=edit_while_starting)
    editing.start()
    served = Served(folder)
    try:
        editing.join()
        deadline = time.monotonic() + 15
        while (found := seen(served)) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        served.stop()
    assert found == expected
