"""What one tick did, counted in one place: its log line, the CLI's summary, systemd's status."""

from __future__ import annotations

from dataclasses import dataclass

from .render import RenderReport
from .types import PollOutcome


@dataclass(frozen=True, slots=True)
class TickReport:
    due: int = 0
    outcomes: tuple[PollOutcome, ...] = ()
    renders: tuple[RenderReport, ...] = ()
    abandoned: int = 0
    render_error: str | None = None  # the outputs could not be written (old ones kept)
    duration_s: float = 0.0  # the whole tick: polls, stores, renders

    @property
    def rendered(self) -> bool:
        return bool(self.renders)

    @property
    def ok(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def failed(self) -> int:
        return sum(o.failed for o in self.outcomes)

    @property
    def deferred(self) -> int:
        """Not polled this tick (host timed out, tick out of time): due again at the next."""
        return len(self.outcomes) - self.ok - self.failed

    @property
    def failures(self) -> tuple[PollOutcome, ...]:
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def new(self) -> int:
        return sum(o.result.new for o in self.outcomes)

    @property
    def updated(self) -> int:
        return sum(o.result.updated for o in self.outcomes)

    @property
    def duplicate(self) -> int:
        return sum(o.result.duplicate for o in self.outcomes)

    @property
    def not_modified(self) -> int:
        return sum(o.status == "not_modified" for o in self.outcomes)

    def log_line(self) -> str:
        slowest = max(self.outcomes, key=lambda o: o.duration_s, default=None)
        slow = f" slowest={slowest.source_id}:{slowest.duration_s * 1000:.0f}ms" if slowest else ""
        return (
            f"tick due={self.due} ok={self.ok} not_modified={self.not_modified} "
            f"failed={self.failed} deferred={self.deferred} new={self.new} "
            f"updated={self.updated} rendered={self.rendered} "
            f"duration_ms={self.duration_s * 1000:.0f}{slow}"
        )

    def status_line(self) -> str:
        """systemd's STATUS= after a tick."""
        return f"last tick: {self.due} due, {self.ok} ok, {self.failed} failed{self._deferred()}"

    def _deferred(self) -> str:
        return f", {self.deferred} deferred" if self.deferred else ""

    def summary(self) -> str:
        """The one-line summary `aggregator once` ends with."""
        written = sum(len(r.written) for r in self.renders)
        unchanged = sum(len(r.unchanged) for r in self.renders)
        outputs = (
            f"{written} written, {unchanged} unchanged"
            if self.renders or self.render_error
            else "up to date (nothing rendered)"
        )
        return (
            f"sources: {self.ok} ok, {self.failed} failed{self._deferred()}; "
            f"entries: {self.new} new, "
            f"{self.updated} updated, {self.duplicate} duplicate; "
            f"outputs: {outputs}"
        )
