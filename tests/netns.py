"""
Network namespaces for fault-injection tests: a client namespace and a
server namespace joined by a veth pair, with private addresses that exist
only inside them (10.231.N.1/30 on the client side, 10.231.N.2/30 on the
server side).  Nothing is added to the machine's own network namespace: the
veth ends are created directly inside the namespaces.

    with NetPair.create() as net:
        server = start_nginx_at(tmp / "nginx", net.server_addr, 8080, netns=net.server)
        watch = subprocess.Popen(net.client.argv("clp_httpmon", "w1", "-s", net.server_addr, ...))
        net.server.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
        net.flap(0.5)                           # link down, wait, link up

Every process started in a namespace must be ended by the test; L{NetPair.destroy}
(also run at interpreter exit for pairs still alive) ends whatever is left in
the two namespaces -- by construction only processes this module's user
started there -- and deletes them.

Also here: servers at a chosen address and port, optionally inside a
namespace (L{start_nginx_at}, L{start_aiosmtpd_at}), so that a test can
restart one on the same port or run it behind the veth.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests import watchproc
from tests.servers import (
    START_TIMEOUT,
    Aiosmtpd,
    Nginx,
    ServerUnavailable,
    nginx_binary,
    nginx_conf,
)
from tests.watchproc import FAST, PATIENCE, WatchProcess, command, message

__all__ = [
    "CLIENT_SCRIPT",
    "FAST",
    "TEARDOWN",
    "NetLan",
    "NetPair",
    "Netns",
    "assert_server_failed",
    "client_answers",
    "failure_lines",
    "netns_unavailable",
    "no_traceback",
    "start_aiosmtpd_at",
    "start_nginx_at",
    "started",
    "wait_for_good_probes",
    "wait_for_port_in",
    "watch_argv",
    "watch_status",
]

# The checkout, for code run inside a namespace that imports tests.procs.
_CHECKOUT = Path(__file__).resolve().parent.parent
IP = shutil.which("ip") or "/usr/sbin/ip"
_COUNTER = itertools.count(1)
_ALIVE: list[NetPair] = []
_ALIVE_LANS: list[NetLan] = []


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 10.0, stdin: str = "") -> str:
    result = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed with {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def _delete_namespaces(namespaces: Sequence[Netns]) -> None:
    """End what still runs in C{namespaces} (SIGKILL), then delete them."""
    for ns in namespaces:
        for pid in ns.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
    for ns in namespaces:
        # A namespace lives on while a process holds it; wait for them.
        deadline = time.monotonic() + PATIENCE
        while ns.pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        _run([IP, "netns", "del", ns.name], check=False)


_UNAVAILABLE: list[str | None] = []


def netns_unavailable() -> str | None:
    """Why namespaces with veth and firewall rules cannot be made here (None: they can)."""
    if _UNAVAILABLE:
        return _UNAVAILABLE[0]
    reason: str | None = None
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    elif not os.path.exists(IP):
        reason = "iproute2 (ip) is not installed"
    else:
        try:
            NetPair.create().destroy()
        except Exception as e:
            reason = f"cannot create network namespaces with a veth pair: {e}"
    _UNAVAILABLE.append(reason)
    return reason


class Netns:
    """One network namespace of ours, by name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def argv(self, *command: str) -> list[str]:
        """C{command} run inside this namespace (C{ip netns exec} execs it: same PID)."""
        return [IP, "netns", "exec", self.name, *command]

    def run(self, *command: str, check: bool = True, stdin: str = "") -> str:
        """Run C{command} inside the namespace to its end; its stdout."""
        return _run(self.argv(*command), check=check, stdin=stdin)

    def pids(self) -> list[int]:
        """Processes whose network namespace is this one."""
        out = _run([IP, "netns", "pids", self.name], check=False)
        return [int(word) for word in out.split() if word.isdigit()]

    def nft(self, script: str) -> None:
        """Load an nft script (C{nft -f -}) into this namespace."""
        self.run("nft", "-f", "-", stdin=script)

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"


