# -*- test-case-name: tests.test_ftp -*-
"""
Tests for L{ismon.probes.ftp}: the greeting / NOOP / QUIT conversation, the
optional login, AUTH TLS, and the FTP probe's verdicts
(README "What counts as a failure", FTP), on a L{MemoryReactorClock}.  The real
daemon is in L{tests.test_ftp_vsftpd}, the misbehaving ones in
L{tests.test_hostile_ftp}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase
from ismon.probes.ftp import FtpProbe
from ismon.probes.probe import REPLY_LIMIT, IProbe
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

M = MessageId
LOGIN = BasicCredentials("watcher", "s3cret")


class FtpProbeTests(ConnectionFailureTests, ProbeCase):
    """L{FtpProbe} against a scripted server."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, resolver: Any = None, **request: Any) -> list[Any]:
        request.setdefault("port", 21)
        probe = FtpProbe(self.reactor, ConversationRequest(**request), resolver or resolving())
        self.assertTrue(IProbe.providedBy(probe))
        return collect(probe.probe())

    def converse(self, *exchanges: tuple[bytes, bytes], **request: Any) -> list[Any]:
        """
        Start a probe and play C{(server says, probe must answer)} pairs;
        the connection then closes cleanly.
        """
        results = self.start(**request)
        protocol, transport = connect(self.reactor)
        self.assertEqual(transport.value(), b"")
        for said, answer in exchanges:
            protocol.dataReceived(said)
            self.assertEqual(transport.value(), answer, said)
            transport.clear()
        protocol.connectionLost(closed() if not transport.aborted else aborted())
        return results

    def assertFails(
        self, results: list[Any], message: MessageId, number: int | None, phase: Phase = Phase.PARSE
    ) -> str:
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, message, number, phase)
        return str(result.reply)

    def test_connects_to_the_port_asked(self) -> None:
        resolver = resolving(v4("192.0.2.7", 21))
        self.start(resolver, host="ftp.example")
        self.assertEqual(resolver.asked, [("ftp.example", 21)])
        self.assertEqual(self.reactor.tcpClients[0][:2], ("192.0.2.7", 21))

    def test_noop_200_passes_and_quit_is_not_awaited(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220 (vsFTPd 3.0.3)\r\n")
        self.assertEqual(transport.value(), b"NOOP\r\n")
        transport.clear()
        self.reactor.advance(0.25)
        protocol.dataReceived(b"200 NOOP ok.\r\n")
        self.assertEqual(transport.value(), b"QUIT\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        protocol.dataReceived(b"221 Goodbye.\r\n")  # late: ignored
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "200 NOOP ok.")
        self.assertEqual(result.latency, 0.25)

    def test_noop_530_shows_a_working_command_loop(self) -> None:
        """vsftpd answers NOOP before a login with 530: without a login that passes."""
        results = self.converse(
            (b"220 (vsFTPd 3.0.3)\r\n", b"NOOP\r\n"),
            (b"530 Please login with USER and PASS.\r\n", b"QUIT\r\n"),
        )
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_multiline_greeting_without_codes_inside(self) -> None:
        """RFC 959 §4.2: nothing is sent before the closing "220 " line."""
        results = self.start()
        protocol, transport = connect(self.reactor)
        for part in (b"220-Welcome\r\n", b"  to the archive\r\n", b"220-", b"x\r\n220 "):
            protocol.dataReceived(part)
            self.assertEqual(transport.value(), b"", part)
        protocol.dataReceived(b"ready\r\n")
        self.assertEqual(transport.value(), b"NOOP\r\n")
        protocol.dataReceived(b"200 ok\r\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_bare_line_feeds_and_bare_codes(self) -> None:
        results = self.converse((b"220\n", b"NOOP\r\n"), (b"200\n", b"QUIT\r\n"))
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_greeting_120_is_not_ready(self) -> None:
        """120 "service ready in nnn minutes": the daemon cannot serve now."""
        reply = self.assertFails(
            self.converse((b"120 Service ready in 5 minutes.\r\n", b"")), M.INVALID_STATUS, 120
        )
        self.assertEqual(reply, "120 Service ready in 5 minutes.")

    def test_greeting_421(self) -> None:
        results = self.converse((b"421 Too many users, sorry.\r\n", b""))
        self.assertFails(results, M.INVALID_STATUS, 421)

    def test_noop_errors(self) -> None:
        for code in (500, 502, 421, 202, 250, 331):
            with self.subTest(code=code):
                self.setUp()
                results = self.converse((b"220 hi\r\n", b"NOOP\r\n"), (b"%d no\r\n" % code, b""))
                self.assertFails(results, M.INVALID_STATUS, code)

    def test_not_a_reply(self) -> None:
        for said in (b"SSH-2.0-OpenSSH_9.6\r\n", b"+OK POP3\r\n", b"\x16\x03\x01\x00"):
            with self.subTest(said=said):
                self.setUp()
                self.assertFails(self.converse((said, b"")), M.INVALID_STATUS, 0)

    def test_reply_before_the_command(self) -> None:
        """A 200 in the same read as the greeting was sent before NOOP was."""
        results = self.converse((b"220 hi\r\n200 canned\r\n", b"NOOP\r\n"))
        reply = self.assertFails(results, M.INVALID_STATUS, 200)
        self.assertEqual(reply, "200 canned")

    def test_partial_reply_before_the_command(self) -> None:
        results = self.converse((b"220 hi\r\n2", b"NOOP\r\n"))
        self.assertFails(results, M.INVALID_STATUS, 0)

    def test_close_after_greeting(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"220 hi\r\n")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, M.RECV_ERROR, 0, Phase.WAIT)
        self.assertEqual(result.reply, "220 hi")

    def test_deadline_mid_reply(self) -> None:
        results = self.start(timeout=5)
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"220-part")
        self.reactor.advance(5)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.RECEIVE)

    # -- the login -------------------------------------------------------------

    def test_login_user_pass_noop(self) -> None:
        results = self.converse(
            (b"220 hi\r\n", b"USER watcher\r\n"),
            (b"331 Please specify the password.\r\n", b"PASS s3cret\r\n"),
            (b"230 Login successful.\r\n", b"NOOP\r\n"),
            (b"200 NOOP ok.\r\n", b"QUIT\r\n"),
            credentials=LOGIN,
        )
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_login_230_after_user(self) -> None:
        """A server that needs no password answers USER with 230."""
        results = self.converse(
            (b"220 hi\r\n", b"USER watcher\r\n"),
            (b"230 welcome\r\n", b"NOOP\r\n"),
            (b"200 ok\r\n", b"QUIT\r\n"),
            credentials=LOGIN,
        )
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_login_refused(self) -> None:
        for step in ("user", "pass"):
            with self.subTest(step=step):
                self.setUp()
                exchanges = [(b"220 hi\r\n", b"USER watcher\r\n")]
                if step == "pass":
                    exchanges.append((b"331 password\r\n", b"PASS s3cret\r\n"))
                exchanges.append((b"530 Login incorrect.\r\n", b""))
                results = self.converse(*exchanges, credentials=LOGIN)
                self.assertFails(results, M.AUTH_REFUSED, 530)

    def test_login_other_replies(self) -> None:
        results = self.converse(
            (b"220 hi\r\n", b"USER watcher\r\n"),
            (b"332 Need account for login.\r\n", b""),
            credentials=LOGIN,
        )
        self.assertFails(results, M.INVALID_STATUS, 332)

    def test_noop_530_after_a_login_fails(self) -> None:
        """Logged in, NOOP must be 200: 530 then means the login did not hold."""
        results = self.converse(
            (b"220 hi\r\n", b"USER watcher\r\n"),
            (b"331 password\r\n", b"PASS s3cret\r\n"),
            (b"230 ok\r\n", b"NOOP\r\n"),
            (b"530 Please login with USER and PASS.\r\n", b""),
            credentials=LOGIN,
        )
        self.assertFails(results, M.INVALID_STATUS, 530)

    def test_password_never_in_the_result(self) -> None:
        results = self.converse(
            (b"220 hi\r\n", b"USER watcher\r\n"),
            (b"331 password\r\n", b"PASS s3cret\r\n"),
            (b"500 OOPS: s3cret leaked by a broken server\r\n", b""),
            credentials=LOGIN,
        )
        result = self.assertOnlyResult(results)
        # A server that echoes the password has it shown as *** (README
        # "Running a watch": never shown), in the reply and everything after.
        self.assertEqual(result.reply, "500 OOPS: *** leaked by a broken server")
        self.assertNotIn("s3cret", repr(result) + result.describe())
        self.assertNotIn("s3cret", repr(ConversationRequest(credentials=LOGIN)))

    def test_a_huge_banner_is_cut_short_in_the_result(self) -> None:
        """
        A 50 KiB multi-line greeting that the server then cuts off: the
        result keeps REPLY_LIMIT characters of it, so the status document
        stays small enough for the control socket.
        """
        banner = b"220-" + b"x" * 70 + b"\r\n"
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(banner * 700)
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, M.RECV_ERROR, 0, Phase.RECEIVE)
        self.assertLessEqual(len(result.reply), REPLY_LIMIT)


