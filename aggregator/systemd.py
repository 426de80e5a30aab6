"""Speak systemd's notify protocol over ``$NOTIFY_SOCKET`` with the stdlib; a no-op without it.

Never raises on socket errors and never reads the clock except for ``MONOTONIC_USEC``.
The protocol: one AF_UNIX datagram of newline-separated ``KEY=VALUE`` lines, see sd_notify(3).

Unlike ``sd_notify(unset_environment=1)`` this module never removes ``NOTIFY_SOCKET``,
``WATCHDOG_USEC`` or ``WATCHDOG_PID`` from the environment: the daemon builds a new ``Notifier``
(or keeps the old one) across a SIGHUP reload and must still find them. The flip side is that
child processes inherit them; the daemon starts none that speak the protocol.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from types import TracebackType

log = logging.getLogger(__name__)

# A datagram to systemd is only blocked when its queue is full; don't let that stall a tick.
SEND_TIMEOUT_S = 5.0


def socket_address(value: str | None) -> bytes | None:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value, or None when unset or unsupported.

    A path must be absolute; a leading ``@`` names a Linux abstract socket (leading NUL byte).
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return os.fsencode(value)
    # e.g. "vsock:..." (systemd >= 254 in VMs): not spoken here.
    log.warning("NOTIFY_SOCKET=%r is not an absolute path or @abstract name; ignoring it", value)
    return None


def watchdog_usec(env: Mapping[str, str], *, pid: int) -> int | None:
    """``WATCHDOG_USEC`` when it is meant for process ``pid`` (see sd_watchdog_enabled(3))."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    target = env.get("WATCHDOG_PID")
    if target is not None:
        try:
            if int(target) != pid:
                return None
        except ValueError:
            return None
    return usec


def format_fields(fields: Mapping[str, object]) -> str:
    """``KEY=VALUE`` lines; newlines inside a value would start a new field, so become spaces."""
    lines = []
    for key, value in fields.items():
        text = str(value).replace("\r", " ").replace("\n", " ")
        lines.append(f"{key}={text}")
    return "\n".join(lines)


class Notifier:
    """Sends state changes and watchdog pings to systemd; every method returns True if sent.

    Build one from the environment at start-up (``Notifier()``) and pass it down. The socket is
    opened here and kept until ``close()`` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        env = os.environ if env is None else env
        self._address = socket_address(env.get("NOTIFY_SOCKET"))
        self._watchdog_usec = watchdog_usec(env, pid=os.getpid())
        self._monotonic_ns = monotonic_ns
        self._sock = self._open() if self._address is not None else None

    @staticmethod
    def _open() -> socket.socket | None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError as exc:
            log.debug("cannot open a notify socket: %s", exc)
            return None
        sock.settimeout(SEND_TIMEOUT_S)
        return sock

    @property
    def enabled(self) -> bool:
        """True when ``NOTIFY_SOCKET`` is configured and the socket is open."""
        return self._sock is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half of ``WATCHDOG_USEC``; None without a watchdog."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def send(self, message: str) -> bool:
        """Send one raw datagram; False (logged at DEBUG) when disabled or the send fails."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", message, exc)
            return False
        return True

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram, e.g. ``notify(READY=1, STATUS="ok")``."""
        return self.send(format_fields(fields)) if fields else False

    def ready(self, status: str | None = None) -> bool:
        """Start-up or reload finished."""
        return self._with_status(status, READY=1)

    def reloading(self, status: str | None = None) -> bool:
        """A config reload started; ``MONOTONIC_USEC`` is what Type=notify-reload (>= 253) wants."""
        return self._with_status(status, RELOADING=1, MONOTONIC_USEC=self._monotonic_ns() // 1000)

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started (draining)."""
        return self._with_status(status, STOPPING=1)

    def watchdog(self) -> bool:
        """Tell the service manager we are alive."""
        return self.notify(WATCHDOG=1)

    def status(self, text: str) -> bool:
        """A one-line summary shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def _with_status(self, status: str | None, **fields: object) -> bool:
        if status is not None:
            fields["STATUS"] = status
        return self.notify(**fields)

    def close(self) -> None:
        """Close the socket; later calls return False."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
