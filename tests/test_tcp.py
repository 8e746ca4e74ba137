# -*- test-case-name: tests.test_tcp -*-
"""
The plain TCP watch (L{ismon.probes.tcp}): its command line; the probe on a
fake clock (connect only, send only, the search gathered over a trickle
and never past the deadline, the end of the input, a flood, nothing left
behind); against a real redis-server (C{--send 'PING\\r\\n' --expect
'\\+PONG'}); and real C{clp_tcpmon} processes: healthy, and their exit
within the printed bound once redis is stopped (SIGSTOP).

The hostile server's TCP misbehaviours through the same probe are in
L{tests.test_hostile_tcp}.
"""

from __future__ import annotations

import errno
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.testing import MemoryReactorClock

from ismon.cmdline.options import ParameterError, TcpOptions
from ismon.core.catalogue import MessageId
from ismon.core.requests import TcpRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.tcp import SEARCH_GAP, TcpProbe
from ismon.wire.tcp import MAX_EXPECT_BYTES
from tests.conftest import FreshDnsTcpServers
from tests.redis_server import Redis
from tests.test_hostile import Leaks
from tests.test_probe import ProbeCase, aborted, closed, collect, connect, reset, resolving, v4
from tests.test_watch import started, wait_for_probes
from tests.watchproc import Processes, command, exits_within_bound, watch_argv

M = MessageId
PING, PONG = r"PING\r\n", r"\+PONG"

# --------------------------------------------------------------------------
# The command line


def parse(*args: str) -> TcpRequest:
    options = TcpOptions()
    options.parseOptions(["t1", *args])
    assert options.config is not None
    request = options.config.request
    assert isinstance(request, TcpRequest)
    return request


def refusal(*args: str) -> str:
    with pytest.raises(ParameterError) as refused:
        TcpOptions().parseOptions(["t1", *args])
    return refused.value.detail


def test_the_port_is_required() -> None:
    said = "-n (port) must be given: TCP has no standard port"
    assert refusal() == said
    assert refusal("--tls") == said
    assert parse("-n", "6379") == TcpRequest(host="localhost", port=6379, timeout=10)


def test_every_option() -> None:
    request = parse("-s", "127.0.0.1", "-n", "6380", "--send", PING, "--expect", PONG, "--tls")
    assert (request.send, request.expect) == (PING, PONG)
    assert request.tls == TLSSettings(servername="127.0.0.1")
    assert request.target() == "tcps://127.0.0.1:6380"
    assert parse("-n", "1").target() == "tcp://localhost:1"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--send", "a\\t"), "--send: unknown escape \\t at character 2"),
        (("--send", "x\\"), "--send: 'x\\\\' ends with a lone backslash"),
        (("--send", ""), "--send: the text to send is empty"),
        (("--expect", "(?=a)b"), "--expect: '(?=a)b' is not a regex RE2 accepts"),
        (("--expect", "a*"), "--expect: 'a*' matches the empty input"),
        (("--expect", "é"), "--expect: 'é' is not ASCII"),
        (("--expect", "a", "--expect", "b"), "--expect is given twice: give one regex"),
    ],
)
def test_refusals(args: tuple[str, ...], said: str) -> None:
    assert refusal("-n", "1", *args).startswith(said)


def test_control_commands_need_no_port() -> None:
    options = TcpOptions()
    options.parseOptions(["t1", "--pause"])
    assert options.control is not None and options.control.command == "clp_tcpmon"


# --------------------------------------------------------------------------
# The probe on a fake clock


