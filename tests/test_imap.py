# -*- test-case-name: tests.test_imap -*-
"""
Tests for L{ismon.probes.imap}: the greeting / NOOP / LOGOUT conversation, LOGIN,
STARTTLS, and the IMAP4 probe's verdicts (README "What counts as a
failure", IMAP4), on a L{MemoryReactorClock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase
from ismon.probes.imap import ImapProbe
from ismon.probes.probe import IProbe
from tests.test_probe import (
    ConnectionFailureTests,
    ProbeCase,
    TLSRecordingTransport,
    aborted,
    closed,
    collect,
    connect,
    resolving,
    v4,
)

GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"
PASSWORD = 's3cr"et\\pw'


class ImapProbeTests(ConnectionFailureTests, ProbeCase):
    """
    L{ImapProbe} against a scripted server.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, resolver: Any = None, **request: Any) -> list[Any]:
        request.setdefault("port", 143)
        probe = ImapProbe(
            self.reactor, ConversationRequest(**request), resolver or resolving(v4(port=143))
        )
        self.assertTrue(IProbe.providedBy(probe))
        return collect(probe.probe())

    def greeted(self, **request: Any) -> tuple[list[Any], Any, Any]:
        """A probe past the greeting: C{A1 NOOP} (or LOGIN) is out."""
        results = self.start(**request)
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(GREETING)
        return results, protocol, transport

    def assertFailsWith(
        self, results: list[Any], protocol: Any, message: MessageId, number: int | None
    ) -> Any:
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, message, number, Phase.PARSE)
        return result

    def test_connects_to_the_port(self) -> None:
        resolver = resolving(v4("192.0.2.5", 143))
        self.start(resolver, host="mail.example")
        self.assertEqual(resolver.asked, [("mail.example", 143)])
        self.assertEqual(self.reactor.tcpClients[0][:2], ("192.0.2.5", 143))

    def test_completion_split_before_the_command_is_no_answer(self) -> None:
        """
        A canned "A1 OK" that began in the greeting's read, before A1 NOOP
        went out, and ends in the next read, is no answer: 83 with 0.
        """
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(GREETING + b"A1 OK canned")
        protocol.dataReceived(b"\r\n")
        self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)

    def test_untagged_data_split_across_reads_is_fine(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(GREETING + b"* 3 EXI")
        protocol.dataReceived(b"STS\r\nA1 OK NOOP completed.\r\n")
        self.assertEqual(transport.value(), b"A1 NOOP\r\nA2 LOGOUT\r\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_noop_after_greeting(self) -> None:
        """
        Nothing is sent before the whole greeting line; then A1 NOOP;
        untagged lines before its completion are allowed; after A1 OK,
        A2 LOGOUT is written and the verdict is in without waiting for BYE.
        """
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(GREETING[:20])
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(GREETING[20:])
        self.assertEqual(transport.value(), b"A1 NOOP\r\n")
        transport.clear()
        self.reactor.advance(0.5)
        protocol.dataReceived(
            b"* 3 EXISTS\r\n* NO [ALERT] quota nearly full\r\n* OK still here\r\n"
        )
        self.assertEqual(transport.value(), b"")
        self.assertEqual(results, [])
        protocol.dataReceived(b"A1 OK NOOP completed.\r\n")
        self.assertEqual(transport.value(), b"A2 LOGOUT\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "A1 OK NOOP completed.")
        self.assertEqual(result.latency, 0.5)
        self.assertEqual(result.address, "127.0.0.1:143")

    def test_preauth_greeting(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"* PREAUTH logged in as smith\n")
        self.assertEqual(transport.value(), b"A1 NOOP\r\n")
        protocol.dataReceived(b"A1 OK\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_late_logout_reply_ignored(self) -> None:
        results, protocol, transport = self.greeted()
        protocol.dataReceived(b"A1 OK\r\n")
        transport.clear()
        protocol.dataReceived(b"* BYE Logging out\r\nA2 OK Logout completed.\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_untagged_with_the_greeting(self) -> None:
        """Untagged data may arrive with the greeting, before A1 went out."""
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(GREETING + b"* CAPABILITY IMAP4rev1\r\n")
        protocol.dataReceived(b"A1 OK\r\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_literal_in_untagged_data(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"* 1 FETCH (BODY[] {12}\r\nA1 OK forge)\r\n")
        self.assertEqual(results, [])
        protocol.dataReceived(b"A1 OK\r\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    # -- negative replies: 87 ---------------------------------------------------

    def test_bye_greeting(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"* BYE Too many connections\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.aborted)
        result = self.assertFailsWith(results, protocol, MessageId.NEGATIVE_REPLY, None)
        self.assertEqual(result.detail, "* BYE Too many connections")
        self.assertEqual(result.reply, "* BYE Too many connections")

    def test_no_and_bad_greetings(self) -> None:
        for greeting in (b"* NO not now\r\n", b"* BAD internal error\r\n"):
            with self.subTest(greeting=greeting):
                self.reactor = MemoryReactorClock()
                results = self.start()
                protocol, _ = connect(self.reactor)
                protocol.dataReceived(greeting)
                self.assertFailsWith(results, protocol, MessageId.NEGATIVE_REPLY, None)

    def test_noop_refused(self) -> None:
        for answer in (b"A1 NO server busy\r\n", b"A1 BAD Error in IMAP command\r\n"):
            with self.subTest(answer=answer):
                self.reactor = MemoryReactorClock()
                results, protocol, transport = self.greeted()
                transport.clear()
                protocol.dataReceived(answer)
                self.assertTrue(transport.aborted)
                self.assertNotIn(b"LOGOUT", transport.value())
                result = self.assertFailsWith(results, protocol, MessageId.NEGATIVE_REPLY, None)
                self.assertEqual(result.detail, answer.decode().strip())

    def test_bye_during_noop(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"* BYE Server shutting down.\r\n")
        self.assertFailsWith(results, protocol, MessageId.NEGATIVE_REPLY, None)

    def test_untagged_bad_during_noop(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"* BAD internal server failure\r\n")
        self.assertFailsWith(results, protocol, MessageId.NEGATIVE_REPLY, None)

    # -- not a reply: 83 with 0 ------------------------------------------------

    def test_pop3_banner(self) -> None:
        """Another protocol's banner is refused at its first bytes."""
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"+OK")
        self.assertTrue(transport.aborted)
        result = self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)
        self.assertEqual((result.reply, result.detail), ("+OK", "not an IMAP response"))

    def test_binary(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"\xff\xfe\x1b\x80")
        result = self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)
        self.assertTrue(result.reply.isprintable())

    def test_data_as_greeting(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"* CAPABILITY IMAP4rev1\r\n")
        result = self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)
        self.assertEqual(result.detail, "not an IMAP greeting")

    def test_tagged_greeting(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"A1 OK ready\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)

    def test_reply_before_the_command(self) -> None:
        """
        A completion that was here before A1 NOOP went out (the greeting and
        a canned A1 OK in one segment) is no answer.
        """
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(GREETING + b"A1 OK canned\r\n")
        self.assertEqual(transport.value(), b"A1 NOOP\r\n")
        result = self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)
        self.assertEqual(result.detail, "reply before the command was sent")
        self.assertEqual(result.reply, "A1 OK canned")

    def test_wrong_tag(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"A0 OK what\r\n")
        result = self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)
        self.assertEqual(result.detail, "reply to no command sent (tag A0)")

    def test_continuation(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"+ go ahead\r\n")
        self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)

    def test_oversize_greeting(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"* OK " + b"x" * 10000)
        self.assertTrue(transport.aborted)
        result = self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)
        self.assertEqual(result.detail, "line too long")

    def test_huge_literal(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"* 1 FETCH (BODY[] {1000000000}\r\n")
        result = self.assertFailsWith(results, protocol, MessageId.INVALID_STATUS, 0)
        self.assertEqual(result.detail, "literal too large")

    # -- connection failures (and more in ConnectionFailureTests) --------------

    def test_close_after_greeting_keeps_it(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RECV_ERROR, 0, Phase.WAIT)
        self.assertEqual(result.reply, GREETING.decode().strip())

    def test_close_mid_response(self) -> None:
        results, protocol, _ = self.greeted()
        protocol.dataReceived(b"A1 O")
        protocol.connectionLost(closed())
        self.assertFailure_(self.assertOnlyResult(results), MessageId.RECV_ERROR, 0, Phase.RECEIVE)

    # -- the deadline (also in ConnectionFailureTests) -------------------------

    def test_deadline_waiting_for_the_completion(self) -> None:
        """The deadline covers the whole conversation, not each line."""
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        self.reactor.advance(9)
        protocol.dataReceived(GREETING)
        protocol.dataReceived(b"* OK keep-alive\r\n")
        self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.WAIT)

    def test_deadline_while_trickling(self) -> None:
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        for byte in GREETING[:10]:
            self.assertEqual(results, [])
            protocol.dataReceived(bytes([byte]))
            self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        protocol.dataReceived(GREETING[10:])  # Too late: ignored.
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.RECEIVE)


