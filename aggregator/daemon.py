"""``aggregator run``: the scheduler on APScheduler, the output server, signals and systemd.

An outer shell: builds nothing itself (cli passes Config, Store, client, metrics in). SIGHUP
reloads the config (an invalid one is rejected and the old one kept), SIGTERM/SIGINT drain and
exit 0, systemd is told READY/RELOADING/STOPPING and pinged from every tick.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config, load_config
from .errors import AggregatorError, ConfigError
from .metrics import Metrics
from .prune import QuietPruner
from .render.status import DaemonStatus, StatusReport, due_now, source_rows
from .report import TickReport
from .scheduler import Replay, build_scheduler
from .serve import OutputServer, start_server
from .store import Store
from .systemd import Notifier
from .websub import HubPinger, changed_topics

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
PROGRESS_PING_S = 10.0


class _TickOverruns(logging.Filter):
    """APScheduler warns at every ``tick`` interval while a tick runs longer than that ("...
    skipped: maximum number of running instances reached"): a line a second in the journal
    during a long tick. That is expected here (the next tick starts when this one ends, and
    the tick's own line gives its ``duration_ms``), so those lines are dropped; every other
    APScheduler warning stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


TICK_OVERRUNS = _TickOverruns()


def quiet_tick_overruns() -> None:
    logging.getLogger("apscheduler.scheduler").addFilter(TICK_OVERRUNS)  # (once: idempotent)


@dataclass
class Daemon:
    """Wires the scheduler, the server and the signals together for one process."""

    config: Config
    store: Store
    metrics: Metrics
    notifier: Notifier
    offline: bool = False
    replay: Replay | None = None  # `run --replay DIR`: each tick plays a recorded round (#14)
    load: Callable[[Path], Config] = load_config
    follow_log_level: bool = True  # a reload applies [log] level (not when --log-level says)

    def __post_init__(self) -> None:
        self.scheduler = build_scheduler(
            self.config, self.store, metrics=self.metrics, offline=self.offline, replay=self.replay
        )
        self.scheduler.on_tick = self._ticked
        self.scheduler.pruner = QuietPruner()  # retention at a quiet moment (issue #15)
        self.scheduler.on_progress = self._progress
        self._last_ping = 0.0
        self.signals: queue.SimpleQueue[int] = queue.SimpleQueue()  # reentrant: safe in handlers
        self.server: OutputServer | None = None
        self.last_report: TickReport | None = None  # the status page's view of the last tick
        self.pinger: HubPinger | None = None
        self._apscheduler = BackgroundScheduler(timezone=UTC)

    # -- health -----------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """Healthy when storage answers and the scheduler ticked recently."""
        self.store.ping()
        last = self.scheduler.last_tick_at
        if last is None:
            return False, "no tick yet"
        age = (datetime.now(UTC) - last).total_seconds()
        limit = max(3 * self.config.poll.tick_s, 60.0)
        note = self.scheduler.work.note() if self.scheduler.work is not None else None
        if age > limit:
            return False, f"last tick {age:.0f}s ago (limit {limit:.0f}s)"
        return True, f"last tick {age:.0f}s ago" + (f"; {note}" if note else "")

    def status(self) -> StatusReport:
        """What ``/status`` shows: this daemon's health and last tick, then every source."""
        config, now = self.config, datetime.now(UTC)
        states = self.store.source_states()
        enabled = {s.id for s in config.enabled_sources}
        try:
            healthy, detail = self.health()
        except AggregatorError as exc:
            healthy, detail = False, str(exc)
        report = self.last_report or TickReport()
        daemon = DaemonStatus(
            healthy=healthy,
            detail=detail,
            sources=len(enabled),
            due_now=due_now((s for s in states if s.source_id in enabled), now),
            tick_every_s=config.poll.tick_s,
            last_tick_at=self.scheduler.last_tick_at,
            tick_duration_s=report.duration_s if self.last_report else None,
            tick_due=report.due,
            tick_ok=report.ok,
            tick_failed=report.failed,
            tick_deferred=report.deferred,
            tick_new=report.new,
            tick_updated=report.updated,
            render_error=report.render_error,
        )
        return StatusReport(daemon, source_rows(states, {s.id: s.group for s in config.sources}))

    # -- lifecycle --------------------------------------------------------------------------------

    def _ticked(self, report: TickReport) -> None:
        self._last_ping = time.monotonic()
        self.last_report = report
        self.notifier.notify(WATCHDOG=1, STATUS=report.status_line())
        if self.pinger is not None:  # queued: a slow hub never holds up the tick
            self.pinger.publish(changed_topics(self.config.output.base_url, report.renders))

    def _sync_pinger(self) -> None:
        """One pinger for the configured hub (none without one); a new hub gets a new one."""
        hub = self.config.output.websub_hub
        if self.pinger is not None and self.pinger.hub != hub:
            self.pinger.close()
            self.pinger = None
        if hub and self.pinger is None:
            self.pinger = HubPinger(hub)

    def _progress(self) -> None:
        # A tick over many slow sources can outlast WatchdogSec: ping while it makes progress.
        if time.monotonic() - self._last_ping >= PROGRESS_PING_S:
            self._last_ping = time.monotonic()
            self.notifier.watchdog()

    def _tick_job(self) -> None:
        # The one place that catches everything: a bug in one tick is logged, the next runs.
        try:
            self.scheduler.tick()
        except Exception:
            log.exception("tick failed")

    def start(self) -> None:
        # READY starts systemd's watchdog clock: the first tick's own ping is due within
        # PROGRESS_PING_S, so no progress ping comes before it (one would look like a tick).
        self._last_ping = time.monotonic()
        self.scheduler.start()
        self._sync_pinger()
        if self.config.server.enabled:
            self.server, _ = start_server(
                self.config.output.dir,
                host=self.config.server.host,
                port=self.config.server.port,
                health=self.health,
                registry=self.metrics.registry,
                status=self.status,
                site_title=self.config.output.title,
            )
            host, port = self.server.server_address[:2]
            log.info("serving %s on http://%s:%s/", self.config.output.dir, host, port)
        quiet_tick_overruns()
        self._apscheduler.add_job(
            self._tick_job,
            IntervalTrigger(seconds=self.config.poll.tick_s, timezone=UTC),
            id="tick",
            coalesce=True,
            max_instances=1,
            next_run_time=datetime.now(UTC),
        )
        self._apscheduler.start()
        self.notifier.ready(status=f"polling {len(self.config.enabled_sources)} sources")

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.put(signum)

    def serve_until_stopped(self) -> int:
        """Handle signals until SIGTERM/SIGINT; return the exit status."""
        while True:
            signum = self.signals.get()
            if signum == signal.SIGHUP:
                self.reload()
            else:
                log.info("received %s: stopping", signal.Signals(signum).name)
                return self.stop()

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            config = self.load(self.config.path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
            self.notifier.ready(status="reload rejected: config invalid, old config kept")
            return
        self._warn_restart_only(config)
        if self.follow_log_level:
            logging.getLogger().setLevel(config.log_level)
        removed = self.scheduler.reload(config)
        self.config = config
        self._sync_pinger()
        self._apscheduler.modify_job("tick", next_run_time=datetime.now(UTC))  # poll added ones now
        log.info(
            "reloaded %s: %d sources, removed=%s",
            config.path,
            len(config.sources),
            ",".join(removed) or "-",
        )
        self.notifier.ready(status=f"reloaded: polling {len(config.enabled_sources)} sources")

    def _warn_restart_only(self, new: Config) -> None:
        old = self.config
        if (old.server, old.output.dir, old.storage.url, old.poll.tick_s) != (
            new.server,
            new.output.dir,
            new.storage.url,
            new.poll.tick_s,
        ):
            log.warning("[server], [output] dir, [storage] url and [poll] tick apply on restart")

    def stop(self) -> int:
        """Stop taking work, let in-flight polls finish (or abandon them), commit, exit 0."""
        self.notifier.stopping()
        started = time.monotonic()
        self.scheduler.stop()
        self._apscheduler.shutdown(wait=False)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.pinger is not None:
            self.pinger.close()
        if not self.scheduler.wait_idle(STOP_GRACE_S - 1.0):
            log.warning("a tick is still running after %.0fs: abandoning it", STOP_GRACE_S - 1.0)
        log.info("stopped in %.1fs", time.monotonic() - started)
        return 0


def run_daemon(daemon: Daemon) -> int:
    """Start, serve until SIGTERM/SIGINT, stop; exit 0 even when an in-flight tick is abandoned."""
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except (AggregatorError, OSError) as exc:
        log.error("cannot start: %s", exc)
        daemon.notifier.stopping()
        return 1
    status = daemon.serve_until_stopped()
    if threading.active_count() > 1 and any(
        t.name.startswith("fetch") and t.is_alive() for t in threading.enumerate()
    ):
        # Fetch threads blocked in the network would hold up interpreter exit; the database
        # is committed and outputs are written atomically, so leaving now is safe.
        logging.shutdown()
        os._exit(status)
    return status