class NetPair:
    """
    Two namespaces, C{client} and C{server}, and a veth pair between them:
    C{client_if} (C{client_addr}) in the client namespace, C{server_if}
    (C{server_addr}) in the server namespace.  Loopback is up in both.
    """

    client_if = "ismc0"
    server_if = "isms0"

    def __init__(self, number: int) -> None:
        tag = f"ismon-{os.getpid()}-{number}"
        self.client = Netns(f"{tag}-c")
        self.server = Netns(f"{tag}-s")
        subnet = number % 64 * 4
        self.client_addr = f"10.231.{os.getpid() % 250}.{subnet + 1}"
        self.server_addr = f"10.231.{os.getpid() % 250}.{subnet + 2}"
        self._created: list[Netns] = []

    @classmethod
    def create(cls) -> NetPair:
        pair = cls(next(_COUNTER))
        _ALIVE.append(pair)
        try:
            pair._build()
        except BaseException:
            pair.destroy()
            raise
        return pair

    def _build(self) -> None:
        for ns in (self.client, self.server):
            _run([IP, "netns", "add", ns.name])
            self._created.append(ns)
            ns.run(IP, "link", "set", "lo", "up")
        # Both ends are born inside the namespaces: no name or address ever
        # appears in the machine's own namespace.
        _run(
            [
                IP,
                "link",
                "add",
                "name",
                self.client_if,
                "netns",
                self.client.name,
                "type",
                "veth",
                "peer",
                "name",
                self.server_if,
                "netns",
                self.server.name,
            ]
        )
        for ns, ifname, addr in (
            (self.client, self.client_if, self.client_addr),
            (self.server, self.server_if, self.server_addr),
        ):
            ns.run(IP, "addr", "add", f"{addr}/30", "dev", ifname)
            ns.run(IP, "link", "set", ifname, "up")
        # Until the link is up (carrier on both ends) packets would be lost.
        deadline = time.monotonic() + PATIENCE
        while "LOWER_UP" not in self.client.run(IP, "-o", "link", "show", self.client_if):
            if time.monotonic() > deadline:
                raise RuntimeError("the veth pair did not come up")
            time.sleep(0.02)

    # -- faults -----------------------------------------------------------

    def link(self, up: bool, side: str = "server") -> None:
        """Set the veth end of C{side} (C{client} or C{server}) up or down."""
        ns, ifname = (
            (self.server, self.server_if) if side == "server" else (self.client, self.client_if)
        )
        ns.run(IP, "link", "set", ifname, "up" if up else "down")

    def flap(self, seconds: float, side: str = "server") -> None:
        """Take the link down for C{seconds}, then up again."""
        self.link(False, side)
        try:
            time.sleep(seconds)
        finally:
            self.link(True, side)

    # -- teardown ---------------------------------------------------------

    def destroy(self) -> None:
        """End what still runs in the namespaces (SIGKILL), then delete them."""
        if self in _ALIVE:
            _ALIVE.remove(self)
        _delete_namespaces(self._created)
        self._created = []

    def __enter__(self) -> NetPair:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()


