"""schemathesis against a running `toolbridge serve`: its own `/openapi.json` says exactly what
it accepts, so no generated request, valid or not, finds the two disagreeing.

The gateway serves three kinds of tool: an operation with a header, a path and a query
argument (tests/fixtures/security.yaml, on an upstream that echoes), the demo's notes API, and
the demo's local clock tool. schemathesis generates bounded examples from a fixed seed, with
every check: server errors, schema-valid requests refused, schema-violating requests taken,
answers that do not match their documented schema, authentication.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.fake_upstream import create_upstream
from toolbridge.demo.service import create_demo_app
from toolbridge.serve.loopback import LoopbackServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KEY = "schemathesis-key-0001"
EXAMPLES = 15
SEED = 20261206


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("schemathesis")
    with LoopbackServer(create_upstream()) as echo, LoopbackServer(create_demo_app()) as notes:
        (folder / "toolbridge.yaml").write_text(
            f"""\
auth:
  api_keys:
    - {{user: tester, key: {KEY}, groups: [all]}}
servers:
  - id: echo
    spec: {ROOT}/tests/fixtures/security.yaml
    base_url: {echo.url}
    access: {{groups: [all]}}
  - id: notes
    spec: {ROOT}/specs/demo.yaml
    base_url: {notes.url}
    access: {{groups: [all]}}
tools:
  - id: clock
    path: {ROOT}/src/toolbridge/demo/tools/clock.py
    access: {{groups: [all]}}
"""
        )
        port = free_port()
        command = [sys.executable, "-m", "toolbridge", "serve", "--port", str(port)]
        env = {**os.environ, "TOOLBRIDGE_CACHE_DIR": ""}
        process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx2.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.1)
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_schemathesis_finds_no_failure(gateway: str, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
        "run",
        f"{gateway}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEY}",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--no-color",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert (done.returncode, "No issues found" in done.stdout) == (0, True), done.stdout[-4000:]
