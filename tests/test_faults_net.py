"""
Network faults between a watch and its server (issue 6, "Fault-injection
tests").

The watch runs in a client network namespace, the server (nginx or
aiosmtpd) in a server namespace, joined by a veth pair with private
addresses that exist only inside the two namespaces (L{tests.netns}).  The
faults are made with the real tools inside the server namespace:

* packets dropped (C{iptables -j DROP}): the SYN is never answered, the
  probe's one deadline fires before the kernel's connect timeout: 74 (110);
* connections reset (C{iptables -j REJECT --reject-with tcp-reset}): 72 (111);
* replies dropped after the handshake (an nft rule passing only the SYN-ACK
  from the server port): the connection is made, the request arrives, no
  answer ever does -- a mid-connection stall: 74 (110);
* the link flapping (C{ip link set ... down/up}) for less than the retry
  window: no exit, message 95 once the server answers again;

and, on loopback, latency from a delaying TCP proxy of our own
(L{tests.delay_proxy}; the kernel here has no netem) below the timeout (no
exit) and above it (74).

Each failure asserts the exit code 1, the message id (with its number) of
every failed probe, and that the exit came within the bound the watch
printed at start-up (+0.5 s for process teardown), measured from the moment
the fault was injected.  Timing is C{-i 1 -c 2 -r 1}: a bound of 4 s.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.delay_proxy import DelayProxy
from tests.netns import (
    FAST,
    TEARDOWN,
    NetPair,
    assert_server_failed,
    failure_lines,
    netns_unavailable,
    no_traceback,
    start_aiosmtpd_at,
    start_nginx_at,
    started,
    wait_for_good_probes,
    watch_argv,
)
from tests.servers import Nginx, ServerProcess, ServerUnavailable, free_port
from tests.watchproc import Processes, WatchProcess, message

pytestmark = pytest.mark.integration

PORT = {"clp_httpmon": 8080, "clp_smtpmon": 2525}
KINDS = ["clp_httpmon", "clp_smtpmon"]


def _unavailable(reason: str) -> None:
    # scripts/test.sh (as root) installs iptables, nftables and iproute2.
    if os.environ.get("ISMON_REQUIRE_SERVERS") == "1" and os.geteuid() == 0:
        pytest.fail(f"{reason} (ISMON_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


@pytest.fixture
def net() -> Iterator[NetPair]:
    """A client and a server namespace joined by a veth pair; deleted afterwards."""
    reason = netns_unavailable()
    if reason is not None:
        if os.geteuid() != 0:
            pytest.skip(reason)
        _unavailable(reason)
    pair = NetPair.create()
    try:
        yield pair
    finally:
        pair.destroy()


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        _unavailable(f"{tool} is not installed (apt-get install {package})")


def _server(cmd: str, net: NetPair, directory: Path) -> ServerProcess:
    """The server for C{cmd}, inside the server namespace on its veth address."""
    try:
        if cmd == "clp_httpmon":
            return start_nginx_at(directory, net.server_addr, PORT[cmd], netns=net.server)
        return start_aiosmtpd_at(directory, net.server_addr, PORT[cmd], netns=net.server)
    except ServerUnavailable as e:
        _unavailable(f"server unavailable: {e}")
        raise


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Servers a test starts; stopped by PID when it ends."""
    started_: list[ServerProcess] = []
    try:
        yield started_
    finally:
        for server in reversed(started_):
            server.stop()


def _watch_in(
    net: NetPair,
    processes: Processes,
    cmd: str,
    watch_id: str,
    state: Path,
    timing: Sequence[str] = FAST,
) -> tuple[WatchProcess, float]:
    """
    A watch in the client namespace, probing the server across the veth;
    returns once it has probed successfully, with its printed bound.
    """
    argv = watch_argv(
        cmd, watch_id, net.server_addr, PORT[cmd], state, timing=timing, netns=net.client
    )
    watch = processes.start(argv, name=watch_id)
    bound = started(watch, cmd, watch_id)
    wait_for_good_probes(watch_id, state, 1)
    return watch, bound


def _access_count(server: ServerProcess) -> int:
    assert isinstance(server, Nginx)
    return len(server.access_lines())


# -- dropped, reset, stalled ----------------------------------------------------


