"""A real `toolbridge serve` as a subprocess on a free loopback port, for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2

KEYS = {"alice": "alice-0f1e2d3c", "bob": "bob-4b5a6978", "ops": "ops-8c9d0e1f"}
"""The API keys the end-to-end configs give their callers."""


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[user]}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A running `toolbridge serve` and the file its log goes to."""

    def __init__(
        self,
        folder: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        log: str = "serve.log",
        until: str = "/readyz",
    ) -> None:
        """Start it, and wait until `until` answers 200 (`/healthz`: up, if not ready)."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / log
        self.env = dict(env or {})
        env = {**os.environ, "TOOLBRIDGE_CACHE_DIR": "", **self.env}
        command = [sys.executable, "-m", "toolbridge", "serve", "--port", str(port), *args]
        with self.log.open("w") as written:
            self.process = subprocess.Popen(
                command, cwd=folder, env=env, stderr=written, stdout=subprocess.DEVNULL, text=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()}")
            try:
                if httpx2.get(f"{self.url}{until}", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not start: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def reload(self, *, dry_run: bool = False) -> httpx2.Response:
        query = "?dry_run=true" if dry_run else ""
        return httpx2.post(f"{self.url}/v1/admin/reload{query}", headers=bearer("ops"), timeout=60)

    def call(self, tool: str, user: str = "alice", **arguments: Any) -> httpx2.Response:
        return httpx2.post(
            f"{self.url}/v1/tools/{tool}/call", json=arguments, headers=bearer(user), timeout=10
        )
