"""Editing a local tool file reloads that entry while the gateway serves; a broken edit keeps
the last good version and says why in /v1/servers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from toolbridge.config import Config, Grant, LocalTools
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = pytest.mark.e2e

VERSION = '''"""
title: Greeter
"""


class Tools:
    def greet(self) -> str:
        """Say hello."""
        return "{text}"
'''


def write(path: Path, text: str, bump: float) -> None:
    path.write_text(text)
    stamp = time.time() + bump  # a later mtime even on coarse file systems
    os.utime(path, (stamp, stamp))


def wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise AssertionError("the reload did not happen in time")


def test_an_edit_reloads_the_tool_and_a_broken_edit_keeps_the_last_good(tmp_path: Path) -> None:
    tool = tmp_path / "greeter.py"
    write(tool, VERSION.format(text="hello"), 0)
    entry = LocalTools(id="greeter", path=str(tool), access=Grant(users=("*",)))
    config = Config(tools=(entry,), base_dir=tmp_path)
    gateway = Gateway(config, upstream=make_upstream())
    gateway.load()
    with LoopbackServer(create_app(gateway), lifespan="on") as server:

        def greeting() -> object:
            answer = httpx2.post(f"{server.url}/v1/tools/greet/call", json={}, timeout=10)
            return answer.json()["result"]

        assert greeting() == "hello"
        write(tool, VERSION.format(text="bonjour"), 5)
        wait_for(lambda: greeting() == "bonjour")
        write(tool, "def broken(:\n", 10)

        def reported() -> bool:
            servers = httpx2.get(f"{server.url}/v1/servers", timeout=10).json()["servers"]
            return bool(servers[0]["error"])

        wait_for(reported)
        assert greeting() == "bonjour"  # the last good version still serves


def test_in_a_folder_an_edit_reloads_that_module_only(tmp_path: Path) -> None:
    folder = tmp_path / "tools"
    folder.mkdir()
    write(folder / "greeter.py", VERSION.format(text="hello"), 0)
    write(folder / "other.py", VERSION.format(text="x").replace("greet", "other"), 0)
    entry = LocalTools(id="team", path=str(folder), access=Grant(users=("*",)))
    gateway = Gateway(Config(tools=(entry,), base_dir=tmp_path), upstream=make_upstream())
    gateway.load()
    before = {t.name: t.target for t in gateway.catalog}
    write(folder / "greeter.py", VERSION.format(text="bonjour"), 5)
    import anyio

    anyio.run(gateway.reload)
    after = {t.name: t.target for t in gateway.catalog}
    assert after["other"] is before["other"]  # the unchanged module was not imported again
    assert after["greet"] is not before["greet"]
    write(folder / "greeter.py", "def broken(:\n", 10)
    anyio.run(gateway.reload)
    final = {t.name: t.target for t in gateway.catalog}
    assert final["greet"] is after["greet"]  # the last good version of that module stays
    (status,) = gateway.sources()
    assert [n.kind for n in status.conversion.notes if n.kind == "module-kept"] == ["module-kept"]  # type: ignore[union-attr]


def test_a_server_down_at_start_is_tried_again_until_it_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its document's URL answers 503 at start; once it answers, the tools appear, with no
    reload asked for."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from toolbridge.config import Server
    from toolbridge.serve import live

    monkeypatch.setattr(live, "DOWN_RETRY", 0.3)
    document = (Path(__file__).resolve().parents[2] / "specs" / "demo.yaml").read_text()
    up = [False]

    async def served(request: Request) -> Response:
        if not up[0]:
            return Response("starting", status_code=503)
        return Response(document, media_type="application/yaml")

    with LoopbackServer(Starlette(routes=[Route("/openapi.yaml", served)])) as docs:
        server = Server(id="notes", spec=f"{docs.url}/openapi.yaml", access=Grant(users=("*",)))
        gateway = Gateway(Config(servers=(server,), base_dir=tmp_path), upstream=make_upstream())
        gateway.load()
        with LoopbackServer(create_app(gateway), lifespan="on") as gateway_server:

            def status() -> int:
                url = f"{gateway_server.url}/v1/tools/getStatus"
                return httpx2.get(url, timeout=10).status_code

            before = status()
            up[0] = True
            wait_for(lambda: status() == 200)
    assert before == 404


DOCUMENT = """\
openapi: 3.0.3
info: {title: Things, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      summary: List things
      parameters: [{$ref: "parameters.yaml#/Limit"}]
      responses: {"200": {description: the things}}
"""


def test_an_edit_of_a_document_or_a_file_it_refers_to_reloads_its_source(
    tmp_path: Path,
) -> None:
    """As a tool file's: the main document and each local file a `$ref` reads are watched; a
    broken edit keeps the last good version and says why."""
    from toolbridge.config import Server

    document, parameters = tmp_path / "things.yaml", tmp_path / "parameters.yaml"
    write(document, DOCUMENT, 0)
    write(parameters, "Limit: {name: limit, in: query, schema: {type: integer}}\n", 0)
    server = Server(
        id="things", spec="things.yaml", base_url="http://127.0.0.1:9", access=Grant(users=("*",))
    )
    gateway = Gateway(Config(servers=(server,), base_dir=tmp_path), upstream=make_upstream())
    gateway.load()
    with LoopbackServer(create_app(gateway), lifespan="on") as running:

        def tool() -> dict[str, Any]:
            found = httpx2.get(f"{running.url}/v1/tools", timeout=10).json()["tools"]
            return {t["function"]["name"]: t["function"] for t in found}

        def arguments() -> list[str]:
            return list(tool()["listThings"]["parameters"]["properties"])

        assert arguments() == ["limit"]
        write(parameters, "Limit: {name: max, in: query, schema: {type: integer}}\n", 5)
        wait_for(lambda: arguments() == ["max"])
        write(document, DOCUMENT.replace("List things", "List every thing"), 10)
        wait_for(lambda: tool()["listThings"]["description"] == "List every thing")
        write(document, "openapi: [\n", 15)

        def reported() -> bool:
            servers = httpx2.get(f"{running.url}/v1/servers", timeout=10).json()["servers"]
            return bool(servers[0]["error"])

        wait_for(reported)
        assert arguments() == ["max"]  # the last good version still serves


def test_documents_read_by_url_are_fetched_side_by_side(tmp_path: Path) -> None:
    """Three slow document URLs hold a start for one fetch's time, not three."""
    import threading

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from toolbridge.config import Server
    from toolbridge.openapi.documents import DocumentStore
    from toolbridge.registry import load_sources

    document = (Path(__file__).resolve().parents[2] / "specs" / "demo.yaml").read_text()
    lock, inflight, most = threading.Lock(), [0], [0]

    async def served(request: Request) -> Response:
        import asyncio

        with lock:
            inflight[0] += 1
            most[0] = max(most[0], inflight[0])
        await asyncio.sleep(0.5)
        with lock:
            inflight[0] -= 1
        return Response(document, media_type="application/yaml")

    with LoopbackServer(Starlette(routes=[Route("/{name}.yaml", served)])) as docs:
        servers = tuple(
            Server(id=f"notes{i}", spec=f"{docs.url}/n{i}.yaml", prefix=f"n{i}") for i in range(3)
        )
        statuses = load_sources(Config(servers=servers, base_dir=tmp_path), DocumentStore())
    assert ([s.id for s in statuses], [s.error for s in statuses], most[0]) == (
        ["notes0", "notes1", "notes2"],
        [None, None, None],
        3,
    )
