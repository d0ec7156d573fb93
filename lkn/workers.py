"""Several gateway processes on one host, sharing the REST and gRPC ports (``LKN_WORKERS``).

One process runs one event loop, so it uses at most one core. With ``LKN_WORKERS=N`` the
command forks N workers before any loop exists; each builds its own gateway (engine pool,
breakers, placement record, metrics) and binds the same ports with ``SO_REUSEPORT``, and the
kernel spreads new connections over them. The parent only supervises: SIGTERM/SIGINT are
passed on to every worker (each drains for ``LKN_SHUTDOWN_GRACE``), and when one worker
exits on its own the others are stopped too and the command fails, so that the process
manager (systemd, compose, Kubernetes) restarts the whole set instead of running it short.

What is per worker: everything in memory (breakers, readiness, placement record,
``LKN_MAX_CONCURRENCY``, ``/metrics``: a scrape reaches one worker). See docs/cluster.md.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from lkn.config import Settings

log = logging.getLogger(__name__)


def run_workers(settings: Settings, serve: Callable[[Settings], None]) -> int:
    """Fork ``settings.workers`` processes that each call ``serve(settings)``; supervise."""
    if settings.port == 0 or (settings.grpc_enabled and settings.grpc_port == 0):
        print("lkn: LKN_WORKERS > 1 needs fixed ports (LKN_PORT, LKN_GRPC_PORT), not 0",
              file=sys.stderr)
        return 2
    workers = _Workers()
    signal.signal(signal.SIGTERM, workers.stop_all)
    signal.signal(signal.SIGINT, workers.stop_all)
    for index in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            _child(index, settings, serve)
        workers.children[pid] = index
    log.info("workers started count=%d pids=%s", len(workers.children),
             ",".join(str(p) for p in workers.children))
    return workers.wait()


class _Workers:
    """The parent's view of its workers: their pids (-> worker index) and whether it is
    stopping them."""

    def __init__(self) -> None:
        self.children: dict[int, int] = {}
        self.stopping = False

    def stop_all(self, signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        """Pass ``signum`` on to every worker (also the SIGTERM/SIGINT handler)."""
        self.stopping = True
        for pid in self.children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        """Wait for every worker; the first that exits on its own stops the others. The
        exit status: 1 if one exited on its own or failed while stopping, else 0."""
        status = 0
        while self.children:
            try:
                pid, code = os.wait()
            except ChildProcessError:
                break
            index = self.children.pop(pid, -1)
            exit_code = os.waitstatus_to_exitcode(code)
            if not self.stopping:
                log.error("worker exited unexpectedly worker=%d pid=%d code=%d; stopping the "
                          "others", index, pid, exit_code)
                status = 1
                self.stop_all()
            elif exit_code != 0:
                status = status or 1
        return status


def _child(index: int, settings: Settings, serve: Callable[[Settings], None]) -> None:
    """The worker: default signal handling (serve() installs its own), serve, exit."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 0
    try:
        log.info("worker starting worker=%d pid=%d", index, os.getpid())
        serve(settings)
    except BaseException:  # report, never fall back into the parent's code
        log.exception("worker failed worker=%d", index)
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)
