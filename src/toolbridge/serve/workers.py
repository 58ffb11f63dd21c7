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
"""

from __future__ import annotations

import logging
import os
import signal

import uvicorn
from uvicorn.supervisors import Multiprocess

logger = logging.getLogger(__name__)


class _Supervisor(Multiprocess):
    def terminate_all(self) -> None:
        for listening in self.sockets:  # the workers' copies close as they begin to stop
            listening.close()
        super().terminate_all()

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
