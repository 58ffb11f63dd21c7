"""`toolbridge serve` as a newcomer runs it: the bundled demo, the README's curl tour, reload.

The gateway runs as a real subprocess in an empty folder (so it serves the demo), on a free
loopback port; the README's `console curl` block is replayed against it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    folder: Path, *args: str, env: dict[str, str] | None = None, group: bool = False
) -> tuple[subprocess.Popen[str], str]:
    """`serve` started in `folder`; with `group`, in a process group of its own (to signal it
    and its workers at once, as systemd does)."""
    port = free_port()
    command = [sys.executable, "-m", "toolbridge", "serve", "--port", str(port), *args]
    env = {**os.environ, "TOOLBRIDGE_CACHE_DIR": "", **(env or {})}
    process = subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=group,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited: {process.stderr.read() if process.stderr else ''}")
        try:
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx2.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("serve did not answer /healthz within 30 s")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start(tmp_path_factory.mktemp("empty"))
    yield url
    stop(process)


def curl_tour() -> list[tuple[str, str]]:
    block = re.search(r"```console curl\n(.*?)```", README.read_text(), re.DOTALL)
    assert block is not None
    lines = block.group(1).splitlines()
    return [(line[2:], out) for line, out in zip(lines[::2], lines[1::2], strict=True)]


@pytest.mark.parametrize(("command", "shown"), curl_tour(), ids=[c for c, _ in curl_tour()])
def test_the_readme_curl_tour(demo: str, command: str, shown: str) -> None:
    """Each curl of the README answers what the README shows (up to its first `...`)."""
    words = shlex.split(command.split("|")[0])
    method = words[words.index("-X") + 1] if "-X" in words else "GET"
    data = words[words.index("-d") + 1] if "-d" in words else None
    path = next(w for w in words if w.startswith("localhost:8080")).removeprefix("localhost:8080")
    response = httpx2.request(method, demo + path, content=data, timeout=10)
    assert response.status_code == 200
    assert response.text.startswith(shown.split("...")[0])


def test_open_mode_is_announced_and_sighup_reloads(tmp_path: Path) -> None:
    process, url = start(tmp_path)
    try:
        assert httpx2.post(f"{url}/v1/tools/getStatus/call", timeout=10).json()["ok"] is True
        process.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert httpx2.get(f"{url}/v1/tools", timeout=10).status_code == 200
    finally:
        err = stop(process)
    assert "OPEN MODE" in err
    assert "reloaded: tools +0 -0 ~0 (9 in all)" in err
    # The demo's state store is made where it was started, never in the installed package.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toolbridge-state.db"]
    assert not list((ROOT / "src" / "toolbridge" / "demo").glob("toolbridge-state.db*"))


def test_mcp_requests_leave_no_line_each_in_the_log(tmp_path: Path) -> None:
    """The MCP SDK said "Terminating session: None" at INFO after every stateless request of
    the 2025-06-18 protocol (mcp 1.x clients, Open WebUI's): most of a soak's log."""
    process, url = start(tmp_path)
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-06-18",
    }
    try:
        answers = [
            httpx2.post(
                f"{url}/mcp",
                json={"jsonrpc": "2.0", "id": n, "method": "tools/list"},
                headers=headers,
                timeout=10,
            )
            for n in range(3)
        ]
    finally:
        err = stop(process)
    assert ([a.status_code for a in answers], "Terminating session" in err) == ([200] * 3, False)


def test_several_workers_serve_one_port_and_leave_no_temporary_folder(tmp_path: Path) -> None:
    """Each worker's folder of registered files goes when `serve` stops (a worker process
    ends without running its exit handlers)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process, url = start(tmp_path, "--workers", "2", env={"TMPDIR": str(temporary)})
    try:
        answers = [httpx2.post(f"{url}/v1/tools/listNotes/call", timeout=10) for _ in range(6)]
        assert {a.json()["ok"] for a in answers} == {True}
        made = sorted(p.name.split("-")[1] for p in temporary.rglob("toolbridge-registered-*"))
    finally:
        stop(process)
    assert made == ["registered"] * 3  # serve's own (it checks the config), and each worker's
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize(("workers", "status"), [("1", 143), ("2", 0)])
def test_sigterm_stops_serve_with_its_cleanup(tmp_path: Path, workers: str, status: int) -> None:
    """As systemd, Docker and Kubernetes stop it: the folders of registered files go (SIGTERM
    killed the process before its cleanup ran). One process says SIGTERM in its status; the
    supervisor of several (uvicorn's) ends as it does, with 0."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process, url = start(tmp_path, "--workers", workers, env={"TMPDIR": str(temporary)})
    try:
        assert httpx2.post(f"{url}/v1/tools/listNotes/call", timeout=10).json()["ok"] is True
        assert list(temporary.iterdir()) != []
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert (process.returncode, list(temporary.iterdir())) == (status, [])


LINGERING = """
import threading
import time