@pytest.mark.parametrize("cmd", KINDS)
def test_dropped_packets_end_the_watch_with_a_timeout(
    cmd: str, net: NetPair, servers: list[ServerProcess], processes: Processes, tmp_path: Path
) -> None:
    """
    Every packet to the server port is dropped: connect never completes.
    The probe's single deadline (1 s) fires long before the kernel would
    give up on the SYN: message 74 with ETIMEDOUT, at the connect phase.
    """
    _need("iptables", "iptables")
    servers.append(_server(cmd, net, tmp_path / "server"))
    state = tmp_path / "state"
    watch, bound = _watch_in(net, processes, cmd, "drop1", state)
    assert bound == 4

    net.server.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(PORT[cmd]), "-j", "DROP")
    # The bound runs from when the fault is in place, not from before the
    # command that puts it there.
    fault_at = time.monotonic()
    assert_server_failed(
        watch, cmd, "drop1", fault_at=fault_at, bound=bound, number=74, nn=errno.ETIMEDOUT
    )
    assert "failed at connect: message 74 [110]" in watch.output()


@pytest.mark.parametrize("cmd", KINDS)
def test_reset_connections_end_the_watch_with_connect_error_111(
    cmd: str, net: NetPair, servers: list[ServerProcess], processes: Processes, tmp_path: Path
) -> None:
    """Every SYN is answered with a RST: connection refused, message 72 (111)."""
    _need("iptables", "iptables")
    servers.append(_server(cmd, net, tmp_path / "server"))
    state = tmp_path / "state"
    watch, bound = _watch_in(net, processes, cmd, "reset1", state)

    net.server.run(
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        str(PORT[cmd]),
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    )
    # The bound runs from when the fault is in place, not from before the
    # command that puts it there.
    fault_at = time.monotonic()
    elapsed = assert_server_failed(
        watch, cmd, "reset1", fault_at=fault_at, bound=bound, number=72, nn=errno.ECONNREFUSED
    )
    # A refusal is immediate: the watch is done after the first probe and
    # two retry gaps, it does not wait for timeouts.
    assert elapsed <= 1 + 2 * 1 + TEARDOWN, elapsed


# Lets through the SYN-ACK of the server port, drops everything else the
# server sends (data, ACKs, FIN, RST): connect completes, no answer comes.
_AFTER_HANDSHAKE = """\
table inet ismonfault {{
    chain out {{
        type filter hook output priority 0; policy accept;
        tcp sport {port} tcp flags & (syn | ack) != syn | ack drop
    }}
}}
"""


@pytest.mark.parametrize("cmd", KINDS)
def test_replies_dropped_after_the_handshake_stall_the_watch(
    cmd: str, net: NetPair, servers: list[ServerProcess], processes: Processes, tmp_path: Path
) -> None:
    """
    The server's packets after the SYN-ACK are dropped: the connection is
    made (the request even reaches nginx, which logs it), the answer never
    arrives.  Message 74 (110), not at the connect phase.
    """
    _need("nft", "nftables")
    server = _server(cmd, net, tmp_path / "server")
    servers.append(server)
    state = tmp_path / "state"
    watch, bound = _watch_in(net, processes, cmd, "mid1", state)
    before = _access_count(server) if cmd == "clp_httpmon" else 0

    net.server.nft(_AFTER_HANDSHAKE.format(port=PORT[cmd]))
    # The bound runs from when the fault is in place, not from before the
    # command that puts it there.
    fault_at = time.monotonic()
    assert_server_failed(
        watch, cmd, "mid1", fault_at=fault_at, bound=bound, number=74, nn=errno.ETIMEDOUT
    )
    output = watch.output()
    retried = [line for line in output.splitlines() if "will retry watching" in line]
    assert retried and not any("failed at connect" in line for line in retried), output
    if cmd == "clp_httpmon":
        # The HEADs of the failed probes arrived and were answered (into the void).
        assert _access_count(server) >= before + 3


# -- a flapping link --------------------------------------------------------------


