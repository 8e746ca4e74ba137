# -*- test-case-name: tests.test_pop3 -*-
"""
Tests for L{ismon.probes.pop3}: the greeting / CAPA / QUIT conversation, STLS, the
login with STAT, and the POP3 probe's verdicts (README "What counts as a failure",
POP3), on a L{MemoryReactorClock}.  The real server is in
C{tests/test_pop3_dovecot.py}, the misbehaving ones in
C{tests/test_hostile_pop3.py}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase
from ismon.probes.pop3 import Pop3Probe
from ismon.probes.probe import IProbe
from tests.test_probe import (
    ConnectionFailureTests,
    ProbeCase,
    RecordingTransport,
    TLSRecordingTransport,
    aborted,
    closed,
    collect,
    connect,
    resolving,
    v4,
)

CAPA = b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n"
CAPA_NO_STLS = b"+OK Capability list follows\r\nTOP\r\nUSER\r\n.\r\n"


class Pop3ProbeTests(ConnectionFailureTests, ProbeCase):
    """L{Pop3Probe} against a scripted server."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, resolver: Any = None, **request: Any) -> list[Any]:
        request.setdefault("port", 110)
        probe = Pop3Probe(
            self.reactor, ConversationRequest(**request), resolver or resolving(v4(port=110))
        )
        self.assertTrue(IProbe.providedBy(probe))
        return collect(probe.probe())

    def greeted(self, **request: Any) -> tuple[list[Any], Any, RecordingTransport]:
        """A probe that has read the greeting and sent CAPA."""
        results = self.start(**request)
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"+OK Dovecot ready.\r\n")
        self.assertEqual(transport.value(), b"CAPA\r\n")
        transport.clear()
        return results, protocol, transport

    def test_connects_to_port110(self) -> None:
        resolver = resolving(v4("192.0.2.5", 110))
        self.start(resolver, host="mail.example")
        self.assertEqual(resolver.asked, [("mail.example", 110)])
        self.assertEqual(self.reactor.tcpClients[0][:2], ("192.0.2.5", 110))

    def test_capa_after_greeting(self) -> None:
        """
        Nothing is sent before the whole greeting line; then CAPA; after its
        whole list, QUIT is written and the verdict is in without waiting
        for the answer to QUIT.
        """
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"+OK Dovecot")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b" ready.\r\n")
        self.assertEqual(transport.value(), b"CAPA\r\n")
        transport.clear()
        self.reactor.advance(0.5)
        protocol.dataReceived(CAPA[:20])
        self.assertEqual((transport.value(), results), (b"", []))
        protocol.dataReceived(CAPA[20:])
        self.assertEqual(transport.value(), b"QUIT\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "+OK")
        self.assertEqual(result.latency, 0.5)
        self.assertEqual(result.address, "127.0.0.1:110")

    def test_late_quit_reply_ignored(self) -> None:
        results, protocol, transport = self.greeted()
        protocol.dataReceived(CAPA)
        transport.clear()
        protocol.dataReceived(b"+OK Logging out.\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_bare_line_feeds(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"+OK hi\n")
        self.assertEqual(transport.value(), b"CAPA\r\n")
        protocol.dataReceived(b"+OK\nUSER\n.\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_greeting_err(self) -> None:
        """A server that greets with -ERR is message 87, quoting the reply."""
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"-ERR [SYS/TEMP] too many connections\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.NEGATIVE_REPLY, None, Phase.PARSE)
        self.assertEqual(result.reply, "-ERR [SYS/TEMP] too many connections")
        self.assertEqual(result.detail, "-ERR [SYS/TEMP] too many connections")

    def test_long_err_detail_truncated(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"-ERR " + b"e" * 1000 + b"\r\n")
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertEqual(result.message, MessageId.NEGATIVE_REPLY)
        self.assertLessEqual(len(result.detail), 130)
        self.assertTrue(result.detail.endswith("..."))

    def test_capa_err(self) -> None:
        results, protocol, transport = self.greeted()
        protocol.dataReceived(b"-ERR Unknown command\r\n")
        self.assertTrue(transport.aborted)
        self.assertNotIn(b"QUIT", transport.value())
        protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.NEGATIVE_REPLY, None, Phase.PARSE
        )

    def test_capa_list_unfinished_is_not_a_pass(self) -> None:
        results, protocol, transport = self.greeted()
        protocol.dataReceived(b"+OK\r\nUSER\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RECV_ERROR, 0, Phase.RECEIVE)

    def test_garbage(self) -> None:
        """Text that is no POP3 reply at all is 83 with 0."""
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220 smtp.example ESMTP\r\n")
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 0, Phase.PARSE)
        self.assertEqual(result.reply, "220 smtp.example ESMTP")
        self.assertEqual(result.detail, "not a POP3 status line")

    def test_binary_after_greeting(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"\x00\x01\x02\xff\n")
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 0, Phase.PARSE)
        self.assertTrue(result.reply.isprintable())

    def test_oversize_greeting(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"+OK " + b"x" * 10000)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 0, Phase.PARSE)
        self.assertEqual(result.detail, "line too long")

    def test_reply_before_the_command(self) -> None:
        """
        A greeting and a canned CAPA answer in one piece: the answer was
        there before CAPA was sent, which is 83 with 0, not a pass.
        """
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"+OK hi\r\n" + CAPA)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 0, Phase.PARSE)
        self.assertEqual(result.detail, "reply before the command was sent")

    def test_close_after_greeting_keeps_it(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RECV_ERROR, 0, Phase.WAIT)
        self.assertEqual(result.reply, "+OK Dovecot ready.")

    def test_close_mid_line(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"+OK Dove")
        protocol.connectionLost(closed())
        self.assertFailure_(self.assertOnlyResult(results), MessageId.RECV_ERROR, 0, Phase.RECEIVE)

    def test_deadline_waiting_for_capa(self) -> None:
        """The deadline covers the whole conversation, not each line."""
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        self.reactor.advance(9)
        protocol.dataReceived(b"+OK hi\r\n")
        self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.WAIT)

    def test_deadline_while_trickling(self) -> None:
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        greeting = b"+OK Dovecot (Debian) ready.\r\n"
        for byte in greeting[:10]:
            self.assertEqual(results, [])
            protocol.dataReceived(bytes([byte]))
            self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        protocol.dataReceived(greeting[10:])  # Too late: ignored.
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.RECEIVE)


