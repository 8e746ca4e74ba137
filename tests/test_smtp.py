# -*- test-case-name: tests.test_smtp -*-
"""
Tests for L{ismon.probes.smtp}: the greeting / NOOP / QUIT conversation, STARTTLS,
the login of --auth-file (AUTH PLAIN or LOGIN), and the SMTP probe's verdicts
(docs/failure-rules.md, SMTP), on a L{MemoryReactorClock}; and the login's
command line.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from ismon.cmdline.options import ParameterError, SmtpOptions
from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, SmtpRequest, TLSSettings
from ismon.core.result import Phase
from ismon.probes.probe import IProbe
from ismon.probes.smtp import SmtpProbe, _local_name
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


class SmtpProbeTests(ConnectionFailureTests, ProbeCase):
    """
    L{SmtpProbe} against a scripted server.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, resolver: Any = None, **request: Any) -> list[Any]:
        request.setdefault("helo_name", "monitor.example")
        probe = SmtpProbe(self.reactor, SmtpRequest(**request), resolver or resolving(v4(port=25)))
        self.assertTrue(IProbe.providedBy(probe))
        return collect(probe.probe())

    def test_connects_to_port25(self) -> None:
        resolver = resolving(v4("192.0.2.5", 25))
        self.start(resolver, host="mail.example")
        self.assertEqual(resolver.asked, [("mail.example", 25)])
        self.assertEqual(self.reactor.tcpClients[0][:2], ("192.0.2.5", 25))

    def test_noop_after_greeting(self) -> None:
        """
        Nothing is sent before the complete (multi-line) greeting; then
        NOOP; after 250, QUIT is written and the verdict is in without
        waiting for 221.
        """
        results = self.start()
        protocol, transport = connect(self.reactor)
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"220-mail.example ESMTP Postfix\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"220-no UCE\r\n220 ")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"ready\r\n")
        self.assertEqual(transport.value(), b"NOOP\r\n")
        transport.clear()
        self.reactor.advance(0.5)
        protocol.dataReceived(b"250 2.0.0 Ok\r\n")
        self.assertEqual(transport.value(), b"QUIT\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        # The connection closes (our close), with no 221 ever sent.
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "250 2.0.0 Ok")
        self.assertEqual(result.latency, 0.5)
        self.assertEqual(result.address, "127.0.0.1:25")

    def test_late_quit_reply_ignored(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220 hi\r\n")
        protocol.dataReceived(b"250 ok\r\n")
        transport.clear()
        protocol.dataReceived(b"221 bye\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_bare_line_feeds(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220 hi\n")
        self.assertEqual(transport.value(), b"NOOP\r\n")
        protocol.dataReceived(b"250\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_greeting421(self) -> None:
        """
        A server refusing under load (sendmail's RefuseLA) is 83 with 421.
        """
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"421 4.3.2 mail.example too busy\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 421, Phase.PARSE)
        self.assertEqual(result.reply, "421 4.3.2 mail.example too busy")

    def test_greeting554(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"554 no service\r\n")
        protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 554, Phase.PARSE
        )

    def test_noop500(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220 hi\r\n")
        transport.clear()
        protocol.dataReceived(b"500 5.5.1 command unrecognized\r\n")
        self.assertTrue(transport.aborted)
        self.assertNotIn(b"QUIT", transport.value())
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 500, Phase.PARSE)

    def test_noop_other_positive(self) -> None:
        """
        A NOOP reply must be exactly 250.
        """
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"220 hi\r\n251 odd\r\n")
        protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 251, Phase.PARSE
        )

    def test_garbage(self) -> None:
        """
        Text that is no SMTP reply at all is 83 with 0.
        """
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 400 Bad Request\r\n")
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 0, Phase.PARSE)
        self.assertEqual(result.reply, "HTTP/1.1 400 Bad Request")
        self.assertEqual(result.detail, "not an SMTP reply")

    def test_garbage_after_greeting(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"220 hi\r\n")
        protocol.dataReceived(b"\x00\x01\x02\n")
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 0, Phase.PARSE)
        self.assertTrue(result.reply.isprintable())

    def test_oversize_greeting(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220 " + b"x" * 10000)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 0, Phase.PARSE
        )

    def test_code_mismatch(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"220-hi\r\n250 ok\r\n")
        protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 0, Phase.PARSE
        )

    # -- connection failures (and more in ConnectionFailureTests) --------------

    def test_close_after_greeting_keeps_it(self) -> None:
        """
        A close after the greeting is 75 with 0, and the last reply is kept
        for the log.
        """
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"220 mail.example\r\n")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RECV_ERROR, 0, Phase.WAIT)
        self.assertEqual(result.reply, "220 mail.example")

    def test_close_mid_reply(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"220-mail.example\r\n")
        protocol.connectionLost(closed())
        self.assertFailure_(self.assertOnlyResult(results), MessageId.RECV_ERROR, 0, Phase.RECEIVE)

    # -- the deadline (also in ConnectionFailureTests) -------------------------

    def test_deadline_while_connecting(self) -> None:
        results = self.start(timeout=10)
        self.reactor.advance(10)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertTimedOut(self.assertOnlyResult(results), Phase.CONNECT)

    def test_deadline_waiting_for_noop_reply(self) -> None:
        """
        The deadline covers the whole conversation, not each line.
        """
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        self.reactor.advance(9)
        protocol.dataReceived(b"220 hi\r\n")
        self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.WAIT)

    def test_deadline_while_trickling(self) -> None:
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        greeting = b"220 mail.example ESMTP\r\n"
        for byte in greeting[:10]:
            self.assertEqual(results, [])
            protocol.dataReceived(bytes([byte]))
            self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(greeting[10:])  # Too late: ignored.
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.RECEIVE)


