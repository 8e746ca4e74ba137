"""
Tests for the log filter of L{ismon.watch.report}: a watch's log is the message
catalogue, Twisted's own events come only with C{--debug}, and errors --
from anywhere -- are never dropped (README "Messages").
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tempfile

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogPublisher,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ismon.core.catalogue import MessageId
from ismon.watch.report import CatalogueFilter, JsonLinesObserver, Reporter, SyslogObserver


def _publish(publisher: LogPublisher) -> None:
    """One catalogue message, one Twisted info line, one unhandled error."""
    Reporter(
        "clp_httpmon", "w1", Logger(namespace="clp_httpmon", observer=publisher), protocol="HTTP"
    ).emit(MessageId.STARTED)
    twisted = Logger(namespace="twisted.internet.base", observer=publisher)
    twisted.info("Main loop terminated.")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        twisted.failure("Unhandled error in Deferred:", Failure())


class TextLogTests(SynchronousTestCase):
    def log(self, debug: bool) -> str:
        stream = io.StringIO()
        publisher = LogPublisher(
            FilteringLogObserver(textFileLogObserver(stream), [CatalogueFilter(debug)])
        )
        _publish(publisher)
        return stream.getvalue()

    def test_catalogue_and_errors_only(self) -> None:
        text = self.log(debug=False)
        self.assertIn("The clp_httpmon has started watching HTTP. [ID:w1]", text)
        self.assertNotIn("Main loop terminated.", text)
        # The bug is shown, with its traceback.
        self.assertIn("Unhandled error in Deferred:", text)
        self.assertIn("ZeroDivisionError", text)

    def test_debug_shows_everything(self) -> None:
        text = self.log(debug=True)
        self.assertIn("Main loop terminated.", text)
        self.assertIn("[ID:w1]", text)


class SyslogAndJsonTests(SynchronousTestCase):
    def syslog_lines(self, debug: bool) -> list[str]:
        folder = tempfile.mkdtemp()  # short: AF_UNIX paths end at 107 bytes
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "log.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(path)
        self.addCleanup(server.close)
        observer = SyslogObserver(path, "clp_httpmon", debug=debug)
        self.addCleanup(observer.close)
        _publish(LogPublisher(observer))
        server.setblocking(False)
        lines = []
        while True:
            try:
                lines.append(server.recv(4096).decode())
            except BlockingIOError:
                return lines

    def test_syslog_gets_catalogue_and_a_one_line_error(self) -> None:
        lines = self.syslog_lines(debug=False)
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].startswith("<30>"), lines[0])  # daemon.info
        self.assertTrue(lines[0].endswith("The clp_httpmon has started watching HTTP. [ID:w1]"))
        self.assertTrue(lines[1].startswith("<26>"), lines[1])  # daemon.crit
        self.assertIn(
            "Unhandled error in Deferred: (ZeroDivisionError: division by zero)", lines[1]
        )
        self.assertNotIn("\n", lines[1])

    def test_syslog_with_debug(self) -> None:
        lines = self.syslog_lines(debug=True)
        self.assertEqual(len(lines), 3, lines)
        self.assertTrue(lines[1].endswith("Main loop terminated."), lines[1])

    def test_json_log(self) -> None:
        for debug, expected in ((False, [1, None]), (True, [1, None, None])):
            stream = io.StringIO()
            _publish(LogPublisher(JsonLinesObserver(stream, debug=debug)))
            records = [json.loads(line) for line in stream.getvalue().splitlines()]
            self.assertEqual([r["id"] for r in records], expected)
            self.assertEqual(records[-1]["level"], LogLevel.critical.name)