class Tools:
    def linger(self) -> str:
        \"\"\"Start a thread that never ends, and is no daemon.\"\"\"
        threading.Thread(target=lambda: time.sleep(3600), daemon=False).start()
        return "started"
"""


@pytest.mark.parametrize(("workers", "status"), [("1", 143), ("2", 0)])
def test_sigterm_stops_serve_when_a_tool_left_a_thread_running(
    tmp_path: Path, workers: str, status: int
) -> None:
    """Python waits for every non-daemon thread as it exits: one a local tool started and never
    ended kept a stopped `serve` (or its worker) running for ever. Its cleanup still runs."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    (tmp_path / "linger.py").write_text(LINGERING)
    (tmp_path / "toolbridge.yaml").write_text("tools:\n  - {id: linger, path: linger.py}\n")
    process, url = start(tmp_path, "--workers", workers, env={"TMPDIR": str(temporary)})
    try:
        called = [httpx2.post(f"{url}/v1/tools/linger/call", timeout=10) for _ in range(4)]
        assert {c.json()["result"] for c in called} == {"started"}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert (process.returncode, list(temporary.iterdir())) == (status, [])
    if workers == "1":  # (a worker's process ends without waiting for them)
        assert "exiting without waiting for threads still running" in err


def test_metrics_count_every_workers_calls_whichever_answers(tmp_path: Path) -> None:
    """Each scrape reached one worker and showed its counts only: Prometheus saw counters go
    back and forth between them."""
    process, url = start(tmp_path, "--workers", "2")
    try:
        for _ in range(12):  # a connection each: the kernel spreads them over both workers
            with httpx2.Client() as client:
                assert client.post(f"{url}/v1/tools/listNotes/call", timeout=10).status_code == 200
        counts = set()
        for _ in range(8):
            with httpx2.Client() as client:
                text = client.get(f"{url}/metrics", timeout=10).text
            found = re.search(
                r'^toolbridge_tool_calls_total\{outcome="ok",tool="listNotes"\} (\S+)$', text, re.M
            )
            counts.add(found.group(1) if found else None)
    finally:
        stop(process)
    assert counts == {"12.0"}


def test_the_folders_of_a_killed_serve_go_when_the_next_one_starts(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer) gives no cleanup: each such death left a folder of registered
    files in /tmp for good."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    killed, _ = start(tmp_path, env={"TMPDIR": str(temporary)})
    killed.kill()
    killed.communicate(timeout=10)
    left = list(temporary.iterdir())
    process, _ = start(tmp_path, env={"TMPDIR": str(temporary)})
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert (len(left), list(temporary.iterdir())) == (1, [])