@pytest.mark.parametrize("side", ["server", "client"])
def test_link_flap_shorter_than_the_retry_window_keeps_the_watch(
    side: str, net: NetPair, servers: list[ServerProcess], processes: Processes, tmp_path: Path
) -> None:
    """
    The veth goes down long enough for a probe to fail, then up again before
    the retries run out (-c 3): no exit; the watch logs 95 ("answers
    again"), forgets the failure and keeps probing past its bound.  With the
    client's end down the client has no route: 72 with ENETUNREACH (101);
    with the server's end down the SYN is lost: 74 (110).
    """
    cmd = "clp_httpmon"
    servers.append(_server(cmd, net, tmp_path / "server"))
    state = tmp_path / "state"
    # Retries 3 s apart: on a loaded machine taking a link down and up
    # again can take seconds, and it must fit in the window.
    retry = 3
    timing = ["-i", "1", "-c", "3", "-r", "1", "--retry-interval", str(retry)]
    watch, bound = _watch_in(net, processes, cmd, "flap1", state, timing=timing)
    assert bound == 1 + 3 * retry + 1

    down_at = time.monotonic()
    net.link(False, side)
    try:
        watch.wait_for("will retry watching HTTP", 2 * retry)
    finally:
        net.link(True, side)
    up_at = time.monotonic()
    # Up with one retry or more to go (the last one is 3 * retry after the
    # first failure, which came after the link went down).
    assert up_at - down_at < 2 * retry, "the link was down longer than the retries"
    watch.wait_for(re.escape(message(95, cmd, "flap1")) + "$", bound)
    expected = (
        message(72, cmd, "flap1", nn=errno.ENETUNREACH)
        if side == "client"
        else message(74, cmd, "flap1", nn=errno.ETIMEDOUT)
    )
    failures = failure_lines(watch.output())
    assert failures and all(line.endswith(expected) for line in failures), watch.output()

    # Past the bound, counted from when the link went down: had the failures
    # gone on, the watch would have ended by now.
    time.sleep(max(0.0, down_at + bound + 0.5 - time.monotonic()))
    assert watch.running(), watch.output()
    current = wait_for_good_probes("flap1", state, 1)
    assert current["state"] == "watching"
    assert current["consecutive_failures"] == 0
    no_traceback(watch.output())


# -- latency from a delaying proxy ----------------------------------------------------

# cmd -> (one-way delay below the timeout, above it).  HTTP: connect, HEAD,
# answer: 2 delays.  SMTP: greeting, NOOP, reply: 3 delays.
DELAYS = {"clp_httpmon": (0.2, 0.6), "clp_smtpmon": (0.1, 0.5)}


@pytest.fixture
def loopback_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    cmd = request.param
    port = free_port()
    try:
        if cmd == "clp_httpmon":
            server: ServerProcess = start_nginx_at(tmp_path / "server", "127.0.0.1", port)
        else:
            server = start_aiosmtpd_at(tmp_path / "server", "127.0.0.1", port)
    except ServerUnavailable as e:
        _unavailable(f"server unavailable: {e}")
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("loopback_server", KINDS, indirect=True)
def test_latency_below_the_timeout_keeps_the_watch_and_above_it_ends_it(
    loopback_server: ServerProcess, processes: Processes, tmp_path: Path
) -> None:
    """
    Through the proxy, each probe takes about two (HTTP) or three (SMTP)
    one-way delays longer.  Below the timeout: no failure for longer than
    the bound, and the latency the watch reports shows the delay.  Raised
    above the timeout: 74 (110) for every probe, exit 1 within the bound of
    the change.
    """
    server = loopback_server
    cmd = "clp_httpmon" if isinstance(server, Nginx) else "clp_smtpmon"
    below, above = DELAYS[cmd]
    hops = 2 if cmd == "clp_httpmon" else 3
    state = tmp_path / "state"
    with DelayProxy("127.0.0.1", server.port, delay=below) as proxy:
        watch = processes.start(
            watch_argv(cmd, "slow1", "127.0.0.1", proxy.port, state), name="watch"
        )
        bound = started(watch, cmd, "slow1")
        first = wait_for_good_probes("slow1", state, 1)
        # More good probes in a row than the retries the watch allows.
        current = wait_for_good_probes("slow1", state, first["probes"] + 3)
        assert watch.running()
        assert failure_lines(watch.output()) == [], watch.output()
        assert current["failures"] == 0
        latency = current["last_probe"]["latency"]
        assert hops * below - 0.05 <= latency < 1.0, current["last_probe"]

        fault_at = time.monotonic()
        proxy.delay = above
        assert_server_failed(
            watch, cmd, "slow1", fault_at=fault_at, bound=bound, number=74, nn=errno.ETIMEDOUT
        )
        assert proxy.connections >= first["probes"] + 3