class LoginTests(ProbeCase):
    """With --auth-file: CAPA, USER, PASS, STAT."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        request = ConversationRequest(
            port=110, credentials=BasicCredentials("watcher", "pw with spaces")
        )
        self.results = collect(Pop3Probe(self.reactor, request, resolving(v4(port=110))).probe())
        self.protocol, self.transport = connect(self.reactor)
        self.protocol.dataReceived(b"+OK hi\r\n")
        self.protocol.dataReceived(CAPA)
        self.assertEqual(self.transport.value(), b"CAPA\r\nUSER watcher\r\n")
        self.transport.clear()

    def test_login_and_stat(self) -> None:
        self.protocol.dataReceived(b"+OK\r\n")
        self.assertEqual(self.transport.value(), b"PASS pw with spaces\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"+OK Logged in.\r\n")
        self.assertEqual(self.transport.value(), b"STAT\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"+OK 2 320\r\n")
        self.assertEqual(self.transport.value(), b"QUIT\r\n")
        self.protocol.connectionLost(closed())
        result = self.assertOnlyResult(self.results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "+OK 2 320")

    def test_password_refused(self) -> None:
        self.protocol.dataReceived(b"+OK\r\n")
        self.protocol.dataReceived(b"-ERR [AUTH] Authentication failed.\r\n")
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.AUTH_REFUSED, 0, Phase.PARSE)
        self.assertEqual(result.reply, "-ERR [AUTH] Authentication failed.")

    def test_echoed_password_hidden(self) -> None:
        """A server that echoes the PASS it refuses has the password shown as ***."""
        self.protocol.dataReceived(b"+OK\r\n")
        self.protocol.dataReceived(b"-ERR bad command PASS pw with spaces\r\n")
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.AUTH_REFUSED, 0, Phase.PARSE)
        self.assertEqual(result.reply, "-ERR bad command PASS ***")
        self.assertNotIn("pw with", repr(result) + result.describe())

    def test_user_refused(self) -> None:
        self.protocol.dataReceived(b"-ERR no such user\r\n")
        self.protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(self.results), MessageId.AUTH_REFUSED, 0, Phase.PARSE
        )

    def test_logged_in_before_pass(self) -> None:
        """A "+OK Logged in." that came with the answer to USER, before PASS, is no pass."""
        self.protocol.dataReceived(b"+OK\r\n+OK Logged in.\r\n")
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 0, Phase.PARSE)

    def test_stat_err(self) -> None:
        """A mailbox that cannot be opened is the server's failure (87), not a login's."""
        self.protocol.dataReceived(b"+OK\r\n")
        self.protocol.dataReceived(b"+OK Logged in.\r\n")
        self.protocol.dataReceived(b"-ERR [IN-USE] Mailbox is locked\r\n")
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.NEGATIVE_REPLY, None, Phase.PARSE)
        self.assertEqual(result.detail, "-ERR [IN-USE] Mailbox is locked")


class StlsTests(ProbeCase):
    """STARTTLS: greeting, CAPA (with STLS), STLS, handshake, CAPA again."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        probe = Pop3Probe(
            self.reactor,
            ConversationRequest(
                host="mail.example",
                port=110,
                starttls=True,
                tls=TLSSettings(servername="mail.example", insecure=True),
            ),
            resolving(v4(port=110)),
        )
        self.results = collect(probe.probe())
        self.protocol, transport = connect(self.reactor, transport=TLSRecordingTransport())
        assert isinstance(transport, TLSRecordingTransport)
        self.transport = transport
        self.protocol.dataReceived(b"+OK hi\r\n")
        self.assertEqual(self.transport.value(), b"CAPA\r\n")
        self.transport.clear()

    def test_no_tls_on_connect(self) -> None:
        self.assertIsNone(self.transport.tls_started_with)

    def test_stls_not_offered(self) -> None:
        self.protocol.dataReceived(CAPA_NO_STLS)
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.STARTTLS_UNAVAILABLE, None, Phase.PARSE)

    def test_stls_in_status_line_does_not_count(self) -> None:
        self.protocol.dataReceived(b"+OK STLS\r\nUSER\r\n.\r\n")
        self.protocol.connectionLost(aborted())
        self.assertEqual(
            self.assertOnlyResult(self.results).message, MessageId.STARTTLS_UNAVAILABLE
        )

    def test_stls_refused(self) -> None:
        self.protocol.dataReceived(CAPA)
        self.assertEqual(self.transport.value(), b"STLS\r\n")
        self.protocol.dataReceived(b"-ERR TLS unavailable\r\n")
        self.assertIsNone(self.transport.tls_started_with)
        self.protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(self.results), MessageId.NEGATIVE_REPLY, None, Phase.PARSE
        )

    def test_full_conversation(self) -> None:
        self.protocol.dataReceived(CAPA)
        self.transport.clear()
        self.protocol.dataReceived(b"+OK Begin TLS negotiation now.\r\n")
        self.assertIsNotNone(self.transport.tls_started_with)
        self.assertEqual(self.transport.value(), b"")
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b"CAPA\r\n")
        self.transport.clear()
        self.protocol.dataReceived(CAPA_NO_STLS)
        self.assertEqual(self.transport.value(), b"QUIT\r\n")
        self.protocol.connectionLost(closed())
        result = self.assertOnlyResult(self.results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "+OK Capability list follows")

    def test_injected_lines_discarded(self) -> None:
        """
        Lines sent in plain text after the +OK to STLS (a man-in-the-middle
        injection) are not read as answers after the handshake, and do not
        make the probe pass.
        """
        self.protocol.dataReceived(CAPA)
        self.transport.clear()
        self.protocol.dataReceived(b"+OK go\r\n+OK\r\nUSER\r\n.\r\n")
        self.protocol.dataReceived(b"+OK more injected\r\n")
        self.assertEqual(self.results, [])
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b"CAPA\r\n")
        self.assertEqual(self.results, [])
        self.reactor.advance(10)
        self.protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(self.results), Phase.WAIT)

    def test_deadline_during_handshake(self) -> None:
        self.protocol.dataReceived(CAPA)
        self.protocol.dataReceived(b"+OK go\r\n")
        self.reactor.advance(10)
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(self.results), Phase.TLS)