class NetLan:
    """
    A small LAN of namespaces: a C{hub} namespace holding the bridge
    C{bridge} (address C{hub_addr}), and C{nodes}, each joined to the bridge
    by a veth pair -- C{node_if} (C{node_addrs[i]}) inside the node, its
    peer enslaved to the bridge inside the hub.  Loopback is up everywhere.
    All addresses are in C{10.231.25x.0/24} and exist only inside these
    namespaces; L{address} gives a spare one (a virtual IP).

        with NetLan.create(2) as lan:
            lan.nodes[0].run("ip", "-o", "addr", "show", lan.node_if)
    """

    bridge = "ismbr0"
    node_if = "ismn0"

    def __init__(self, number: int, nodes: int) -> None:
        tag = f"ismon-{os.getpid()}-lan{number}"
        self.hub = Netns(f"{tag}-hub")
        self.nodes = [Netns(f"{tag}-n{i + 1}") for i in range(nodes)]
        # Apart from NetPair's 10.231.0-249.x: a reader of `ip addr` can
        # tell the two kinds of test network apart.
        self.prefix = f"10.231.{250 + number % 6}"
        self.hub_addr = self.address(1)
        self.node_addrs = [self.address(11 + i) for i in range(nodes)]
        self._created: list[Netns] = []

    def address(self, host: int) -> str:
        """The address C{host} (1-254) of the LAN; 1 and 11... are taken."""
        return f"{self.prefix}.{host}"

    @classmethod
    def create(cls, nodes: int = 2) -> NetLan:
        lan = cls(next(_COUNTER), nodes)
        _ALIVE_LANS.append(lan)
        try:
            lan._build()
        except BaseException:
            lan.destroy()
            raise
        return lan

    def _build(self) -> None:
        for ns in (self.hub, *self.nodes):
            _run([IP, "netns", "add", ns.name])
            self._created.append(ns)
            ns.run(IP, "link", "set", "lo", "up")
        # STP off (the default): a port forwards as soon as it is up.
        self.hub.run(IP, "link", "add", self.bridge, "type", "bridge")
        self.hub.run(IP, "addr", "add", f"{self.hub_addr}/24", "dev", self.bridge)
        self.hub.run(IP, "link", "set", self.bridge, "up")
        for i, (ns, addr) in enumerate(zip(self.nodes, self.node_addrs, strict=True)):
            port = f"ismh{i + 1}"
            # Born inside the namespaces, as in NetPair: nothing appears in
            # the machine's own namespace.
            _run(
                [
                    IP,
                    "link",
                    "add",
                    "name",
                    port,
                    "netns",
                    self.hub.name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    self.node_if,
                    "netns",
                    ns.name,
                ]
            )
            self.hub.run(IP, "link", "set", port, "master", self.bridge)
            self.hub.run(IP, "link", "set", port, "up")
            ns.run(IP, "addr", "add", f"{addr}/24", "dev", self.node_if)
            ns.run(IP, "link", "set", self.node_if, "up")
        deadline = time.monotonic() + PATIENCE
        for ns in self.nodes:
            while "LOWER_UP" not in ns.run(IP, "-o", "link", "show", self.node_if):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the veth of {ns.name} did not come up")
                time.sleep(0.02)

    def holds(self, node: Netns, address: str) -> bool:
        """Whether C{address} is configured on C{node}'s LAN interface."""
        out = node.run(IP, "-o", "-4", "addr", "show", "dev", self.node_if, check=False)
        return f" {address}/" in out

    def names(self) -> list[str]:
        """The namespaces of this LAN that exist now (C{ip netns list})."""
        ours = {ns.name for ns in (self.hub, *self.nodes)}
        listed = _run([IP, "netns", "list"], check=False).split()
        return [word for word in listed if word in ours]

    def destroy(self) -> None:
        """End what still runs in the namespaces (SIGKILL), then delete them."""
        if self in _ALIVE_LANS:
            _ALIVE_LANS.remove(self)
        _delete_namespaces(self._created)
        self._created = []

    def __enter__(self) -> NetLan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()


# The client: one GET of the VIP every PERIOD seconds, one line per request:
# "MONOTONIC ANSWER" (the page's text, or "error:EXCEPTION").  CLOCK_MONOTONIC
# is the same in every process of the machine, so its times compare with the
# test's.
CLIENT_SCRIPT = """\
import http.client, sys, time
host, port, period, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
due = time.monotonic()
while True:
    at = time.monotonic()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", "/", headers={"Connection": "close"})
        answer = conn.getresponse().read().decode().strip()
        conn.close()
    except Exception as e:
        answer = "error:" + type(e).__name__
    print(f"{at:.3f} {answer}", flush=True)
    # After a timed-out request, go on from now rather than catching up.
    due = max(due + period, time.monotonic())
    time.sleep(max(0.0, due - time.monotonic()))
"""


