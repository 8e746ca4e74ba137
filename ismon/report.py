# -*- test-case-name: tests.test_report -*-
"""
Where catalogue messages go: the Twisted log (stdout in the foreground, the
twistd log file, C{--logfile}), syslog (facility daemon), JSON lines.

Every message is emitted as one twisted.logger event per folded line, with
C{ismon_text} set; the observers here pick those events up.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import ILogObserver, Logger, LogLevel
from zope.interface import implementer

from ismon.catalogue import MessageId, fold, render, takes_detail

__all__ = ["JsonLinesObserver", "Reporter", "SyslogObserver"]

_SEVERITY = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}
_FACILITY_DAEMON = 3


class Reporter:
    """Renders catalogue messages for one watch and logs them."""

    def __init__(self, command: str, watch_id: str, log: Logger | None = None) -> None:
        self.command = command
        self.watch_id = watch_id
        self._log = log or Logger(namespace=command)

    def emit(
        self,
        message: MessageId,
        level: LogLevel = LogLevel.info,
        *,
        number: int | None = None,
        function: str = "",
        detail: str = "",
        fields: dict[str, Any] | None = None,
    ) -> str:
        """Log C{message}; return its full text."""
        text = render(
            message,
            command=self.command,
            watch_id=self.watch_id,
            number=number,
            function=function,
            detail=detail,
        )
        lines = fold(text)
        if detail and not takes_detail(message):
            # The 2004 texts have no room for the why (42 says only "system
            # error (state 13)"): it follows on a line of its own.
            why = "".join(c if c.isprintable() else "?" for c in detail)[:300]
            lines += fold(f"  ({function + ': ' if function else ''}{why})")
            fields = {**(fields or {}), "detail": detail}
        for line in lines:
            self._log.emit(
                level,
                "{ismon_text}",
                ismon_text=line,
                ismon_message_id=int(message),
                ismon_watch_id=self.watch_id,
                ismon_number=number,
                ismon_fields=fields,
            )
        return text


@implementer(ILogObserver)
class SyslogObserver:
    """
    Sends ismon messages to a syslog socket (C{/dev/log} by default).

    Python's C{syslog} module always writes to C{/dev/log} and silently drops
    messages when it is absent; we need another socket for tests and
    chroots, and to know when syslog is unreachable, so we speak the
    local syslog protocol (RFC 3164 over a UNIX datagram socket) ourselves.
    Sending never blocks: a full socket buffer drops the line rather than
    stall the monitor.
    """

    def __init__(
        self,
        path: str,
        ident: str,
        on_unavailable: Callable[[str], None] | None = None,
    ) -> None:
        self._path = path
        self._ident = ident
        self._socket: socket.socket | None = None
        self._on_unavailable = on_unavailable
        self._complained = False

    def _connect(self) -> socket.socket:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
            try:
                sock.connect(self._path)
            except OSError as e:
                sock.close()
                if e.errno == errno.EPROTOTYPE:
                    continue
                raise
            sock.setblocking(False)
            return sock
        raise OSError(errno.EPROTOTYPE, "no usable socket type")

    def send(self, text: str, severity: int) -> bool:
        priority = _FACILITY_DAEMON * 8 + severity
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
        stamp = stamp[:4] + stamp[4:6].replace("0", " ", 1) + stamp[6:]
        payload = f"<{priority}>{stamp} {self._ident}[{os.getpid()}]: {text}".encode(
            "utf-8", "replace"
        )
        for _ in range(2):
            try:
                if self._socket is None:
                    self._socket = self._connect()
                if self._socket.type == socket.SOCK_STREAM:
                    self._socket.send(payload + b"\0")
                else:
                    self._socket.send(payload)
                self._complained = False
                return True
            except BlockingIOError:
                return False
            except OSError as e:
                if self._socket is not None:
                    self._socket.close()
                    self._socket = None
                error = e
        if not self._complained:
            self._complained = True
            if self._on_unavailable is not None:
                self._on_unavailable(f"{self._path}: {error.strerror or error}")
        return False

    def __call__(self, event: dict[str, Any]) -> None:
        text = event.get("ismon_text")
        if text is None:
            return
        level = event.get("log_level", LogLevel.info)
        self.send(text, _SEVERITY.get(level, 6))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


@implementer(ILogObserver)
class JsonLinesObserver:
    """Appends ismon messages as JSON objects, one per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        text = event.get("ismon_text")
        if text is None:
            return
        level = event.get("log_level", LogLevel.info)
        record: dict[str, Any] = {
            "time": event.get("log_time", time.time()),
            "level": getattr(level, "name", str(level)),
            "id": event.get("ismon_message_id"),
            "watch": event.get("ismon_watch_id"),
            "number": event.get("ismon_number"),
            "text": text,
        }
        record.update(event.get("ismon_fields") or {})
        try:
            self._stream.write(json.dumps(record, default=str) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass
