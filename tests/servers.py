"""Real PostgreSQL, Redis and nginx servers for the tests, started by the tests themselves.

Each runs on a free loopback port with its files in a temporary folder of its own; PostgreSQL
and Redis can be stopped and started again on the same port (the fault tests do that). The
binaries come from Debian's packages: `postgresql` (initdb, pg_ctl, postgres, psql in
/usr/lib/postgresql/<ver>/bin), `redis-server` and `nginx`. Under CI (`CI=true`) a missing
binary fails the test with the package to install; elsewhere it skips with the same message.
PostgreSQL refuses to run as root, so when the tests run as root its files belong to, and its
processes run as, the unprivileged `postgres` user (created here if the package did not).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import pytest

START_TIMEOUT = 30.0
"""Seconds a server may take to accept connections before the fixture gives up."""


def unavailable(binary: str, package: str) -> NoReturn:
    """Fail under CI, skip elsewhere, saying which Debian package brings the binary."""
    message = (
        f"{binary!r} was not found: install the Debian package {package!r} "
        f"(apt-get install {package})"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not accept connections on port {port} in {START_TIMEOUT} s")


def _postgres_bin() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path is None:
        unavailable("pg_ctl", "postgresql")
    return Path(on_path).parent


class Postgres:
    """One PostgreSQL cluster on 127.0.0.1:`port`; superuser `toolbridge`, trust auth."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        for name in ("initdb", "postgres", "psql"):
            if not (self.bin / name).exists():
                unavailable(name, "postgresql")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="toolbridge-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            _ensure_user(self.user)
            shutil.chown(self.root, self.user)
        self._names = itertools.count(1)
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", "toolbridge", "--auth=trust"),
            *("--encoding=UTF8", "--locale=C", "--no-sync"),
        )

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bin / program), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        _wait_for_port(self.port, None, "postgres")

    def stop(self) -> None:
        """Stop the server at once (`-m fast`): clients lose their connections."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self) -> str:
        """A new, empty database; its SQLAlchemy-free URL (`postgresql://...`)."""
        name = f"t{next(self._names)}"
        subprocess.run(
            [
                str(self.bin / "psql"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", "toolbridge", "-d", "postgres"),
                *("-q", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'),
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://toolbridge@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _ensure_user(name: str) -> None:
    try:
        subprocess.run(["id", "-u", name], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


class Redis:
    """One redis-server on 127.0.0.1:`port`, without persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server", "redis-server")
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="toolbridge-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)),
            *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
        ]
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_for_port(self.port, self.process, "redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Nginx:
    """Debian's nginx running `config` as it is, in the foreground, until `stop`.

    The config says where it listens (the caller picks a free port and writes it there) and
    logs to standard error and standard output, which go to `log`. Started as root, nginx runs
    its worker as `nobody` and keeps its temporary files in /var/lib/nginx (the package's).
    """

    def __init__(self, config: Path, port: int) -> None:
        binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
        if binary is None:
            unavailable("nginx", "nginx")
        self.binary = binary
        self.config = config
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="toolbridge-nginx-"))
        self.log = self.root / "nginx.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            self.binary,
            *("-c", str(self.config), "-p", str(self.root)),
            *("-g", f"daemon off; pid {self.root / 'nginx.pid'};"),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(self.port, self.process, "nginx")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log.read_text()}") from None

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
