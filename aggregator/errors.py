"""The exception tree; every error the package raises on purpose is one of these.

    AggregatorError
     +-- ConfigError            the config file is unreadable or invalid (lists every problem)
     +-- SourceError            one source failed; never stops a run (carries source_id)
     |    +-- FetchError        HTTP / fixture read failed (status=, retry_after_s=, timed_out=)
     |    +-- ParseError        the document is not a feed we can read
     +-- StoreError             the database failed
     +-- RenderError            an output could not be rendered or written

Third-party exceptions are wrapped once, at the stage boundary, with ``raise X(...) from exc``.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose."""


class ConfigError(AggregatorError):
    """The configuration is invalid; ``problems`` lists each one with its key path."""

    def __init__(self, problems: list[str] | tuple[str, ...], *, path: str | None = None) -> None:
        self.problems = tuple(problems)
        self.path = path
        where = f"{path}: " if path else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}invalid configuration ({len(self.problems)} problems):\n{lines}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problems,), self.__dict__)


class SourceError(AggregatorError):
    """One source failed; the message starts with the source id."""

    def __init__(self, source_id: str, message: str) -> None:
        self.source_id = source_id
        # What a server or a document said reaches logs, terminals and pages: no control
        # characters (a reason phrase's ESC [2J would clear an operator's screen), and short.
        self.detail = _printable(message)
        super().__init__(f"{source_id}: {self.detail}")

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (parse workers): rebuild from the fields, not args.
        return (type(self), (self.source_id, self.detail), self.__dict__)


class FetchError(SourceError):
    """The document could not be fetched (HTTP error, timeout, oversized, unreadable file)."""

    def __init__(
        self,
        source_id: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(source_id, message)
        self.status = status
        self.retry_after_s = retry_after_s
        self.timed_out = timed_out  # no complete answer in time: the host may be struggling


class ParseError(SourceError):
    """The document is not a feed we can read (or every entry in it failed)."""


class StoreError(AggregatorError):
    """The database could not be opened, migrated, read or written.

    ``transient``: the database itself is the trouble (locked, unreachable, connection lost),
    not the data one write carried; trying the same writes again now would fail alike.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self),), self.__dict__)


class RenderError(AggregatorError):
    """An output could not be rendered or written."""


MAX_DETAIL = 500  # characters of an error's detail kept (aiohttp's can quote a whole body)


def _printable(message: str) -> str:
    text = "".join(c if c.isprintable() or c == " " else " " for c in message)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