def client_answers(client: WatchProcess) -> list[tuple[float, str]]:
    """The client's requests so far: (when, the answering node or error:...)."""
    assert client.running(), f"the client ended:\n{client.output()}"
    found = []
    for line in client.output().splitlines():
        at, _, answer = line.partition(" ")
        with contextlib.suppress(ValueError):
            found.append((float(at), answer))
    return found


@atexit.register
def _destroy_leftovers() -> None:
    for pair in list(_ALIVE):
        with contextlib.suppress(Exception):
            pair.destroy()
    for lan in list(_ALIVE_LANS):
        with contextlib.suppress(Exception):
            lan.destroy()


# --------------------------------------------------------------------------
# Servers at a chosen address


def wait_for_port_in(
    netns: Netns | None,
    host: str,
    port: int,
    timeout: float = START_TIMEOUT,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """
    Wait until something accepts TCP connections on C{host}:C{port} as seen
    from inside C{netns} (the machine's own namespace for L{None}).
    """
    # tests.procs.wait_for_port, run in the namespace: its own exit status
    # says whether the port accepted in time.
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.procs import wait_for_port\n"
        "try:\n"
        "    wait_for_port(int(sys.argv[3]), sys.argv[2], float(sys.argv[4]))\n"
        "except RuntimeError:\n"
        "    sys.exit(1)\n"
    )
    argv = [sys.executable, "-c", code, str(_CHECKOUT), host, str(port), str(timeout)]
    if netns is not None:
        argv = netns.argv(*argv)
    waiter = subprocess.Popen(argv)
    try:
        while waiter.poll() is None:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before accepting")
            time.sleep(0.02)
    finally:
        if waiter.poll() is None:
            waiter.kill()
        waiter.wait()
    if waiter.returncode != 0:
        raise RuntimeError(f"nothing accepts on {host}:{port} after {timeout} s")


def _spawn(
    argv: list[str], directory: Path, log_name: str, netns: Netns | None
) -> tuple[subprocess.Popen[bytes], Path]:
    log = directory / log_name
    if netns is not None:
        argv = netns.argv(*argv)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log


_NGINX_HTTP = """\
    default_type text/plain;
    keepalive_timeout 5;
    log_format ismon '$msec $remote_addr $server_port "$request" $status';
    access_log {dir}/access.log ismon;
    server {{
        listen {host}:{port};
        location = / {{ return 200 "{page}\\n"; }}
        location / {{ return 404; }}
    }}
"""


def start_nginx_at(
    directory: Path | str,
    host: str,
    port: int,
    *,
    netns: Netns | None = None,
    page: str = "ok",
) -> Nginx:
    """
    nginx on C{host}:C{port} (inside C{netns} if given), answering C{/}
    with 200 and C{page} (one line, no quote or backslash).  Its access log lines start with the Unix time of the request
    (C{$msec}), then C{ADDRESS PORT "REQUEST" STATUS}.  Calling it again
    with the same C{directory} restarts a server on the same port; the
    access log is appended to.
    """
    binary = nginx_binary()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        nginx_conf(directory, _NGINX_HTTP.format(dir=directory, host=host, port=port, page=page))
    )
    process, log = _spawn(
        [binary, "-p", f"{directory}/", "-c", str(conf), "-e", str(directory / "error.log")],
        directory,
        "nginx.out",
        netns,
    )
    server = Nginx(
        process,
        directory,
        log,
        port=port,
        port_404=port,
        https_ports={},
        ipv6=False,
        certs=None,
    )
    server.host = host
    try:
        wait_for_port_in(netns, host, port, process=process)
    except RuntimeError as e:
        server.stop()
        error_log = (directory / "error.log").read_text(errors="replace")
        raise RuntimeError(f"nginx did not start: {e}\n{error_log}") from None
    return server