class LoginTests(ProbeCase):
    """With credentials: LOGIN with quoted strings, then NOOP."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        request = ConversationRequest(port=143, credentials=BasicCredentials("wat cher", PASSWORD))
        self.results = collect(ImapProbe(self.reactor, request, resolving(v4(port=143))).probe())
        self.protocol, self.transport = connect(self.reactor)

    def test_login_then_noop(self) -> None:
        self.protocol.dataReceived(GREETING)
        self.assertEqual(self.transport.value(), b'A1 LOGIN "wat cher" "s3cr\\"et\\\\pw"\r\n')
        self.transport.clear()
        self.protocol.dataReceived(b"A1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
        self.assertEqual(self.transport.value(), b"A2 NOOP\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"A2 OK NOOP completed.\r\n")
        self.assertEqual(self.transport.value(), b"A3 LOGOUT\r\n")
        self.protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(self.results).ok)

    def test_refused(self) -> None:
        """A tagged NO to LOGIN is message 86 with 0; the password is nowhere."""
        self.protocol.dataReceived(GREETING)
        self.transport.clear()
        self.protocol.dataReceived(b"A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.AUTH_REFUSED, 0, Phase.PARSE)
        self.assertNotIn("s3cr", repr(result) + result.describe())

    def test_echoed_password_hidden(self) -> None:
        """
        A server that echoes LOGIN gets its text shown with the password
        hidden, as typed and as quoted.
        """
        for echo in (
            b'A1 BAD Error in IMAP command LOGIN "wat cher" "s3cr\\"et\\\\pw"\r\n',
            b"A1 NO no such password: " + PASSWORD.encode() + b"\r\n",
            b"\x00 " + PASSWORD.encode(),
        ):
            with self.subTest(echo=echo):
                self.setUp()
                self.protocol.dataReceived(GREETING)
                self.protocol.dataReceived(echo)
                self.protocol.connectionLost(aborted())
                result = self.assertOnlyResult(self.results)
                self.assertFalse(result.ok)
                shown = repr(result) + result.describe()
                self.assertIn("***", shown)
                self.assertNotIn("s3cr", shown)

    def test_bad_login(self) -> None:
        self.protocol.dataReceived(GREETING)
        self.protocol.dataReceived(b"A1 BAD Error in IMAP command LOGIN\r\n")
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.NEGATIVE_REPLY, None, Phase.PARSE)

    def test_preauth_needs_no_login(self) -> None:
        self.protocol.dataReceived(b"* PREAUTH ready\r\n")
        self.assertEqual(self.transport.value(), b"A1 NOOP\r\n")

    def test_credentials_no_quoted_string_carries(self) -> None:
        """
        CR, LF or NUL cannot go in a quoted string: the probe refuses to be
        made (the options refuse such a file first, with message 11).
        """
        for password in ("a\r\nA2 LOGOUT", "a\x00"):
            with self.subTest(password=password):
                request = ConversationRequest(credentials=BasicCredentials("u", password))
                self.assertRaises(ValueError, ImapProbe, self.reactor, request)


class StartTlsTests(ProbeCase):
    """
    STARTTLS: greeting, CAPABILITY, STARTTLS, handshake, NOOP; tags keep counting.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.start()

    def start(self, **request: Any) -> None:
        probe = ImapProbe(
            self.reactor,
            ConversationRequest(
                host="mail.example",
                port=143,
                starttls=True,
                tls=TLSSettings(servername="mail.example", insecure=True),
                **request,
            ),
            resolving(v4(port=143)),
        )
        self.results = collect(probe.probe())
        transport = TLSRecordingTransport()
        self.protocol, _ = connect(self.reactor, transport=transport)
        self.transport = transport

    def greet_and_ask(self, capability: bytes) -> None:
        self.protocol.dataReceived(GREETING)
        self.assertEqual(self.transport.value(), b"A1 CAPABILITY\r\n")
        self.assertIsNone(self.transport.tls_started_with)
        self.transport.clear()
        self.protocol.dataReceived(capability)

    def fails_with(self, message: MessageId, number: int | None = None) -> None:
        self.assertTrue(self.transport.aborted)
        self.assertIsNone(self.transport.tls_started_with)
        self.protocol.connectionLost(aborted())
        self.assertFailure_(self.assertOnlyResult(self.results), message, number, Phase.PARSE)

    def test_not_offered(self) -> None:
        self.greet_and_ask(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA1 OK done\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.fails_with(MessageId.STARTTLS_UNAVAILABLE)

    def test_greeting_code_does_not_count(self) -> None:
        """The greeting's [CAPABILITY ...] code is not asked; the answer is."""
        self.greet_and_ask(b"A1 OK no untagged CAPABILITY at all\r\n")
        self.fails_with(MessageId.STARTTLS_UNAVAILABLE)

    def test_capability_refused(self) -> None:
        self.greet_and_ask(b"A1 BAD unknown command\r\n")
        self.fails_with(MessageId.NEGATIVE_REPLY)

    def test_starttls_refused(self) -> None:
        self.greet_and_ask(b"* CAPABILITY IMAP4rev1 STARTTLS\r\nA1 OK\r\n")
        self.assertEqual(self.transport.value(), b"A2 STARTTLS\r\n")
        self.protocol.dataReceived(b"A2 NO TLS not available\r\n")
        self.fails_with(MessageId.NEGATIVE_REPLY)

    def test_preauth(self) -> None:
        """A PREAUTH greeting leaves no way to STARTTLS: 94."""
        self.protocol.dataReceived(b"* PREAUTH ready\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.fails_with(MessageId.STARTTLS_UNAVAILABLE)

    def test_full_conversation(self) -> None:
        self.greet_and_ask(b"* CAPABILITY IMAP4rev1 starttls\r\nA1 OK\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"A2 OK Begin TLS negotiation now.\r\n")
        self.assertIsNotNone(self.transport.tls_started_with)
        self.assertEqual(self.transport.value(), b"")
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b"A3 NOOP\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"A3 OK\r\n")
        self.assertEqual(self.transport.value(), b"A4 LOGOUT\r\n")
        self.protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(self.results).ok)

    def test_login_after_the_handshake(self) -> None:
        self.reactor = MemoryReactorClock()
        self.start(credentials=BasicCredentials("u", "p"))
        self.greet_and_ask(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\nA1 OK\r\n")
        self.protocol.dataReceived(b"A2 OK\r\n")
        self.transport.clear()
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b'A3 LOGIN "u" "p"\r\n')
        self.transport.clear()
        self.protocol.dataReceived(b"A3 OK\r\n")
        self.assertEqual(self.transport.value(), b"A4 NOOP\r\n")

    def test_injected_responses_discarded(self) -> None:
        """
        Responses sent in plain text after the OK to STARTTLS (a man in the
        middle) are not read after the handshake: no verdict from them.
        """
        self.greet_and_ask(b"* CAPABILITY STARTTLS\r\nA1 OK\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"A2 OK go\r\nA3 OK injected\r\n* OK")
        self.protocol.dataReceived(b" more\r\nA3 OK injected again\r\n")
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b"A3 NOOP\r\n")
        self.assertEqual(self.results, [])

    def test_deadline_during_handshake(self) -> None:
        self.greet_and_ask(b"* CAPABILITY STARTTLS\r\nA1 OK\r\n")
        self.protocol.dataReceived(b"A2 OK\r\n")
        self.reactor.advance(10)
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(self.results), Phase.TLS)