class StartTlsTests(ProbeCase):
    """
    STARTTLS: greeting, EHLO, STARTTLS, handshake, EHLO again, NOOP.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.probe = SmtpProbe(
            self.reactor,
            SmtpRequest(
                host="mail.example",
                starttls=True,
                tls=TLSSettings(servername="mail.example", insecure=True),
                helo_name="monitor.example",
            ),
            resolving(v4(port=25)),
        )
        self.results = collect(self.probe.probe())
        self.protocol, self.transport = connect(self.reactor, transport=TLSRecordingTransport())
        self.transport_ = self.transport
        assert isinstance(self.transport, TLSRecordingTransport)

    def greet_and_ehlo(self, ehlo_reply: bytes) -> None:
        self.protocol.dataReceived(b"220 mail.example ESMTP\r\n")
        self.assertEqual(self.transport.value(), b"EHLO monitor.example\r\n")
        self.transport.clear()
        self.protocol.dataReceived(ehlo_reply)

    def test_no_plain_text_tls_on_connect(self) -> None:
        """
        STARTTLS connects in plain text (no implicit TLS wrapper).
        """
        self.assertIsNone(self.transport.tls_started_with)

    def test_starttls_not_offered(self) -> None:
        self.greet_and_ehlo(b"250-mail.example\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.STARTTLS_UNAVAILABLE, None, Phase.PARSE)

    def test_single_line_ehlo(self) -> None:
        self.greet_and_ehlo(b"250 mail.example\r\n")
        self.protocol.connectionLost(aborted())
        self.assertEqual(
            self.assertOnlyResult(self.results).message, MessageId.STARTTLS_UNAVAILABLE
        )

    def test_starttls_in_greeting_does_not_count(self) -> None:
        """
        Only the EHLO reply's extension lines count, and its first line is
        the server's name, not an extension.
        """
        self.greet_and_ehlo(b"250-STARTTLS\r\n250 SIZE 1\r\n")
        self.protocol.connectionLost(aborted())
        self.assertEqual(
            self.assertOnlyResult(self.results).message, MessageId.STARTTLS_UNAVAILABLE
        )

    def test_ehlo_refused(self) -> None:
        self.greet_and_ehlo(b"502 5.5.2 Error: command not recognized\r\n")
        self.protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(self.results), MessageId.INVALID_STATUS, 502, Phase.PARSE
        )

    def test_starttls_sent(self) -> None:
        self.greet_and_ehlo(b"250-mail.example\r\n250-starttls\r\n250 8BITMIME\r\n")
        self.assertEqual(self.transport.value(), b"STARTTLS\r\n")
        self.assertIsNone(self.transport.tls_started_with)
        self.assertEqual(self.results, [])

    def test_starttls_refused(self) -> None:
        self.greet_and_ehlo(b"250-mail.example\r\n250 STARTTLS\r\n")
        self.protocol.dataReceived(b"454 4.7.0 TLS not available due to local problem\r\n")
        self.assertTrue(self.transport.aborted)
        self.assertIsNone(self.transport.tls_started_with)
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 454, Phase.PARSE)

    def test_full_conversation(self) -> None:
        self.greet_and_ehlo(b"250-mail.example\r\n250 STARTTLS\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"220 2.0.0 Ready to start TLS\r\n")
        self.assertIsNotNone(self.transport.tls_started_with)
        self.assertEqual(self.transport.value(), b"")
        # The handshake completes (the TLS layer tells the protocol).
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b"EHLO monitor.example\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"250-mail.example\r\n250 SIZE 1\r\n")
        self.assertEqual(self.transport.value(), b"NOOP\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"250 2.0.0 Ok\r\n")
        self.assertEqual(self.transport.value(), b"QUIT\r\n")
        self.protocol.connectionLost(closed())
        result = self.assertOnlyResult(self.results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "250 2.0.0 Ok")

    def test_injected_replies_discarded(self) -> None:
        """
        Replies that arrive in plain text after the 220 to STARTTLS (a
        man-in-the-middle injection, CVE-2011-0411 style) are not read as
        answers after the handshake.
        """
        self.greet_and_ehlo(b"250-mail.example\r\n250 STARTTLS\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"220 go ahead\r\n250-injected\r\n250 x\r\n250 ok\r\n")
        self.protocol.dataReceived(b"250 more injected\r\n")
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b"EHLO monitor.example\r\n")
        self.assertEqual(self.results, [])

    def test_deadline_during_handshake(self) -> None:
        self.greet_and_ehlo(b"250-mail.example\r\n250 STARTTLS\r\n")
        self.protocol.dataReceived(b"220 go ahead\r\n")
        self.reactor.advance(10)
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(self.results), Phase.TLS)

    def test_tls_failure_during_handshake(self) -> None:
        from OpenSSL import SSL
        from twisted.python.failure import Failure

        self.greet_and_ehlo(b"250-mail.example\r\n250 STARTTLS\r\n")
        self.protocol.dataReceived(b"220 go ahead\r\n")
        self.protocol.connectionLost(
            Failure(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        )
        result = self.assertOnlyResult(self.results)
        self.assertEqual((result.message, result.phase), (MessageId.TLS_VERIFY_ERROR, Phase.TLS))


class LocalNameTests(SynchronousTestCase):
    def test_hostname(self) -> None:
        import socket

        self.patch(socket, "gethostname", lambda: "node1.cluster.example")
        self.assertEqual(_local_name(), "node1.cluster.example")

    def test_odd_hostname_falls_back(self) -> None:
        import socket

        for odd in ("", "bad name", "x\r\nMAIL FROM:<a@b>"):
            with self.subTest(name=odd):
                self.patch(socket, "gethostname", lambda odd=odd: odd)
                self.assertEqual(_local_name(), "localhost")

    def test_helo_name_default(self) -> None:
        import socket

        self.patch(socket, "gethostname", lambda: "node7")
        reactor = MemoryReactorClock()
        probe = SmtpProbe(reactor, SmtpRequest(starttls=False), resolving(v4(port=25)))
        probe.probe()
        # Only visible with STARTTLS (EHLO); without it the name is unused,
        # but the probe was built without touching the network.
        self.assertEqual(probe._helo, "node7")


USER, PASSWORD = "watcher", "s3cret-Pw"
PLAIN_TOKEN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()


class LoginTests(ProbeCase):
    """
    --auth-file: EHLO, then AUTH PLAIN (initial response) if offered, else
    AUTH LOGIN; 235, then NOOP.  A refusal is 86 with the code.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, **request: Any) -> None:
        request.setdefault("helo_name", "monitor.example")
        probe = SmtpProbe(
            self.reactor,
            SmtpRequest(credentials=BasicCredentials(USER, PASSWORD), **request),
            resolving(v4(port=25)),
        )
        self.results = collect(probe.probe())
        self.protocol, self.transport = connect(self.reactor, transport=TLSRecordingTransport())

    def said(self, data: bytes) -> bytes:
        """The server says C{data}; what the probe wrote in answer."""
        self.transport.clear()
        self.protocol.dataReceived(data)
        return self.transport.value()

    def ehlo(self, reply: bytes) -> bytes:
        self.start()
        self.assertEqual(self.said(b"220 mail.example ESMTP\r\n"), b"EHLO monitor.example\r\n")
        return self.said(reply)

    def passes(self) -> None:
        self.assertEqual(self.said(b"250 2.0.0 Ok\r\n"), b"QUIT\r\n")
        self.protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(self.results).ok)

    def refused(self, code: int | None, reply: str = "") -> Any:
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertFailure_(result, MessageId.AUTH_REFUSED, code, Phase.PARSE)
        if reply:
            self.assertEqual(result.reply, reply)
        return result

    def test_plain_when_offered(self) -> None:
        sent = self.ehlo(b"250-mail.example\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n")
        self.assertEqual(sent, f"AUTH PLAIN {PLAIN_TOKEN}\r\n".encode())
        self.assertEqual(self.said(b"235 2.7.0 Authentication successful\r\n"), b"NOOP\r\n")
        self.passes()

    def test_login_when_plain_is_not_offered(self) -> None:
        """The AUTH=LOGIN of servers written for old clients counts too."""
        self.assertEqual(self.ehlo(b"250-mail.example\r\n250 AUTH=LOGIN\r\n"), b"AUTH LOGIN\r\n")
        user = base64.b64encode(USER.encode())
        self.assertEqual(self.said(b"334 VXNlcm5hbWU6\r\n"), user + b"\r\n")
        password = base64.b64encode(PASSWORD.encode())
        self.assertEqual(self.said(b"334 UGFzc3dvcmQ6\r\n"), password + b"\r\n")
        self.assertEqual(self.said(b"235 2.7.0 Authentication successful\r\n"), b"NOOP\r\n")
        self.passes()

    def test_refused_is_86_with_the_code(self) -> None:
        self.ehlo(b"250-mail.example\r\n250 AUTH PLAIN\r\n")
        self.assertEqual(self.said(b"535 5.7.8 Authentication credentials invalid\r\n"), b"")
        self.refused(535, "535 5.7.8 Authentication credentials invalid")

    def test_login_refused_at_the_user(self) -> None:
        self.ehlo(b"250-mail.example\r\n250 AUTH LOGIN\r\n")
        self.said(b"334 VXNlcm5hbWU6\r\n")
        self.said(b"535 no such user\r\n")
        self.refused(535)

    def test_login_mechanism_refused(self) -> None:
        self.ehlo(b"250-mail.example\r\n250 AUTH LOGIN\r\n")
        self.said(b"504 5.5.4 Unrecognized authentication type\r\n")
        self.refused(504)

    def test_no_mechanism_offered_is_86_with_0(self) -> None:
        self.assertEqual(self.ehlo(b"250-mail.example\r\n250 AUTH CRAM-MD5\r\n"), b"")
        result = self.refused(0)
        self.assertEqual(result.detail, "the server offers neither AUTH PLAIN nor AUTH LOGIN")

    def test_a_single_line_ehlo_offers_nothing(self) -> None:
        self.assertEqual(self.ehlo(b"250 mail.example AUTH PLAIN\r\n"), b"")
        self.refused(0)

    def test_a_failing_ehlo_is_83(self) -> None:
        self.ehlo(b"421 4.3.2 shutting down\r\n")
        self.protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(self.results), MessageId.INVALID_STATUS, 421, Phase.PARSE
        )

    def test_a_failing_noop_after_the_login_is_83(self) -> None:
        self.ehlo(b"250-mail.example\r\n250 AUTH PLAIN\r\n")
        self.said(b"235 ok\r\n")
        self.said(b"500 what\r\n")
        self.protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(self.results), MessageId.INVALID_STATUS, 500, Phase.PARSE
        )

    def test_echoed_secrets_are_hidden(self) -> None:
        """A server that echoes the password, or the base64 it was sent in, shows ***."""
        self.ehlo(b"250-mail.example\r\n250 AUTH PLAIN\r\n")
        self.said(f"535-bad {PLAIN_TOKEN}\r\n535 bad {PASSWORD}\r\n".encode())
        result = self.refused(535)
        self.assertEqual(result.reply, "535 bad *** / 535 bad ***")

    def test_garbage_echoing_the_password_is_hidden(self) -> None:
        self.ehlo(b"250-mail.example\r\n250 AUTH LOGIN\r\n")
        self.said(b"334 VXNlcm5hbWU6\r\n")
        self.said(b"334 UGFzc3dvcmQ6\r\n")
        self.said(f"what is {PASSWORD}?\r\n".encode())
        self.protocol.connectionLost(aborted())
        result = self.assertOnlyResult(self.results)
        self.assertEqual((result.message, result.number), (MessageId.INVALID_STATUS, 0))
        self.assertNotIn(PASSWORD, result.reply + result.detail)

    def test_after_starttls_the_second_ehlo_decides(self) -> None:
        """
        AUTH offered before STARTTLS does not count (RFC 3207 §4.2): only the
        EHLO over TLS says which mechanisms there are.
        """
        self.start(starttls=True, tls=TLSSettings(servername="mail.example", insecure=True))
        self.said(b"220 mail.example ESMTP\r\n")
        self.assertEqual(
            self.said(b"250-mail.example\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"), b"STARTTLS\r\n"
        )
        self.said(b"220 go ahead\r\n")
        self.transport.clear()
        self.protocol.handshakeCompleted()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.value(), b"EHLO monitor.example\r\n")
        self.assertEqual(self.said(b"250-mail.example\r\n250 AUTH LOGIN\r\n"), b"AUTH LOGIN\r\n")

    def test_without_credentials_no_ehlo(self) -> None:
        probe = SmtpProbe(self.reactor, SmtpRequest(helo_name="m"), resolving(v4(port=25)))
        probe.probe()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220 hi\r\n")
        self.assertEqual(transport.value(), b"NOOP\r\n")


