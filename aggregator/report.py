"""What one tick did, counted in one place: its log line, the CLI's summary, systemd's status."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter

from .render import RenderReport
from .types import FAILED_STATUSES, OK_STATUSES, PollOutcome

_duration = attrgetter("duration_s")


@dataclass(frozen=True, slots=True)
class Tally:
    """The tick's outcomes counted, in one pass over them."""

    ok: int = 0
    failed: int = 0
    not_modified: int = 0
    new: int = 0
    updated: int = 0
    duplicate: int = 0

    @classmethod
    def of(cls, outcomes: tuple[PollOutcome, ...]) -> Tally:
        by_status = Counter(o.status for o in outcomes)
        new = updated = duplicate = 0
        for o in outcomes:
            r = o.result
            if r.new or r.updated or r.duplicate:
                new, updated, duplicate = new + r.new, updated + r.updated, duplicate + r.duplicate
        return cls(ok=sum(by_status[s] for s in OK_STATUSES),
                   failed=sum(by_status[s] for s in FAILED_STATUSES),
                   not_modified=by_status["not_modified"], new=new, updated=updated,
                   duplicate=duplicate)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TickReport:
    due: int = 0
    outcomes: tuple[PollOutcome, ...] = ()
    renders: tuple[RenderReport, ...] = ()
    abandoned: int = 0
    render_error: str | None = None  # the outputs could not be written (old ones kept)
    duration_s: float = 0.0  # the whole tick: polls, stores, renders
    tally: Tally = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tally", Tally.of(self.outcomes))

    @property
    def rendered(self) -> bool:
        return bool(self.renders)

    @property
    def ok(self) -> int:
        return self.tally.ok

    @property
    def failed(self) -> int:
        return self.tally.failed

    @property
    def deferred(self) -> int:
        """Not polled this tick (host timed out, tick out of time): due again at the next."""
        return len(self.outcomes) - self.tally.ok - self.tally.failed

    @property
    def failures(self) -> tuple[PollOutcome, ...]:
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def new(self) -> int:
        return self.tally.new

    @property
    def updated(self) -> int:
        return self.tally.updated

    @property
    def duplicate(self) -> int:
        return self.tally.duplicate

    @property
    def not_modified(self) -> int:
        return self.tally.not_modified

    def log_line(self) -> str:
        slowest = max(self.outcomes, key=_duration, default=None)
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
