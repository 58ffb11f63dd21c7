"""`check`'s spec validation follows only the documents the conversion read.

openapi-spec-validator follows `$ref`s itself (urllib, requests: any URL or file, no deadline):
a document made `check` call a loopback port no server names, the cloud metadata address, and
read host files a URL document may not name. Each case runs `toolbridge check` on real files
beside a loopback server that counts what reaches it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from toolbridge.cli import main
from toolbridge.serve.loopback import LoopbackServer

PARAMETER = {"P": {"name": "q", "in": "query", "schema": {"type": "string"}}}


def document(ref: str) -> dict[str, object]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "v", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {
            "/a": {
                "get": {
                    "operationId": "a",
                    "parameters": [{"$ref": ref}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }


@pytest.fixture
def other() -> tuple[LoopbackServer, list[str], dict[str, object]]:
    """A loopback server that answers `/api.json` with what the test puts in `served`, and
    every other path with PARAMETER, counting those."""
    seen: list[str] = []
    served: dict[str, object] = {}

    async def answer(request: Request) -> JSONResponse:
        if request.url.path == "/api.json":
            return JSONResponse(served["document"])
        seen.append(request.url.path)
        return JSONResponse(PARAMETER)

    return LoopbackServer(Starlette(routes=[Route("/{path:path}", answer)])), seen, served


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str) -> list[str]:
    code = main(["check", "--spec", spec, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    (source,) = report["sources"]
    return list(source["validation"]["findings"])


def test_a_file_a_file_document_refers_to_is_validated_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "parameters.json").write_text(json.dumps(PARAMETER))
    (tmp_path / "api.json").write_text(json.dumps(document("common/parameters.json#/P")))
    assert check(tmp_path, capsys, str(tmp_path / "api.json")) == []


def test_a_file_the_conversion_did_not_read_is_not_read_by_the_validator(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    other: tuple[LoopbackServer, list[str], dict[str, object]],
) -> None:
    """A document read from a URL may not name local files; the validator read them."""
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(PARAMETER))
    server, _, served = other
    ref = f"file://{secret}#/P"
    served["document"] = document(ref)
    with server:
        findings = check(tmp_path, capsys, f"{server.url}/api.json")
    assert findings == [
        f"validation stopped: cannot resolve '{ref}' (not followed: the conversion did not "
        "read that document)"
    ]


@pytest.mark.parametrize("where", ["loopback", "metadata"])
def test_a_url_no_server_may_reach_is_never_asked_for(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    other: tuple[LoopbackServer, list[str], dict[str, object]],
    where: str,
) -> None:
    server, seen, _ = other
    with server:
        base = server.url if where == "loopback" else "http://169.254.169.254"
        ref = f"{base}/latest/meta-data#/P"
        (tmp_path / "api.json").write_text(json.dumps(document(ref)))
        findings = check(tmp_path, capsys, str(tmp_path / "api.json"))
    assert (findings, seen) == (
        [
            f"validation stopped: cannot resolve '{ref}' (not followed: the conversion did "
            "not read that document)"
        ],
        [],
    )
