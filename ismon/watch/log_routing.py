# -*- test-case-name: tests.test_service,tests.test_watch_log -*-
"""
Where a watch's messages go besides the main log (README "Messages"):
syslog and the C{--json-log} file, as observers on a log publisher that
is handed in (the global one when running; a private one in tests), and
the direct line to syslog for last words written while the event loop is
stuck.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import ILogObserver, Logger, LogPublisher

from ismon.core.config import WatchConfig
from ismon.watch.report import JsonLinesObserver, SyslogObserver

__all__ = ["LogRouting"]

_log = Logger()


class LogRouting:
    """The syslog and JSON-lines observers of one watch, on C{publisher}."""

    def __init__(
        self,
        config: WatchConfig,
        publisher: LogPublisher,
        on_syslog_unavailable: Callable[[str], None],
    ) -> None:
        self._config = config
        self.publisher = publisher
        self._on_syslog_unavailable = on_syslog_unavailable
        self._observers: list[ILogObserver] = []
        self._syslog: SyslogObserver | None = None

    def start(self) -> None:
        config = self._config
        if config.syslog_socket:
            self._syslog = SyslogObserver(
                config.syslog_socket,
                config.command,
                on_unavailable=self._on_syslog_unavailable,
                debug=config.debug,
            )
            self._observers.append(self._syslog)
        if config.json_log:
            try:
                stream = open(config.json_log, "a", encoding="utf-8")
            except OSError as e:
                _log.error("cannot open --json-log {path}: {error}", path=config.json_log, error=e)
            else:
                self._observers.append(JsonLinesObserver(stream, debug=config.debug))
        for observer in self._observers:
            self.publisher.addObserver(observer)

    def stop(self) -> None:
        for observer in self._observers:
            self.publisher.removeObserver(observer)
        if self._syslog is not None:
            self._syslog.close()
        self._observers = []

    def to_syslog(self, text: str, priority: int) -> None:
        """Straight to syslog, bypassing the publisher (any thread)."""
        if self._syslog is not None:
            self._syslog.send(text, priority)
