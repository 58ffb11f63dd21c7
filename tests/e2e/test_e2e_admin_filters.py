"""Filters registered through the admin API of a real `toolbridge serve` (SQLite beside the
config): they act on the next call, change and go without a restart, outlive one, are
exported; the config file's filters stay read-only; a bad one is refused with its error.

A canary secret goes in as a filter's Valve; it must come back out nowhere: not in answers,
listings, the audit log, the server's log, the export, nor in clear in the database file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.e2e.conftest import live_server
from tests.e2e.serving import KEYS, Served, bearer
from tests.e2e.test_e2e_state import SHOUT, get, post, put

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-filter-valve-5e7a1c9b3d"

CONFIG: dict[str, Any] = {
    "watch": False,
    "auth": {
        "api_keys": [
            {"user": "alice", "key": KEYS["alice"], "groups": ["support"]},
            {"user": "ops", "key": KEYS["ops"], "admin": True},
        ]
    },
    "tools": [{"id": "weather", "path": "tools/weather.py", "access": {"groups": ["support"]}}],
    "filters": [{"id": "guard", "path": "filters/guard.py", "sources": ["weather"]}],
}

MASK = '''"""
title: Mask
description: Hide one word in what tools answer.
version: 1.0.0
"""

from pydantic import BaseModel


class Filter:
    class Valves(BaseModel):
        word: str = "sunny"
        mask: str = "[hidden]"
        api_key: str = ""

    def __init__(self):
        self.valves = self.Valves()

    def outlet(self, body: dict, __user__: dict | None = None) -> dict:
        keyed = " (keyed)" if self.valves.api_key else ""
        body["result"] = body["result"].replace(self.valves.word, self.valves.mask) + keyed
        return body
'''

NO_ATLANTIS = '''"""
title: No Atlantis
"""


class Filter:
    def inlet(self, body: dict) -> dict:
        if body["arguments"].get("city") == "Atlantis":
            raise ValueError("Atlantis is not on any map")
        return body
'''


@pytest.fixture
def env() -> dict[str, str]:
    return {"TOOLBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for kind, name in (("tools", "weather.py"), ("filters", "guard.py")):
        (tmp_path / kind).mkdir()
        shutil.copy(ROOT / "tests" / "fixtures" / kind / name, tmp_path / kind / name)
    (tmp_path / "toolbridge.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    return tmp_path


@pytest.fixture
def served(folder: Path, env: dict[str, str]) -> Iterator[Served]:
    server = Served(folder, env=env)
    yield server
    server.stop()


def weather(served: Served, city: str) -> Any:
    answer = served.call("get_weather", city=city)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def delete(served: Served, path: str) -> httpx2.Response:
    return httpx2.delete(served.url + path, headers=bearer("ops"), timeout=60)


def mask(**extra: Any) -> dict[str, Any]:
    return {
        "id": "mask",
        "content": MASK,
        "tools": ["get_*"],
        "valves": {"api_key": CANARY, "word": "sunny"},
        **extra,
    }


def test_registered_filters_act_on_the_next_call_change_and_go_without_a_restart(
    served: Served,
) -> None:
    before = weather(served, "Lisbon")
    masked = post(served, "/v1/admin/filters", mask())
    refusing = post(served, "/v1/admin/filters", {"id": "no_atlantis", "content": NO_ATLANTIS})
    after = (weather(served, "Lisbon"), weather(served, "Atlantis"))
    valves = put(served, "/v1/admin/filters/mask/valves", {"word": "Lisbon", "api_key": "********"})
    with_valves = weather(served, "Lisbon")
    edited = put(
        served,
        "/v1/admin/filters/mask",
        {"content": MASK.replace("[hidden]", "[gone]"), "tools": ["forecast"]},
    )
    out_of_scope = weather(served, "Lisbon")
    deleted = delete(served, "/v1/admin/filters/no_atlantis")
    atlantis_again = weather(served, "Atlantis")
    listed = get(served, "/v1/admin/filters")
    audit = [(e["action"], e["target"]) for e in get(served, "/v1/admin/audit").json()["audit"]]
    described = {f["id"]: f["status"] for f in get(served, "/v1/servers").json()["filters"]}

    sunny = "sunny, 21 °C (asked by alice, key set: False)"
    assert before == f"Lisbon: {sunny}"
    assert (masked.status_code, refusing.status_code) == (201, 201), masked.text + refusing.text
    assert masked.json()["filter"] == {
        "id": "mask",
        "origin": "api",
        "entry": {"id": "mask", "tools": ["get_*"]},
        "content_sha256": hashlib.sha256(MASK.encode()).hexdigest(),
        "valves": {"api_key": "********", "word": "sunny"},
        "updated_at": masked.json()["filter"]["updated_at"],
        "updated_by": "ops",
        "revision": int(masked.headers["etag"].strip('"')),  # its write's number in the feed
    }
    assert after == (
        "Lisbon: [hidden], 21 °C (asked by alice, key set: False) (keyed)",
        "refused by filter 'no_atlantis': Atlantis is not on any map",
    )
    assert (valves.status_code, valves.json()["valves"]) == (
        200,
        {"word": "Lisbon", "api_key": "********"},
    )
    assert with_valves == f"[hidden]: {sunny} (keyed)"
    assert (edited.status_code, out_of_scope) == (200, f"Lisbon: {sunny}")
    assert (deleted.status_code, deleted.json()["deleted"]) == (200, "no_atlantis")
    assert atlantis_again == f"Atlantis: {sunny}"
    assert [(f["id"], f["origin"], f.get("valves")) for f in listed.json()["filters"]] == [
        ("guard", "config", None),
        ("mask", "api", {"api_key": "********", "word": "Lisbon"}),
    ]
    assert audit[:5] == [
        ("filter.delete", "no_atlantis"),
        ("filter.update", "mask"),
        ("filter_valves.update", "mask"),
        ("filter.create", "no_atlantis"),
        ("filter.create", "mask"),
    ]
    assert described == {"guard": "ok", "mask": "ok"}
    everything = masked.text + refusing.text + valves.text + edited.text + listed.text + str(audit)
    assert CANARY not in everything + served.log.read_text()


def test_a_filter_imported_by_url_is_taken_only_with_its_sha256(served: Served) -> None:
    def filter_file(request: Request) -> Response:
        return PlainTextResponse(NO_ATLANTIS)

    digest = hashlib.sha256(NO_ATLANTIS.encode()).hexdigest()
    with live_server(Starlette(routes=[Route("/no_atlantis.py", filter_file)])) as files:
        body = {"id": "no_atlantis", "url": f"{files}/no_atlantis.py", "sources": ["weather"]}
        wrong = post(served, "/v1/admin/filters/import", {**body, "sha256": "0" * 64})
        right = post(served, "/v1/admin/filters/import", {**body, "sha256": digest})

    assert (wrong.status_code, wrong.json()["error"]["message"]) == (
        422,
        f"{files}/no_atlantis.py: the file's sha256 is {digest}, not the {'0' * 64} given; "
        "nothing was stored",
    )
    assert (right.status_code, right.json()["filter"]["entry"]) == (
        201,
        {"id": "no_atlantis", "sources": ["weather"]},
    )
    assert weather(served, "Atlantis") == (
        "refused by filter 'no_atlantis': Atlantis is not on any map"
    )


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        pytest.param(
            mask(prefx="p"),
            422,
            {"type": "invalid_config", "message": "filters[mask].prefx: unknown key 'prefx'"},
            id="unknown-key",
        ),
        pytest.param(
            mask(priority="first"),
            422,
            {
                "type": "invalid_config",
                "message": "filters[mask].priority: Input should be a valid integer, unable "
                "to parse string as an integer (found a string)",
            },
            id="wrong-type",
        ),
        pytest.param(
            mask(sources=["weather", "nowhere"]),
            422,
            {
                "type": "invalid_config",
                "message": "filters[mask].sources: 'nowhere' is no server or tools id",
            },
            id="unknown-source",
        ),
        pytest.param(
            mask(content="class Tools:\n    pass\n"),
            422,
            {
                "type": "invalid_config",
                "message": "filters[mask]: the file cannot be loaded: filters 'mask': "
                "filters/mask.py: has no `class Filter` (an Open WebUI filter function)",
            },
            id="no-filter-class",
        ),
        pytest.param(
            mask(content="import nowhere_to_be_found\n"),
            422,
            {
                "type": "invalid_config",
                "message": "filters[mask]: the file cannot be loaded: filters 'mask': "
                "filters/mask.py:1: cannot be imported: ModuleNotFoundError: No module named "
                "'nowhere_to_be_found'",
            },
            id="file-does-not-load",
        ),
        pytest.param(
            mask(valves={"word": ["not", "text"]}),
            422,
            {
                "type": "invalid_config",
                "message": "filters[mask]: the file cannot be loaded: filters 'mask': "
                "filters/mask.py: valves.word: Input should be a valid string",
            },
            id="valves-do-not-fit",
        ),
        pytest.param(
            mask(id="guard"),
            409,
            {
                "type": "conflict",
                "message": "'guard' is already a source (defined in toolbridge.yaml); "
                "pick another id",
            },
            id="id-of-the-file",
        ),
        pytest.param(
            mask(id="weather"),
            409,
            {
                "type": "conflict",
                "message": "'weather' is already a source (defined in toolbridge.yaml); "
                "pick another id",
            },
            id="id-of-a-tools-entry",
        ),
    ],
)
def test_a_bad_filter_is_refused_with_its_error_and_nothing_changes(
    served: Served, body: dict[str, Any], status: int, error: dict[str, str]
) -> None:
    answer = post(served, "/v1/admin/filters", body)

    assert (answer.status_code, answer.json()) == (status, {"error": error})
    assert [f["id"] for f in get(served, "/v1/admin/filters").json()["filters"]] == ["guard"]
    assert weather(served, "Lisbon") == "Lisbon: sunny, 21 °C (asked by alice, key set: False)"
    assert CANARY not in answer.text


def test_the_files_filters_are_read_only_and_admins_only_may_write(served: Served) -> None:
    edited = put(served, "/v1/admin/filters/guard", {"content": NO_ATLANTIS})
    valves = put(served, "/v1/admin/filters/guard/valves", {"priority": 3})
    deleted = delete(served, "/v1/admin/filters/guard")
    missing = delete(served, "/v1/admin/filters/nothing")
    by_alice = post(served, "/v1/admin/filters", mask(), user="alice")
    listed_by_alice = get(served, "/v1/admin/filters", user="alice")

    assert [r.status_code for r in (edited, valves, deleted, missing)] == [409, 409, 409, 404]
    assert [r.status_code for r in (by_alice, listed_by_alice)] == [403, 403]
    assert edited.json()["error"]["message"] == (
        "filters 'guard' is defined in toolbridge.yaml: edit the file (the API changes only "
        "the sources it registered)"
    )
    assert missing.json()["error"]["message"] == (
        "no filters entry 'nothing' was registered through the API"
    )
    assert weather(served, "drop table") == (
        "refused by filter 'guard': 'city' mentions 'drop table', which is not allowed"
    )


def test_registered_filters_outlive_a_restart_and_are_exported(
    folder: Path, env: dict[str, str]
) -> None:
    served = Served(folder, env=env)
    try:
        assert post(served, "/v1/admin/filters", mask(priority=2)).status_code == 201
    finally:
        served.stop()
    again = Served(folder, env=env, log="again.log")
    try:
        after_restart = weather(again, "Lisbon")
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

    assert after_restart == "Lisbon: [hidden], 21 °C (asked by alice, key set: False) (keyed)"
    assert (exported.returncode, exported.stdout) == (
        0,
        "wrote out/toolbridge.registered.yaml: 0 servers, 0 tools, 1 filters\n"
        "set these environment variables to the secrets (not exported):\n"
        "  TOOLBRIDGE_MASK_VALVES_API_KEY\n",
    )
    written = yaml.safe_load((folder / "out" / "toolbridge.registered.yaml").read_text())
    assert written == {
        "servers": [],
        "tools": [],
        "filters": [
            {
                "id": "mask",
                "path": "filters/mask.py",
                "tools": ["get_*"],
                "priority": 2,
                "valves": {"api_key": "${TOOLBRIDGE_MASK_VALVES_API_KEY}", "word": "sunny"},
            }
        ],
    }
    assert (folder / "out" / "filters" / "mask.py").read_text() == MASK
    everything = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert CANARY.encode() not in everything


def test_a_source_a_filter_is_scoped_to_is_not_deleted_from_under_it(served: Served) -> None:
    """Deleting it would leave the filter scoped to nothing, silently: 409 until the filter no
    longer names it."""
    tool = {"id": "shout", "content": SHOUT, "access": {"groups": ["support"]}}
    registered = post(served, "/v1/admin/tools", tool)
    only_shout = {"tools": [], "sources": ["shout"], "valves": {"word": "SUNNY"}}
    scoped = post(served, "/v1/admin/filters", mask(**only_shout))
    refused = delete(served, "/v1/admin/tools/shout")
    still = served.call("shout", text="sunny day")
    unscoped = delete(served, "/v1/admin/filters/mask")
    deleted = delete(served, "/v1/admin/tools/shout")

    assert [r.status_code for r in (registered, scoped)] == [201, 201]
    assert (refused.status_code, refused.json()["error"]) == (
        409,
        {
            "type": "conflict",
            "message": "tools entry 'shout' is in the sources of filter 'mask': take it out of "
            "their `sources` (or delete them) first",
        },
    )
    assert (still.status_code, still.json()["result"]) == (200, "[hidden] DAY!")
    assert [r.status_code for r in (unscoped, deleted)] == [200, 200]
