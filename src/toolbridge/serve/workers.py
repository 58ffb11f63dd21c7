"""`serve --workers N`: uvicorn's process supervisor, with SIGHUP meaning "reload", not "restart",
and a stop that stops listening first.

uvicorn's supervisor answers SIGHUP by replacing every worker, which reloads everything from
scratch and drops each worker's connections in turn. Ours hands the signal to one live worker
instead; that worker reloads and its siblings follow it (`siblings.py`), with no restart.

On SIGTERM or SIGINT uvicorn's supervisor stops its workers, which close their copies of the
listening socket, but keeps its own open until they have exited: for the 5 s of grace the
kernel still takes connections that no one accepts, and resets them all when it closes. Ours
closes its copy first, so a connection that comes once the workers stop accepting is refused
(a load balancer tries another replica) and the calls in flight still finish.

A SIGTERM is not passed on as one: the workers are asked to drain (draining.py's
`DRAIN_SIGNAL`: each drains for its own `http.shutdown_delay`, or stops at once without one),
and the supervisor waits for them to stop, still taking signals: a second SIGTERM, or a SIGINT,
asks them to stop at once (`STOP_SIGNAL`). Passed on as SIGTERM, a SIGINT made the workers
drain, a second SIGTERM never reached them, and a SIGTERM to the whole process group reached
each worker twice, which took the second for "stop now".
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

import uvicorn
from uvicorn.supervisors import Multiprocess

from toolbridge.serve.draining import DRAIN_SIGNAL, STOP_SIGNAL

logger = logging.getLogger(__name__)


class _Supervisor(Multiprocess):
    stopping = False
    """A SIGTERM or SIGINT came: the workers were asked to drain or stop, and are waited for."""

    def terminate_all(self) -> None:
        # (reached once every worker has stopped, or when the supervisor stops on its own)
        self._stop(STOP_SIGNAL)

    def handle_term(self) -> None:
        if self.stopping:
            logger.info("SIGTERM again: the workers stop at once")
            self._stop(STOP_SIGNAL)
        else:
            logger.info("SIGTERM: the workers drain (`http.shutdown_delay`), then stop")
            self._stop(DRAIN_SIGNAL)

    def handle_int(self) -> None:
        logger.info("SIGINT: the workers stop at once")
        self._stop(STOP_SIGNAL)

    def keep_subprocess_alive(self) -> None:
        if not self.stopping:
            super().keep_subprocess_alive()
        elif not any(process.process.is_alive() for process in self.processes):
            self.should_exit.set()  # every worker has stopped: the supervisor goes too

    def _stop(self, number: int) -> None:
        self.stopping = True
        for listening in self.sockets:  # the workers' copies close as they begin to stop
            listening.close()
        for process in self.processes:
            pid = process.pid
            if pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, number)

    def handle_hup(self) -> None:
        for process in self.processes:
            pid = process.pid
            if pid is not None and process.is_alive(timeout=1):
                logger.info("SIGHUP: worker %d reloads, and its siblings follow", pid)
                os.kill(pid, signal.SIGHUP)
                return
        logger.error("SIGHUP: no live worker to reload")


def run_workers(config: uvicorn.Config) -> None:
    """Serve `config.app` (an import string) in `config.workers` processes until stopped."""
    socket = config.bind_socket()
    try:
        _Supervisor(config, sockets=[socket]).run()
    finally:
        socket.close()