class TcpProbeTests(ProbeCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, timeout: float = 10, **request: Any) -> tuple[list[Any], Any, Any]:
        probe = TcpProbe(
            self.reactor,
            TcpRequest(host="192.0.2.1", port=6379, timeout=timeout, **request),
            resolving(v4("192.0.2.1", 6379)),
        )
        results = collect(probe.probe())
        protocol, transport = connect(self.reactor)
        return results, protocol, transport

    def test_connect_only(self) -> None:
        results, protocol, transport = self.start()
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(closed())
        self.reactor.advance(1)
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "connected")

    def test_send_only(self) -> None:
        results, protocol, transport = self.start(send=PING)
        self.assertEqual(transport.value(), b"PING\r\n")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertEqual((result.ok, result.reply), (True, "sent 6 bytes"))

    def test_match(self) -> None:
        results, protocol, transport = self.start(send=PING, expect=PONG)
        self.assertEqual(transport.value(), b"PING\r\n")
        self.reactor.advance(0.2)
        protocol.dataReceived(b"+PONG\r\n")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertEqual(
            (result.ok, result.reply, result.latency), (True, 'matched "+PONG" at byte 0', 0.2)
        )

    def test_a_trickle_is_searched_once_a_gap(self) -> None:
        """
        40 KiB a byte per millisecond: a search at most every SEARCH_GAP, so
        the 40960 arrivals cost a few thousand searches, and the match at the
        very end is still found before the deadline.
        """
        results, protocol, _ = self.start(timeout=50, expect=r"\+PONG")
        payload = b"x" * (40 * 1024 - 5) + b"+PONG"
        for byte in payload:
            protocol.dataReceived(bytes([byte]))
            self.reactor.advance(0.001)
        self.reactor.advance(SEARCH_GAP)
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok, result.describe())
        self.assertEqual(result.reply, f'matched "+PONG" at byte {len(payload) - 5}')
        # The endpoint wraps the conversation (_WrappingProtocol).
        searches = protocol._wrappedProtocol._matcher.searches  # type: ignore[attr-defined]
        self.assertLessEqual(searches, len(payload) * 0.001 / SEARCH_GAP + 2)

    def test_the_first_bytes_after_a_quiet_spell_are_searched_at_once(self) -> None:
        results, protocol, transport = self.start(expect=PONG)
        protocol.dataReceived(b"-ERR x\r\n")
        self.reactor.advance(1)
        protocol.dataReceived(b"+PONG\r\n")
        self.assertTrue(transport.disconnecting)  # decided at once, not a gap later
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertEqual((result.ok, result.latency), (True, 1))

    def test_gathered_bytes_are_searched_before_the_deadline(self) -> None:
        """A match in a trickle's last bytes counts when it came in time."""
        results, protocol, _ = self.start(timeout=1, expect=PONG)
        self.reactor.advance(0.995)
        protocol.dataReceived(b"+PO")
        self.reactor.advance(0.001)
        protocol.dataReceived(b"NG")  # searched later than the gap allows: before the deadline
        self.reactor.advance(0.004)
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok, result.describe())

    def test_no_match_within_the_deadline(self) -> None:
        results, protocol, transport = self.start(timeout=3, send=PING, expect=PONG)
        protocol.dataReceived(b"+PON")
        self.reactor.advance(3)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.RECEIVE)

    def test_the_deadline_while_a_search_waits_leaves_no_timer(self) -> None:
        results, protocol, _ = self.start(timeout=3, expect=PONG)
        protocol.dataReceived(b"a")
        self.reactor.advance(2.9995)
        protocol.dataReceived(b"b")  # its search waits; the deadline comes first
        self.reactor.advance(0.0005)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.RECEIVE)

    def test_a_close_before_a_match(self) -> None:
        results, protocol, _ = self.start(send=PING, expect=PONG)
        protocol.dataReceived(b"-ERR")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, M.RECV_ERROR, 0, Phase.RECEIVE)
        self.assertEqual(
            result.detail, 'the connection closed after 4 bytes without a match: "-ERR"'
        )
        self.assertEqual(result.reply, "-ERR")

    def test_the_end_of_the_input_is_the_close(self) -> None:
        r"""C{$} matches only at the close: what a trickle's end cannot undo."""
        results, protocol, _ = self.start(expect=r"bye\r\n$")
        protocol.dataReceived(b"bye\r\n")
        self.reactor.advance(1)
        self.assertEqual(results, [])
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_gathered_bytes_count_at_the_close(self) -> None:
        results, protocol, _ = self.start(expect=PONG)
        protocol.dataReceived(b"x")
        protocol.dataReceived(b"+PONG")  # gathered, not yet searched
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_a_reset(self) -> None:
        results, protocol, _ = self.start(expect=PONG)
        protocol.dataReceived(b"+PO")
        protocol.connectionLost(reset())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, M.RECV_ERROR, errno.ECONNRESET, Phase.RECEIVE)
        self.assertEqual(
            result.detail, 'connection reset by the server; no match in the 3 bytes received: "+PO"'
        )

    def test_a_flood_is_83_at_the_bound(self) -> None:
        results, protocol, transport = self.start(expect=PONG)
        chunk = b"y" * 4096
        for _ in range(MAX_EXPECT_BYTES // len(chunk) + 1):
            if results:
                break
            protocol.dataReceived(chunk)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, M.INVALID_STATUS, 0, Phase.PARSE)
        self.assertEqual(result.detail, f"no match in the first {MAX_EXPECT_BYTES} bytes")