class FtpTlsTests(ProbeCase):
    """AUTH TLS (RFC 4217) and implicit TLS."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, starttls: bool, **request: Any) -> tuple[list[Any], Any, TLSRecordingTransport]:
        probe = FtpProbe(
            self.reactor,
            ConversationRequest(
                host="ftp.example",
                port=21,
                starttls=starttls,
                tls=TLSSettings(servername="ftp.example", insecure=True),
                **request,
            ),
            resolving(v4(port=21)),
        )
        results = collect(probe.probe())
        transport = TLSRecordingTransport()
        protocol, _ = connect(self.reactor, transport=transport)
        return results, protocol, transport

    def test_auth_tls_then_noop(self) -> None:
        results, protocol, transport = self.start(True)
        self.assertIsNone(transport.tls_started_with)
        protocol.dataReceived(b"220 hi\r\n")
        self.assertEqual(transport.value(), b"AUTH TLS\r\n")
        transport.clear()
        protocol.dataReceived(b"234 Proceed with negotiation.\r\n")
        self.assertIsNotNone(transport.tls_started_with)
        self.assertEqual(transport.value(), b"")
        protocol.handshakeCompleted()
        self.assertEqual(transport.value(), b"NOOP\r\n")
        transport.clear()
        protocol.dataReceived(b"530 Please login with USER and PASS.\r\n")
        self.assertEqual(transport.value(), b"QUIT\r\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_auth_tls_then_login(self) -> None:
        """The login goes out only inside TLS; no PBSZ/PROT (no data connection)."""
        results, protocol, transport = self.start(True, credentials=LOGIN)
        protocol.dataReceived(b"220 hi\r\n")
        protocol.dataReceived(b"234 go\r\n")
        self.assertEqual(transport.value(), b"AUTH TLS\r\n")
        transport.clear()
        protocol.handshakeCompleted()
        self.assertEqual(transport.value(), b"USER watcher\r\n")
        transport.clear()
        protocol.dataReceived(b"331 pw\r\n")
        protocol.dataReceived(b"230 in\r\n")
        protocol.dataReceived(b"200 ok\r\n")
        self.assertEqual(transport.value(), b"PASS s3cret\r\nNOOP\r\nQUIT\r\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_auth_tls_refused(self) -> None:
        for code in (500, 502, 504, 530, 534):
            with self.subTest(code=code):
                self.setUp()
                results, protocol, transport = self.start(True)
                protocol.dataReceived(b"220 hi\r\n")
                protocol.dataReceived(b"%d not here\r\n" % code)
                self.assertTrue(transport.aborted)
                self.assertIsNone(transport.tls_started_with)
                protocol.connectionLost(aborted())
                result = self.assertOnlyResult(results)
                self.assertFailure_(result, M.STARTTLS_UNAVAILABLE, None, Phase.PARSE)

    def test_auth_tls_other_reply(self) -> None:
        results, protocol, _ = self.start(True)
        protocol.dataReceived(b"220 hi\r\n")
        protocol.dataReceived(b"431 Unable to accept security mechanism.\r\n")
        protocol.connectionLost(aborted())
        self.assertFailure_(self.assertOnlyResult(results), M.INVALID_STATUS, 431, Phase.PARSE)

    def test_injected_replies_discarded(self) -> None:
        """
        Plain text after the 234 (an injection, CVE-2011-0411 style) is not
        read as an answer after the handshake.
        """
        results, protocol, transport = self.start(True)
        protocol.dataReceived(b"220 hi\r\n")
        transport.clear()
        protocol.dataReceived(b"234 go\r\n200 injected\r\n")
        protocol.dataReceived(b"200 more injected\r\n")
        protocol.handshakeCompleted()
        self.assertEqual(transport.value(), b"NOOP\r\n")
        self.assertEqual(results, [])
        self.reactor.advance(10)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.WAIT)

    def test_deadline_during_handshake(self) -> None:
        results, protocol, _ = self.start(True)
        protocol.dataReceived(b"220 hi\r\n")
        protocol.dataReceived(b"234 go\r\n")
        self.reactor.advance(10)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.TLS)
