# -*- test-case-name: tests.test_report -*-
"""
Where catalogue messages go: the Twisted log (stdout in the foreground, the
twistd log file, C{--logfile}), syslog (facility daemon), JSON lines.

Every message is emitted as one twisted.logger event per folded line, with
C{ismon_text} set; the observers here pick those events up.  A watch's log
is the message catalogue: Twisted's own events (a factory starting, a port
closed, the main loop ending) are left out unless C{--debug} asks for them,
except errors and critical events, which always get through -- an
unhandled error is a bug that must not vanish (README "Messages").
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import (
    ILogFilterPredicate,
    ILogObserver,
    Logger,
    LogLevel,
    PredicateResult,
    formatEvent,
)
from zope.interface import implementer

from ismon.core.catalogue import MessageId, fold, render, takes_detail

__all__ = [
    "CatalogueFilter",
    "JsonLinesObserver",
    "Reporter",
    "SyslogObserver",
    "event_line",
    "shows",
]

_SEVERITY = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}
_FACILITY_DAEMON = 3
_ALWAYS_SHOWN = frozenset({LogLevel.error, LogLevel.critical})


def shows(event: dict[str, Any], debug: bool) -> bool:
    """
    Whether a watch's log carries C{event}: catalogue messages always;
    events of Twisted (and ismon's own debug lines) only with C{--debug};
    errors from anywhere always.
    """
    return "ismon_text" in event or debug or event.get("log_level") in _ALWAYS_SHOWN


def event_line(event: dict[str, Any]) -> str:
    """
    The text of C{event} on one printable line: the catalogue line itself,
    or -- for events that are not catalogue messages -- Twisted's rendering
    with the failure's one-line reason.
    """
    text = event.get("ismon_text")
    if text is not None:
        return str(text)
    line = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        line += f" ({failure.type.__name__}: {failure.getErrorMessage()})"
    return "".join(c if c.isprintable() else " " for c in line)


@implementer(ILogFilterPredicate)
class CatalogueFilter:
    """The L{shows} rule, for a L{twisted.logger.FilteringLogObserver}."""

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug

    def __call__(self, event: dict[str, Any]) -> PredicateResult:
        result: PredicateResult = (
            PredicateResult.yes if shows(event, self.debug) else PredicateResult.no
        )
        return result


class Reporter:
    """
    Renders catalogue messages for one watch and logs them: C{command} and
    C{protocol} are how its messages name it (C{clp_imapmon}, C{IMAP4}).
    """

    def __init__(
        self, command: str, watch_id: str, log: Logger | None = None, *, protocol: str
    ) -> None:
        self.command = command
        self.protocol = protocol
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
            protocol=self.protocol,
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
        *,
        debug: bool = False,
    ) -> None:
        self._debug = debug
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
        if not shows(event, self._debug):
            return
        level = event.get("log_level", LogLevel.info)
        for line in fold(event_line(event)):
            self.send(line, _SEVERITY.get(level, 6))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


@implementer(ILogObserver)
class JsonLinesObserver:
    """Appends ismon messages as JSON objects, one per line."""

    def __init__(self, stream: IO[str], *, debug: bool = False) -> None:
        self._stream = stream
        self._debug = debug

    def __call__(self, event: dict[str, Any]) -> None:
        if not shows(event, self._debug):
            return
        text = event_line(event)
        level = event.get("log_level", LogLevel.info)
        record: dict[str, Any] = {
            "time": event.get("log_time", time.time()),
            "level": getattr(level, "name", str(level)),
            "id": event.get("ismon_message_id"),  # None: not a catalogue message
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