def start_aiosmtpd_at(
    directory: Path | str, host: str, port: int, *, netns: Netns | None = None
) -> Aiosmtpd:
    """Plain aiosmtpd on C{host}:C{port} (inside C{netns} if given)."""
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        raise ServerUnavailable("aiosmtpd is not installed (pip install aiosmtpd)") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    process, log = _spawn(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{host}:{port}"],
        directory,
        "aiosmtpd.out",
        netns,
    )
    server = Aiosmtpd(process, directory, log, port=port, mode="plain", certs=None)
    server.host = host
    try:
        wait_for_port_in(netns, host, port, process=process)
    except RuntimeError as e:
        output = server.output()
        server.stop()
        raise RuntimeError(f"aiosmtpd did not start: {e}\n{output}") from None
    return server


# --------------------------------------------------------------------------
# Watches under faults (shared by tests/test_faults_*.py)

#: A stall is detected within 1 + 2 * 1 + 1 = 4 s.
#: What a watch may need beyond its bound to end: process teardown.
TEARDOWN = 0.5


def watch_argv(
    cmd: str,
    watch_id: str,
    host: str,
    port: int,
    state: Path,
    *extra: str,
    timing: Sequence[str] = FAST,
    netns: Netns | None = None,
) -> list[str]:
    """The command line of a watch (run inside C{netns} when given)."""
    argv = watchproc.watch_argv(cmd, watch_id, host, port, state, *extra, timing=timing)
    return netns.argv(*argv) if netns is not None else argv


def watch_status(watch_id: str, state: Path) -> dict[str, Any]:
    """C{ismon status ID --json} (from the machine's own namespace)."""
    result = subprocess.run(
        [*command("ismon"), "status", watch_id, "--json", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def wait_for_good_probes(
    watch_id: str, state: Path, count: int, timeout: float = PATIENCE
) -> dict[str, Any]:
    """Wait until the watch has made C{count} probes (or more), the last one good."""
    deadline = time.monotonic() + timeout
    while True:
        current = watch_status(watch_id, state)
        last = current.get("last_probe") or {}
        if current["probes"] >= count and last.get("ok"):
            return current
        assert time.monotonic() < deadline, f"no {count} good probes: {current}"
        time.sleep(0.1)


def started(watch: WatchProcess, cmd: str, watch_id: str, timeout: float = PATIENCE) -> float:
    """Wait for message 1 (started watching); return the printed detection bound."""
    watch.wait_for(re.escape(message(1, cmd, watch_id)) + "$", timeout)
    return watch.detection_bound()


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


def failure_lines(output: str) -> list[str]:
    """The failure messages of the watch's log (warn/error), without the 96 lines."""
    return [
        line
        for line in output.splitlines()
        if ("#warn] " in line or "#error] " in line)
        and "[ID:" in line
        and "will retry watching" not in line
        and "cannot reach syslog" not in line
    ]


def assert_server_failed(
    watch: WatchProcess,
    cmd: str,
    watch_id: str,
    *,
    fault_at: float,
    bound: float,
    number: int,
    nn: int,
    retries: int = 2,
) -> float:
    """
    The watch ends with exit 1 within C{bound} (+ L{TEARDOWN}) of
    C{fault_at} (a C{time.monotonic()}), its last C{retries + 1} failures
    are message C{number} with C{nn} (warnings, the last an error), then
    message 6.  Returns the seconds from the fault to the exit.
    """
    code = watch.wait(bound + 10)
    elapsed = time.monotonic() - fault_at
    output = watch.output()
    assert code == 1, output
    assert elapsed <= bound + TEARDOWN, (
        f"exit {elapsed:.2f}s after the fault, bound {bound}s\n{output}"
    )
    expected = message(number, cmd, watch_id, nn=nn)
    failures = failure_lines(output)
    assert len(failures) >= retries + 1, output
    last = failures[-(retries + 1) :]
    assert all(line.endswith(expected) for line in last), f"expected {expected!r}:\n{output}"
    assert all("#warn] " in line for line in last[:-1]), output
    assert "#error] " in last[-1], output
    tagged = [line for line in output.splitlines() if "[ID:" in line]
    assert tagged[-1].endswith(message(6, cmd, watch_id)), output
    assert tagged[-2] == last[-1], output
    no_traceback(output)
    return elapsed