# --------------------------------------------------------------------------
# Against redis-server


async def probe(request: TcpRequest) -> tuple[ProbeResult, float]:
    from twisted.internet import reactor

    leaks = Leaks()
    start = time.monotonic()
    try:
        result = await TcpProbe(reactor, request).probe()
    finally:
        leaks.check()
    return result, time.monotonic() - start


@pytest.mark.parametrize(
    ("send", "expect", "reply"),
    [
        (PING, PONG, 'matched "+PONG" at byte 0'),
        (PING, r"^\+PONG\r\n", 'matched "+PONG\\r\\n" at byte 0'),
        (r"INFO server\r\n", r"redis_version:\d+\.", 'matched "redis_version:'),
        (PING, None, "sent 6 bytes"),
        (None, None, "connected"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_redis(redis: Redis, send: str | None, expect: str | None, reply: str) -> None:
    request = TcpRequest(host=redis.host, port=redis.port, timeout=5, send=send, expect=expect)
    result, elapsed = await probe(request)
    assert result.ok, result.describe()
    assert result.reply.startswith(reply), result.reply
    assert elapsed < 1.0


@pytest_twisted.ensureDeferred
async def test_redis_without_the_expected_answer_times_out(redis: Redis) -> None:
    request = TcpRequest(host=redis.host, port=redis.port, timeout=1, send=PING, expect=r"\+PANG")
    result, elapsed = await probe(request)
    # +PONG came, and did not match: the deadline struck while reading.
    assert (result.message, result.number, result.phase) == (
        M.SELECT_ERROR,
        errno.ETIMEDOUT,
        Phase.RECEIVE,
    ), result.describe()
    assert 0.95 <= elapsed <= 1.5


@pytest_twisted.ensureDeferred
async def test_redis_closing_on_quit(redis: Redis) -> None:
    """QUIT is answered, then the connection closes: +OK matches, +PONG does not."""
    quit_ = r"QUIT\r\n"
    ok = await probe(
        TcpRequest(host=redis.host, port=redis.port, timeout=5, send=quit_, expect=r"^\+OK\r\n\z")
    )
    assert ok[0].ok, ok[0].describe()
    closed_, _ = await probe(
        TcpRequest(host=redis.host, port=redis.port, timeout=5, send=quit_, expect=PONG)
    )
    assert (closed_.message, closed_.number) == (M.RECV_ERROR, 0), closed_.describe()
    assert closed_.detail == 'the connection closed after 5 bytes without a match: "+OK\\r\\n"'


# --------------------------------------------------------------------------
# Real watch processes


@pytest.mark.integration
def test_stalled_redis_ends_the_watch_within_its_bound(
    fresh_dns_tcp_servers: FreshDnsTcpServers, processes: Processes, tmp_path: Path
) -> None:
    """
    clp_tcpmon --send 'PING\\r\\n' --expect '\\+PONG' on a healthy redis
    probes well (status, metrics); once redis is stopped (SIGSTOP) no probe
    gets its answer (74), and the watch exits 1 within the bound it printed.
    """
    server = fresh_dns_tcp_servers.redis()
    state = tmp_path / "state"
    watch = processes.start(
        watch_argv(
            "clp_tcpmon",
            "redis1",
            server.host,
            server.port,
            state,
            "--send",
            PING,
            "--expect",
            PONG,
        ),
        name="watch",
    )
    bound = watch.detection_bound()
    started(watch, "clp_tcpmon", "redis1")
    current = wait_for_probes(processes, "redis1", state, 2)
    assert (current["protocol"], current["target"]) == ("tcp", f"tcp://127.0.0.1:{server.port}")
    metrics = processes.run([*command("ismon"), "metrics", "--state-dir", str(state)]).stdout
    assert re.search(
        r'^ismon_probe_success\{watch="redis1",protocol="tcp",[^}]*\} 1$', metrics, re.M
    )
    with server.stalled():
        exits_within_bound(
            watch,
            bound,
            "clp_tcpmon",
            "redis1",
            f"The clp_tcpmon has detected network error(select error[{errno.ETIMEDOUT}]).",
        )
    record = json.loads((state / "redis1.last").read_text())
    assert (record["protocol"], record["exit_code"]) == ("tcp", 1), record