def test_workers_stop_when_the_serve_that_started_them_is_killed(
    tmp_path: Path,
) -> None:
    """SIGKILL of `serve --workers` left its workers serving on its port for good, with its
    config, and a `serve` started again could not bind it."""
    port = free_port()
    command = [sys.executable, "-m", "toolbridge", "serve", "--port", str(port)]
    env = {**os.environ, "TOOLBRIDGE_CACHE_DIR": ""}
    killed = subprocess.Popen(
        [*command, "--workers", "2"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        time.sleep(0.1)
    killed.kill()
    killed.wait(10)
    gone_at = None
    for _ in range(100):
        try:
            httpx2.get(f"{url}/healthz", timeout=1)
        except httpx2.TransportError:
            gone_at = time.monotonic()
            break
        time.sleep(0.1)
    _, err = killed.communicate(timeout=10)  # its workers wrote to the same pipe
    assert gone_at is not None, "the workers still answer"
    assert "that started this worker is gone: stopping" in err


STUCK_INIT = """
import time


class Tools:
    def __init__(self):
        time.sleep(300)

    def never(self) -> str:
        return "never"
"""


def test_a_stop_does_not_wait_for_an_admin_uploads_trial_stuck_in_the_files_code(
    tmp_path: Path,
) -> None:
    """The trial ran in asyncio's executor, which a stopping `asyncio.run` waits for without end:
    a `Tools()` that never returned held SIGTERM for its whole 60 s bound."""
    import threading

    (tmp_path / "toolbridge.yaml").write_text("servers: []\n")
    process, url = start(tmp_path)
    upload = {"id": "stuck", "content": STUCK_INIT}
    answers: list[int] = []

    def send() -> None:
        with contextlib.suppress(httpx2.TransportError):  # (the stop may cut it off)
            answer = httpx2.post(f"{url}/v1/admin/tools", json=upload, timeout=120)
            answers.append(answer.status_code)

    threading.Thread(target=send, daemon=True).start()
    time.sleep(2)
    assert answers == []  # the trial is stuck in Tools()
    process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    assert (process.returncode, time.monotonic() - stopped < 15) == (143, True)


def test_a_bad_config_stops_serve_before_it_binds(tmp_path: Path) -> None:
    (tmp_path / "toolbridge.yaml").write_text("servers:\n  - id: pets\n    spek: x.yaml\n")
    done = subprocess.run(
        [sys.executable, "-m", "toolbridge", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "toolbridge: toolbridge.yaml:2: servers[0]: required key 'spec' is missing",
        "toolbridge.yaml:3: servers[0].spek: unknown key 'spek'",
    ]


def test_the_audit_file_gets_one_line_per_call_without_argument_values(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "specs" / "demo.yaml"
    (tmp_path / "toolbridge.yaml").write_text(
        "audit: {file: calls.jsonl}\n"
        f"tools:\n  - id: clock\n    path: {spec.parents[1]}/src/toolbridge/demo/tools/clock.py\n"
        "    access: {users: ['*']}\n"
    )
    process, url = start(tmp_path)
    try:
        arguments = {"start": "2024-01-01", "end": "2024-03-01"}
        answer = httpx2.post(f"{url}/v1/tools/days_between/call", json=arguments, timeout=10)
        assert answer.json()["ok"] is True
    finally:
        stop(process)
    (line,) = (tmp_path / "calls.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert {k: v for k, v in entry.items() if k not in ("time", "duration_ms")} == {
        "event": "tool_call",
        "tool": "days_between",
        "source": "clock",
        "caller": "anonymous",
        "outcome": "ok",
        "status": None,
        "argument_bytes": len(json.dumps(arguments, separators=(",", ":"))),
    }
    assert "2024-01-01" not in line


SLOW = """\
openapi: 3.0.3
info: {title: Slow, version: "1"}
servers: [{url: "BASE"}]
paths:
  /slow:
    post: {operationId: postSlow, responses: {"200": {description: ok}}}
"""


def test_calls_in_flight_when_serve_stops_get_an_answer_in_its_words(tmp_path: Path) -> None:
    """SIGTERM (a deploy) while calls wait on a slow upstream: past the grace period each gets
    a JSON 503 saying the outcome is unknown, not uvicorn's plain-text 500 and a traceback."""
    import threading

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from toolbridge.serve.loopback import LoopbackServer

    async def slow(request: Request) -> JSONResponse:
        import asyncio

        await asyncio.sleep(8)  # past serve's 5 s of grace
        return JSONResponse({})

    with LoopbackServer(Starlette(routes=[Route("/slow", slow, methods=["POST"])])) as upstream:
        (tmp_path / "slow.yaml").write_text(SLOW.replace("BASE", upstream.url))
        (tmp_path / "toolbridge.yaml").write_text("servers:\n  - {id: slow, spec: slow.yaml}\n")
        process, url = start(tmp_path)
        turn = {"tool_calls": [{"id": "c", "function": {"name": "postSlow", "arguments": "{}"}}]}
        answers: list[httpx2.Response] = []

        def ask(path: str, body: object) -> None:
            answers.append(httpx2.post(f"{url}{path}", json=body, timeout=30))

        asking = [
            threading.Thread(target=ask, args=("/v1/tools/postSlow/call", {})),
            threading.Thread(target=ask, args=("/v1/tool_calls", turn)),
        ]
        for thread in asking:
            thread.start()
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        for thread in asking:
            thread.join(30)
        err = stop(process)
    assert [(a.status_code, a.json()["error"]["type"]) for a in answers] == [
        (503, "shutting_down"),
        (503, "shutting_down"),
    ]
    assert "may or may not have taken effect" in answers[0].json()["error"]["message"]
    assert "Exception in ASGI application" not in err


def test_a_stopping_server_refuses_new_connections_at_once(tmp_path: Path) -> None:
    """A rolling restart: from SIGTERM on, a new connection is refused (a load balancer tries
    another replica) while the calls in flight finish; with several workers the supervisor's
    copy of the socket kept it listening, and what queued there was reset when it closed."""
    import threading

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from toolbridge.serve.loopback import LoopbackServer

    async def slow(request: Request) -> JSONResponse:
        import asyncio

        await asyncio.sleep(3)  # within serve's 5 s of grace
        return JSONResponse({"done": True})

    with LoopbackServer(Starlette(routes=[Route("/slow", slow, methods=["POST"])])) as upstream:
        (tmp_path / "slow.yaml").write_text(SLOW.replace("BASE", upstream.url))
        (tmp_path / "toolbridge.yaml").write_text("servers:\n  - {id: slow, spec: slow.yaml}\n")
        process, url = start(tmp_path, "--workers", "2")
        answers: list[httpx2.Response] = []
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx2.post(f"{url}/v1/tools/postSlow/call", json={}, timeout=30)
            )
        )
        asking.start()
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        time.sleep(1)  # the workers have begun to stop; the slow call is still in flight
        late: int | str
        try:
            late = httpx2.get(f"{url}/healthz", timeout=10).status_code
        except httpx2.ConnectError:
            late = "refused"
        asking.join(30)
        stop(process)
    assert (late, [(a.status_code, a.json()["result"]) for a in answers]) == (
        "refused",
        [(200, {"done": True})],
    )


PING_TOOL = 'def ping() -> str:\n    """Answer pong."""\n    return "pong"\n'


class Draining:
    """`serve` on a config with `http.shutdown_delay` and a local tool, each of its workers
    started (`serve` answers once one has: a signal would find the other still loading), and
    its log read as it comes."""

    def __init__(self, folder: Path, delay: float, workers: int, *, group: bool = False) -> None:
        import threading

        (folder / "ping.py").write_text(PING_TOOL)
        (folder / "toolbridge.yaml").write_text(
            f"http: {{shutdown_delay: {delay:g}}}\ntools:\n  - {{id: ping, path: ping.py}}\n"
        )
        more = ("--workers", str(workers)) if workers > 1 else ()
        self.process, self.url = start(folder, *more, group=group)
        self.group = group
        self.lines: list[str] = []
        stream = self.process.stderr
        assert stream is not None
        self._reading = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._reading.start()
        deadline = time.monotonic() + 60
        while self.said("Application startup complete") < workers:
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.1)

    def said(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def signal(self, name: str) -> None:
        number = getattr(signal, f"SIG{name}")
        if self.group:
            os.killpg(self.process.pid, number)
        else:
            self.process.send_signal(number)

    def ready(self) -> int | str:
        try:
            return httpx2.get(f"{self.url}/readyz", timeout=5).status_code
        except httpx2.TransportError:
            return "refused"

    def wait(self, timeout: float) -> int:
        """Its exit status, once it has stopped (its log read to the end)."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL) if self.group else None
                self.process.kill()
                self.process.wait()
            self._reading.join(10)
            assert self.process.stderr is not None
            self.process.stderr.close()
        return code


@pytest.mark.parametrize("workers", [1, 2])
def test_a_shutdown_delay_drains_before_the_stop(tmp_path: Path, workers: int) -> None:
    """`http.shutdown_delay`: from SIGTERM, `/readyz` answers 503 (a load balancer takes the
    replica out) while everything is still served, each answer closing its connection; when
    the delay is over the server stops as without one, and new connections are refused."""
    served = Draining(tmp_path, 4, workers)
    url = served.url
    try:
        assert httpx2.get(f"{url}/readyz", timeout=5).json()["status"] == "ready"
        served.signal("TERM")
        time.sleep(0.5)
        ready = [httpx2.get(f"{url}/readyz", timeout=5) for _ in range(4)]
        called = [httpx2.post(f"{url}/v1/tools/ping/call", json={}, timeout=5) for _ in range(4)]
        alive_while_draining = served.process.poll() is None
    finally:
        code = served.wait(30)
    late = served.ready()
    assert [(r.status_code, r.json()["status"], r.headers["connection"]) for r in ready] == [
        (503, "stopping", "close")
    ] * 4
    assert ready[0].json()["reason"] == (
        "shutting down: draining before the server stops (`http.shutdown_delay`)"
    )
    assert [(c.status_code, c.json()["result"], c.headers["connection"]) for c in called] == [
        (200, "pong", "close")
    ] * 4
    assert (alive_while_draining, code, late) == (True, 143 if workers == 1 else 0, "refused")
    assert served.said("SIGTERM: draining for 4 s") == workers  # each worker drains on its own


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("signals", "to_group", "drained"),
    [
        pytest.param(["TERM", "TERM"], False, True, id="a-second-sigterm"),
        pytest.param(["INT"], False, False, id="sigint"),
        pytest.param(["TERM", "TERM"], True, True, id="sigterm-to-the-group-twice"),
        pytest.param(["INT"], True, False, id="sigint-to-the-group"),
    ],
)
def test_an_operator_who_will_not_wait_is_obeyed(
    tmp_path: Path, workers: int, signals: list[str], to_group: bool, drained: bool
) -> None:
    """A second SIGTERM stops a drain at once, and SIGINT (Ctrl-C) stops without one; sent to
    `serve` (and with `--workers`, its supervisor) or to its whole process group (systemd's
    default, and a terminal's Ctrl-C): there each worker gets the signal itself too. With
    `--workers`, the supervisor passed SIGINT on as SIGTERM (the workers drained), took no
    second SIGTERM, and a SIGTERM to the group reached each worker twice (no drain at all)."""
    served = Draining(tmp_path, 120, workers, group=to_group)
    ready: list[int | str] = []
    try:
        for name in signals:
            served.signal(name)
            time.sleep(1)
            ready.append(served.ready())
    finally:
        code = served.wait(30)  # not 120 s
    draining = served.said("SIGTERM: draining for 120 s")
    if drained:  # draining after the first, stopped after the second
        assert (ready, draining) == ([503, "refused"], workers)
    else:
        assert (ready, draining) == (["refused"], 0)
    assert code == (0 if workers > 1 else {"TERM": 143, "INT": 0}[signals[0]])
