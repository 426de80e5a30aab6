"""Worker processes that prepare (parse and process) the documents of large ticks.

A pool of ``forkserver`` processes (never fork a process that runs threads: the fetch loop,
the server, APScheduler), started at the first tick that needs it. Every worker watches the
process that started the pool and exits as soon as it is gone, so a ``kill -9`` of the daemon
or of ``aggregator once`` leaves no worker behind (issue #11).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

from .prepare import Prepared, prepare
from .types import Fetched

log = logging.getLogger(__name__)

PARENT_POLL_S = 1.0  # where pidfd_open is missing (not Linux): how often a worker looks


def _exit_when_gone(pid: int) -> None:
    """In a worker: exit the moment process ``pid`` ends (a pidfd turns readable), or, where
    there are no pidfds, within ``PARENT_POLL_S`` of it."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # gone already
        os._exit(0)
    except (AttributeError, OSError):
        while _alive(pid):
            time.sleep(PARENT_POLL_S)
        os._exit(0)
    select.select([fd], [], [])
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def watch_parent(pid: int) -> None:
    """The pool's initializer: a daemon thread that ends this worker when ``pid`` ends."""
    threading.Thread(target=_exit_when_gone, args=(pid,), name="parent-watch", daemon=True).start()


class ParseWorkers:
    """``size`` worker processes running ``prepare``; started on first use."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def submit(self, fetched: Fetched, max_entries: int) -> Future[Prepared]:
        if self._pool is None:
            # (No forkserver preload of the parse stages: each worker would start faster, but
            # the server would then hold those modules too, counted again in the tree's RSS.)
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(
                self.size, mp_context=context, initializer=watch_parent, initargs=(os.getpid(),)
            )
        return self._pool.submit(prepare, fetched, max_entries)

    def broken(self) -> None:
        """The workers died (killed, or cannot start): callers prepare inline from now on."""
        if self._pool is not None:
            log.error("parse workers died: parsing inline from now on (see earlier errors)")
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.size = 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
