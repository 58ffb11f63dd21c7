"""`toolbridge serve` as processes: the config file or the bundled demo, one process or N
workers, each linked to the state store, then uvicorn.

Everything is loaded and checked before a port is bound, so a bad config stops `serve` with its
file, line and key path. Workers of `--workers N` load the config themselves (the serving
process passes its path, the demo's URL, the log level and a runtime folder in the
environment) and stay in step through that folder (`siblings.py`); every process of every
replica stays in step with the others through the state store (`shared.py`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from toolbridge.calllog import CallLog
from toolbridge.config import Config
from toolbridge.config_file import load_config, read_config_text
from toolbridge.demo import demo_config
from toolbridge.errors import ConfigError
from toolbridge.file_stamps import MISSING, FileStamp, stamp, stamps_now
from toolbridge.gateway import Gateway
from toolbridge.local.imports import stuck, taken_as_stuck
from toolbridge.local.watch import watched_files
from toolbridge.metrics import MULTIPROCESS_ENV
from toolbridge.openapi.documents import cache_dir_from
from toolbridge.redaction import install_log_redaction, secrets_of
from toolbridge.serve import leftovers
from toolbridge.serve.app import App, create_app
from toolbridge.serve.connection import PROTOCOL, set_limits
from toolbridge.serve.draining import stop_when_asked
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.serve.shared import Shared
from toolbridge.serve.siblings import RUNTIME_ENV, Siblings, keep_config
from toolbridge.serve.workers import run_workers
from toolbridge.state.urls import resolve_url
from toolbridge.upstream.clients import make_upstream

logger = logging.getLogger("toolbridge")

CONFIG_ENV = "TOOLBRIDGE_CONFIG_PATH"
DEMO_ENV = "TOOLBRIDGE_DEMO_URL"
LOG_LEVEL_ENV = "TOOLBRIDGE_LOG_LEVEL"
WORKERS_ENV = "TOOLBRIDGE_WORKERS"
STUCK_ENV = "TOOLBRIDGE_STUCK_FILES"
"""The tool and filter files whose code `serve --workers`' check found running past its time:
each worker refuses them at once instead of waiting for them again (`local.imports.stuck`)."""
REPLICA_ENV = "TOOLBRIDGE_REPLICA_ID"
"""Which serving process group a worker belongs to: changes it announced itself through the
state store are not taken again when the feed brings them back."""


def serve(path: Path | None, *, host: str, port: int, workers: int, log_level: str) -> int:
    """Serve the config at `path` (None: the bundled demo) until stopped."""
    _log_to_stderr(log_level)
    demo: LoopbackServer | None = None
    file: ConfigFile | None = None
    if path is None:
        from toolbridge.demo.service import create_demo_app  # starts nothing when unused

        demo = LoopbackServer(create_demo_app()).start()
        config = demo_config(demo.url)
        logger.warning(
            "no -c and no toolbridge.yaml here: serving the bundled demo (its API runs on %s)",
            demo.url,
        )
    else:
        file = ConfigFile(path)  # as given: errors name it the same way
        config = file.load()
        # Absolute, but not resolved: through a symlink (a Kubernetes ConfigMap's `..data`, a
        # `ln -sf` deploy) each read follows it to the file it names then.
        os.environ[CONFIG_ENV] = os.path.abspath(path)
    early = secrets_of(config)
    install_log_redaction(lambda: early)
    set_limits(config.http)
    if config.auth is None:
        logger.warning(
            "no `auth` section: OPEN MODE, every caller is an anonymous admin; "
            "keep the gateway on a loopback address"
        )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": PROTOCOL,  # httptools, with head and body timeouts and head size limits
        "timeout_keep_alive": config.http.keep_alive_timeout,
        "log_level": log_level,
        "access_log": False,  # one structured line per call is ours (calllog.py)
        "timeout_graceful_shutdown": 5,  # open MCP listen streams must not hold shutdown
    }
    os.environ[REPLICA_ENV] = uuid.uuid4().hex
    leftovers.sweep()
    _stop_on_sigterm()
    _exit_when_held(lambda: _STOPPED_BY[-1] if _STOPPED_BY else 0)
    try:
        if workers > 1:
            # Each worker loads the config itself; this checks it first, so a bad one stops
            # here, before any port is bound.
            _gateway(config, path, log_level, _shared(config, path), workers=workers).load()
            os.environ[STUCK_ENV] = json.dumps(stuck())
            if demo is not None:
                os.environ[DEMO_ENV] = demo.url
            os.environ[LOG_LEVEL_ENV] = log_level
            os.environ[WORKERS_ENV] = str(workers)
            with tempfile.TemporaryDirectory(prefix="toolbridge-") as runtime:
                leftovers.mark(Path(runtime))
                os.environ[RUNTIME_ENV] = runtime
                (Path(runtime) / "metrics").mkdir()  # every worker's counts, for any to sum
                os.environ[MULTIPROCESS_ENV] = str(Path(runtime) / "metrics")
                if file is not None and file.text is not None:
                    keep_config(Path(runtime), file.text)  # for a worker started after an edit
                target = "toolbridge.serve.process:worker_app"
                run_workers(uvicorn.Config(target, factory=True, workers=workers, **options))
        else:
            shared = _shared(config, path)
            gateway = _gateway(config, path, log_level, shared)
            install_log_redaction(lambda: gateway.secrets)  # each reload brings its own
            read = _read(file, config)
            catalog = gateway.load()  # everything is loaded and checked before the port is bound
            logger.info("%d tools from %d sources", len(catalog), len(catalog.sources))
            app = create_app(gateway, config_file=path, shared=shared, read=read)
            uvicorn.run(app, **options)
    finally:
        if demo is not None:
            demo.stop()
    return 0


HELD_EXIT_GRACE = 3.0
"""Seconds a stopping process waits for threads that would hold its exit before it ends."""


def _exit_when_held(code: Callable[[], int]) -> None:
    """End the process, once its server has stopped, even if threads would hold it: Python
    waits for every non-daemon thread at exit, and a local tool may have started one that
    never ends (or an admin upload's trial is stuck in a Tools() that never returns), which
    left a stopped `serve` running for ever. Registered to run as the interpreter exits, before
    it joins those threads: a daemon thread gives them `HELD_EXIT_GRACE` seconds, then runs
    the exit handlers (the folders of registered files) and ends the process with `code()`."""

    def watch() -> None:
        time.sleep(HELD_EXIT_GRACE)
        held = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
        logger.warning("exiting without waiting for threads still running: %s", ", ".join(held))
        atexit._run_exitfuncs()
        logging.shutdown()
        os._exit(code())

    def exiting() -> None:
        threading.Thread(target=watch, name="toolbridge-exit", daemon=True).start()

    register = getattr(threading, "_register_atexit", None)  # CPython's, since 3.9
    if register is not None:
        register(exiting)


PARENT_LOOK = 1.0
"""Seconds between a worker's looks at whether the process that started it is still there."""


def _stop_with_parent() -> None:
    """A worker stops (as on SIGTERM: gracefully) once the `serve` process that started it is
    gone. Killed outright (SIGKILL), it cannot stop its workers, which served on, on its port
    and with its config, and a `serve` started again could not bind the port."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_LOOK)
        logger.warning("the serve process %d that started this worker is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="toolbridge-parent", daemon=True).start()


_STOPPED_BY: list[int] = []
"""The exit status a signal gave `serve` (SIGTERM: 143), for an exit no thread may hold."""


def _stop_on_sigterm() -> None:
    """SIGTERM ends `serve` as SIGINT does: with its cleanup (the folder of registered files, the
    workers' runtime folder), exit status 143. uvicorn stops gracefully on it, then raises it
    again under the handler it found; the default one killed the process there, before any
    `finally` or `atexit` ran, and every restart by systemd, Docker or Kubernetes left a folder
    of registered documents and tool files in /tmp."""

    def stopped(signum: int, _frame: object) -> None:
        _STOPPED_BY.append(128 + signum)
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # (not the main thread: nothing to do)
        signal.signal(signal.SIGTERM, stopped)


def worker_app() -> App:
    """The app of one worker process (`--workers N`): it loads the config on its own, and
    follows what its siblings apply (reloads, approvals)."""
    demo_url = os.environ.get(DEMO_ENV)
    path = None if demo_url else Path(os.environ[CONFIG_ENV])
    level = os.environ.get(LOG_LEVEL_ENV, "info")
    _log_to_stderr(level)  # a worker is a process of its own: the parent's setup is not here
    _exit_when_held(lambda: 0)
    _stop_with_parent()
    stop_when_asked()  # the supervisor's signals, while this loads (draining.py)
    siblings = Siblings.from_environ(os.environ)
    file = ConfigFile(path) if path is not None else None
    config = _worker_config(file, siblings) if file is not None else demo_config(demo_url or "")
    shared = _shared(config, path)
    workers = int(os.environ.get(WORKERS_ENV, "1"))
    gateway = _gateway(config, path, level, shared, workers=workers, file=file)
    install_log_redaction(lambda: gateway.secrets)
    set_limits(config.http)
    read = _read(file, config)
    taken_as_stuck(json.loads(os.environ.get(STUCK_ENV) or "[]"))
    gateway.load()

    def applied() -> None:  # the config this worker serves now, for a worker started after
        if file is None or siblings is None or file.text is None:
            return
        if gateway.config is file.served:  # (not one a reload read, then refused)
            siblings.keep_config(file.text)

    return create_app(
        gateway, config_file=path, siblings=siblings, shared=shared, applied=applied, read=read
    )


def _read(file: ConfigFile | None, config: Config) -> dict[Path, FileStamp]:
    """The config file's and local tool files' stamps as they were read (to take before the
    gateway loads): a start takes seconds, and an edit meanwhile must not go unseen."""
    read = stamps_now(watched_files(config))
    if file is not None:
        read[file.path] = file.stamp
    return read


class ConfigFile:
    """The config file as `serve` reads it, at start and at each reload: the text last read,
    and the config served from it (with the sources registered through the admin API)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text: str | None = None
        self.served: Config | None = None
        self.stamp = MISSING
        """The file's stamp when it was last read (taken before: a later edit differs)."""

    def load(self, text: str | None = None) -> Config:
        """The config in the file (or in `text`, as if the file held it)."""
        if text is None:
            self.stamp = stamp(self.path)
            text = read_config_text(self.path)
        config = load_config(self.path, os.environ, text=text)
        self.text = text
        return config


def _worker_config(file: ConfigFile, siblings: Siblings | None) -> Config:
    """The config a worker starts with: the file's; when the file holds an edit its siblings
    refused (they serve the last good one), the config they serve, said once. A worker that
    died was started again every second, each time a traceback, until the file was mended."""
    try:
        return file.load()
    except ConfigError as exc:
        kept = siblings.kept_config() if siblings is not None else None
        if kept is None:
            raise
        logger.error(
            "%s; this worker serves the config its siblings serve, as a reload left it", exc
        )
        return file.load(kept)


def _log_to_stderr(level: str) -> None:
    """toolbridge's log lines at `level` and above, on stderr, with their time, level and logger
    (in `serve`'s process and in each worker's)."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic's setup of its autogenerate plugins: seven lines at every start, saying nothing;
    # the MCP SDK's "Terminating session: None" after every stateless MCP request (46,000 of a
    # soak's 55,000 lines). Both are still there at the debug level.
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for chatty in ("alembic.runtime.plugins", "mcp.server.streamable_http"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def _gateway(
    config: Config,
    path: Path | None,
    level: str,
    shared: Shared,
    *,
    workers: int = 1,
    file: ConfigFile | None = None,
) -> Gateway:
    """The gateway `serve` runs: the parse cache on; at a reload the config is read again from
    `path` (through `file`, which keeps its text; the demo's stays), with the sources
    registered through the admin API added."""
    file = file or (ConfigFile(path) if path is not None else None)

    def reread() -> Config:
        merged = shared.merged(file.load() if file is not None else config)
        if file is not None:
            file.served = merged
        return merged

    return Gateway(
        config,
        upstream=make_upstream(),
        reread=reread,
        cache_dir=cache_dir_from(os.environ),
        call_log=_call_log(level),
        workers=workers,
    )


def _shared(config: Config, path: Path | None) -> Shared:
    """This process's link to the state store: `state.url`, else SQLite beside the config file
    `path` (the working directory for the demo, which has none: never the package's folder);
    registered files go to a folder of this process's own."""
    url = resolve_url(config.state, config.base_dir if path is not None else Path.cwd())
    # A worker's goes in the runtime folder `serve` removes when it stops: a worker process
    # ends without running `atexit`.
    folder = Path(
        tempfile.mkdtemp(prefix="toolbridge-registered-", dir=os.environ.get(RUNTIME_ENV))
    )
    leftovers.mark(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    replica = os.environ.get(REPLICA_ENV) or uuid.uuid4().hex
    shared = Shared(url, folder=folder, replica=replica)
    shared.file_read(config)  # until a reload reads the file again
    return shared


def _call_log(level: str) -> CallLog | None:
    """Without an `audit` in the config (which the gateway opens itself), call lines go to
    stderr at the info level and below, and nowhere above it."""
    if level not in ("debug", "info"):
        return None
    return CallLog(sys.stderr.buffer)