class LoginOptionsTests(SynchronousTestCase):
    """--auth-file for SMTP: only over TLS unless --insecure; the file rules of the others."""

    def setUp(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="ismon-smtp-login-"))
        self.addCleanup(shutil.rmtree, folder)
        self.auth = folder / "auth"
        self.auth.write_text(f"{USER}:{PASSWORD}\n")
        self.auth.chmod(0o600)

    def parse(self, *args: str) -> SmtpRequest:
        options = SmtpOptions()
        options.parseOptions(["m1", "--auth-file", str(self.auth), *args])
        assert options.config is not None
        request = options.config.request
        assert isinstance(request, SmtpRequest)
        return request

    def refusal(self, *args: str) -> str:
        with self.assertRaises(ParameterError) as refused:
            self.parse(*args)
        return refused.exception.detail

    def test_over_tls(self) -> None:
        for args in (["--tls"], ["--starttls"], ["--starttls", "--insecure"]):
            request = self.parse(*args)
            self.assertEqual(request.credentials, BasicCredentials(USER, PASSWORD))
            self.assertIsNotNone(request.tls)
            self.assertNotIn(PASSWORD, repr(request))

    def test_not_in_the_clear(self) -> None:
        self.assertEqual(
            self.refusal(),
            "--auth-file needs --tls or --starttls (the password would cross the network in the"
            " clear), or --insecure to allow that",
        )

    def test_in_the_clear_with_insecure(self) -> None:
        request = self.parse("--insecure")
        self.assertIsNone(request.tls)
        self.assertIsNotNone(request.credentials)
        self.assertEqual(
            self.refusal("--insecure", "--ca-file", "/etc/hostname"),
            "--ca-file needs --tls or --starttls",
        )

    def test_insecure_alone_still_needs_tls(self) -> None:
        with self.assertRaises(ParameterError) as refused:
            SmtpOptions().parseOptions(["m1", "--insecure"])
        self.assertEqual(refused.exception.detail, "--insecure needs --tls or --starttls")

    def test_the_file_rules(self) -> None:
        self.auth.chmod(0o644)
        self.assertIn("mode", self.refusal("--tls"))
