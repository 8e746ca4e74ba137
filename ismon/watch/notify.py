# -*- test-case-name: tests.test_notify -*-
"""
The systemd notification protocol (C{sd_notify(3)}), spoken directly: no
libsystemd, no python-systemd.

systemd gives a C{Type=notify} service the address of a datagram socket in
C{$NOTIFY_SOCKET} (a path, or an abstract name written with a leading
C{@}); the service sends newline-separated C{KEY=VALUE} assignments to it:
C{READY=1} once it is up, C{STATUS=...} as free text for C{systemctl
status}, C{WATCHDOG=1} at least once per C{$WATCHDOG_USEC} when the unit has
C{WatchdogSec=}, C{STOPPING=1} when it goes down.

L{SystemdNotifier} never blocks (the socket is non-blocking: a full queue
drops the message) and never raises: a service that is not run by systemd,
or a manager that went away, must not disturb the watch.  Every method
returns whether the datagram was handed to the kernel, for tests and logs.

This module is pure (no Twisted).  The service calls it from the reactor
thread; watchdog pings belong in a reactor C{LoopingCall}, so that they stop
when the event loop stops turning and systemd then kills and fails the
unit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["MAX_STATUS_BYTES", "SystemdNotifier"]

# systemd reads at most one page-sized datagram; keep STATUS well below.
MAX_STATUS_BYTES = 1024


def _address(value: str | None) -> str | bytes | None:
    """The socket address for C{$NOTIFY_SOCKET}, or L{None} if unusable."""
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the "@".
        return b"\0" + value[1:].encode("utf-8", "surrogateescape")
    if value.startswith("/"):
        return value
    # "vsock:..." and relative paths: not for us.
    return None


def _one_line(text: str) -> str:
    """A value for one assignment: no newline can start another."""
    line = " ".join(str(text).splitlines()).replace("\0", " ").strip()
    data = line.encode("utf-8", "replace")
    if len(data) > MAX_STATUS_BYTES:
        line = data[: MAX_STATUS_BYTES - 3].decode("utf-8", "ignore") + "..."
    return line


class SystemdNotifier:
    """
    Talks to the service manager named in C{environ["NOTIFY_SOCKET"]}.

    @param environ: the environment to read C{NOTIFY_SOCKET},
        C{WATCHDOG_USEC} and C{WATCHDOG_PID} from; default L{os.environ}.
        It is read once, here.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        try:
            self._address = _address(env.get("NOTIFY_SOCKET"))
        except Exception:
            self._address = None
        self._watchdog = self._parse_watchdog(env)
        self._socket: socket.socket | None = None

    @staticmethod
    def _parse_watchdog(env: Mapping[str, str]) -> float | None:
        try:
            usec = int(str(env.get("WATCHDOG_USEC", "")).strip())
        except ValueError:
            return None
        if usec <= 0:
            return None
        pid_text = env.get("WATCHDOG_PID")
        if pid_text:
            try:
                if int(str(pid_text).strip()) != os.getpid():
                    return None
            except ValueError:
                return None
        return usec / 1_000_000

    # -- what systemd asked for ----------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens (C{$NOTIFY_SOCKET} is usable)."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """
        The watchdog timeout in seconds (C{WatchdogSec=} of the unit, from
        C{$WATCHDOG_USEC}), or L{None} when no watchdog is wanted, or when
        C{$WATCHDOG_PID} names another process.  Ping at least twice per
        interval (C{sd_watchdog_enabled(3)}): every C{interval / 2} seconds.
        """
        if self._address is None:
            return None
        return self._watchdog

    # -- messages ------------------------------------------------------------

    def ready(self, status: str = "") -> bool:
        """C{READY=1}, with a C{STATUS=} line when C{status} is given."""
        lines = ["READY=1"]
        if status:
            lines.append("STATUS=" + _one_line(status))
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        """C{STATUS=<text>} (one line, at most L{MAX_STATUS_BYTES} bytes)."""
        return self.notify("STATUS=" + _one_line(text))

    def stopping(self, status: str = "") -> bool:
        """C{STOPPING=1}, with a C{STATUS=} line when C{status} is given."""
        lines = ["STOPPING=1"]
        if status:
            lines.append("STATUS=" + _one_line(status))
        return self.notify(*lines)

    def watchdog_ping(self) -> bool:
        """C{WATCHDOG=1}: the event loop still turns."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """
        C{EXTEND_TIMEOUT_USEC=}: ask for C{seconds} more to reach the next
        state (e.g. READY when C{--grace} delays the first probe beyond
        C{TimeoutStartSec=}).  Ignored by systemd before v236.
        """
        usec = max(1, int(seconds * 1_000_000))
        return self.notify(f"EXTEND_TIMEOUT_USEC={usec}")

    def notify(self, *assignments: str) -> bool:
        """
        Send C{assignments} (C{"KEY=VALUE"} strings) as one datagram.

        @return: C{True} if the kernel took it; C{False} when notifications
            are disabled, or on any error (the manager is gone, its queue is
            full, ...).
        """
        if self._address is None or not assignments:
            return False
        data = "\n".join(assignments).encode("utf-8", "replace")
        try:
            sock = self._socket
            if sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                self._socket = sock
            sent = sock.sendto(data, self._address)
        except Exception:
            return False
        return sent == len(data)

    def close(self) -> None:
        """Close the socket (a later message opens a new one)."""
        sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<SystemdNotifier socket={self._address!r} watchdog={self._watchdog!r}>"
