"""
L{ismon.watch.notify.SystemdNotifier} against a datagram socket bound by the test
as C{NOTIFY_SOCKET} (a path, and an abstract name), as systemd would.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ismon.core.protocols import PROTOCOLS
from ismon.watch.notify import MAX_STATUS_BYTES, SystemdNotifier
from tests.conftest import installed_script

ROOT = Path(__file__).resolve().parent.parent
# Abstract socket names: unique per process by PID, per fixture by count.
_NAMES = itertools.count(1)


class Manager:
    """The service manager's end: a bound datagram socket."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        # What goes into NOTIFY_SOCKET.
        self.name = name

    def receive(self, timeout: float = 30.0) -> list[str]:
        # Returns as soon as a datagram is there; the timeout only ends a
        # failing test (generous for a loaded machine).
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        return data.decode("utf-8").split("\n")

    def nothing(self, wait: float = 0.2) -> bool:
        self.sock.settimeout(wait)
        try:
            self.sock.recv(65536)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield Manager(sock, str(path))
    sock.close()


@pytest.fixture
def abstract_manager() -> Iterator[Manager]:
    name = f"ismon-test-{os.getpid()}-{next(_NAMES)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    yield Manager(sock, "@" + name)
    sock.close()


def test_ready_status_stopping(manager: Manager) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": manager.name})
    assert notifier.enabled
    assert notifier.ready("watching http://127.0.0.1:80/: ok in 1.2 ms") is True
    assert manager.receive() == ["READY=1", "STATUS=watching http://127.0.0.1:80/: ok in 1.2 ms"]
    notifier.status("retrying: 1 consecutive failure")
    assert manager.receive() == ["STATUS=retrying: 1 consecutive failure"]
    notifier.stopping()
    assert manager.receive() == ["STOPPING=1"]
    notifier.stopping("server failed")
    assert manager.receive() == ["STOPPING=1", "STATUS=server failed"]
    notifier.watchdog_ping()
    assert manager.receive() == ["WATCHDOG=1"]
    notifier.extend_timeout(12.5)
    assert manager.receive() == ["EXTEND_TIMEOUT_USEC=12500000"]
    notifier.close()
    # A message after close opens a new socket.
    notifier.status("again")
    assert manager.receive() == ["STATUS=again"]
    notifier.close()


def test_ready_without_status(manager: Manager) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": manager.name})
    notifier.ready("")
    assert manager.receive() == ["READY=1"]


def test_abstract_socket(abstract_manager: Manager) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": abstract_manager.name})
    assert notifier.enabled
    assert notifier.ready("up")
    assert abstract_manager.receive() == ["READY=1", "STATUS=up"]


def test_status_is_one_line_and_bounded(manager: Manager) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": manager.name})
    # A newline must not smuggle in another assignment (READY=1 here).
    notifier.status("bad reply\nREADY=1\r\nmore\0")
    assert manager.receive() == ["STATUS=bad reply READY=1 more"]
    notifier.status("é" * 5000)
    (line,) = manager.receive()
    assert line.startswith("STATUS=é")
    assert line.endswith("...")
    assert len(line.encode()) <= len("STATUS=") + MAX_STATUS_BYTES


def test_default_environment_is_os_environ(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", manager.name)
    notifier = SystemdNotifier()
    notifier.status("from os.environ")
    assert manager.receive() == ["STATUS=from os.environ"]


@pytest.mark.parametrize(
    "value", [None, "", "relative/path", "vsock:2:1234", "/nonexistent/dir/notify"]
)
def test_disabled_or_unreachable_never_raises(value: str | None) -> None:
    env = {} if value is None else {"NOTIFY_SOCKET": value}
    notifier = SystemdNotifier(env)
    assert notifier.enabled is (value is not None and value.startswith("/"))
    assert notifier.ready("x") is False
    assert notifier.status("x") is False
    assert notifier.stopping() is False
    assert notifier.watchdog_ping() is False
    assert notifier.extend_timeout(1) is False
    notifier.close()


def test_manager_gone(tmp_path: Path) -> None:
    path = tmp_path / "gone"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.status("one")
    sock.close()
    path.unlink()
    assert notifier.status("two") is False


def test_never_blocks_when_the_queue_is_full(manager: Manager) -> None:
    """Nobody reads: the receive queue fills, sends fail fast instead of blocking."""
    notifier = SystemdNotifier({"NOTIFY_SOCKET": manager.name})
    started = time.monotonic()
    results = [notifier.status("x" * 900) for _ in range(5000)]
    # One blocked send would hang for ever; 5000 that fail fast take a moment.
    assert time.monotonic() - started < 30
    assert results[0] is True
    assert False in results


def test_watchdog_interval() -> None:
    sock = "/run/systemd/notify"
    assert SystemdNotifier({"NOTIFY_SOCKET": sock}).watchdog_interval() is None
    env = {"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier(env).watchdog_interval() == 30.0
    env["WATCHDOG_PID"] = str(os.getpid())
    assert SystemdNotifier(env).watchdog_interval() == 30.0
    # Meant for another process (e.g. a parent shell): not for us.
    env["WATCHDOG_PID"] = str(os.getpid() + 1)
    assert SystemdNotifier(env).watchdog_interval() is None
    for bad in ("", "0", "-5", "abc", "1.5"):
        assert (
            SystemdNotifier({"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": bad}).watchdog_interval()
            is None
        )
    assert (
        SystemdNotifier(
            {"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "500000", "WATCHDOG_PID": "x"}
        ).watchdog_interval()
        is None
    )
    # No socket, no watchdog (nobody to ping).
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


def test_from_another_process(manager: Manager) -> None:
    """The protocol as a separate process speaks it (the service's own case)."""
    code = (
        "from ismon.watch.notify import SystemdNotifier\n"
        "n = SystemdNotifier()\n"
        "assert n.watchdog_interval() == 2.0, n.watchdog_interval()\n"
        "n.ready('first probe ok')\n"
        "n.watchdog_ping()\n"
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": manager.name,
        "WATCHDOG_USEC": "2000000",
        "PYTHONPATH": str(ROOT),
    }
    # WATCHDOG_PID must be the child's own PID: let a shell exec Python.
    subprocess.run(
        ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" -c "$1"', sys.executable, code],
        env=env,
        check=True,
        timeout=30,
    )
    assert manager.receive() == ["READY=1", "STATUS=first probe ok"]
    assert manager.receive() == ["WATCHDOG=1"]
    assert manager.nothing()


# --------------------------------------------------------------------------
# The systemd units that use the protocol

SYSTEMD = ROOT / "scripts" / "systemd"
UNITS = tuple(f"ismon-{name}@.service" for name in PROTOCOLS)


def _unit(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (sections merged; comments dropped)."""
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("name", UNITS)
def test_unit_settings(name: str) -> None:
    unit = _unit((SYSTEMD / name).read_text())
    protocol = name.split("-")[1].split("@")[0]
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    # Started again after exit 4 and the watchdog, never after the server failed.
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["1 2 3"]
    assert unit["StartLimitBurst"] == ["4"]
    assert unit["WatchdogSec"]
    assert unit["EnvironmentFile"] == ["/etc/ismon/%i.env"]
    (start,) = unit["ExecStart"]
    assert start.split()[1:] == [protocol, "%i", "$ISMON_ARGS"]
    (stop,) = unit["ExecStop"]
    assert stop.split()[1:3] == ["stop", "%i"]
    # The example env file sets what the units read.
    env = _unit((SYSTEMD / "example.env").read_text())
    assert env["ISMON_ARGS"]


def test_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts every unit (with this machine's ismon)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    ismon = installed_script("ismon")
    names = []
    for name in UNITS:
        instance = name.split("@")[0].split("-")[1] + "1"
        text = (SYSTEMD / name).read_text().replace("/usr/bin/ismon", str(ismon))
        target = tmp_path / name.replace("@", f"@{instance}")
        target.write_text(text)
        names.append(str(target))
    done = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    output = done.stdout + done.stderr
    if "Failed to" in output and "manager" in output.lower():
        pytest.skip(f"systemd-analyze cannot run here: {output}")
    assert done.returncode == 0, output
    assert output.strip() == "", output


@pytest.mark.integration
def test_a_watch_speaks_the_protocol(manager: Manager, tmp_path: Path) -> None:
    """
    A real watch under a NOTIFY_SOCKET, as ExecStart= runs it: READY after
    the first probe, STATUS with the last probe, WATCHDOG pings while its
    loop turns (none while it is frozen), STOPPING at the end.
    """
    from tests.servers import free_port, wait_for_port

    ismon = installed_script("ismon")
    port = free_port()
    # A tiny HTTP server: answers every HEAD with 200.
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": manager.name,
        "WATCHDOG_USEC": "2000000",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("WATCHDOG_PID", None)
    args = f"-s 127.0.0.1 -n {port} -i 1 -c 3 -r 2 --syslog-socket none".split()
    state = tmp_path / "state"
    watch = None
    try:
        wait_for_port(port, process=server)  # type: ignore[arg-type]
        watch = subprocess.Popen(
            [str(ismon), "http", "sdwatch", *args, "--state-dir", str(state)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while "READY=1" not in seen and time.monotonic() < deadline:
            seen += manager.receive()
        assert "READY=1" in seen, seen
        status = [line for line in seen if line.startswith("STATUS=")]
        assert status, seen
        pings = 0
        # Pings every second (half of WATCHDOG_USEC); 6 s leave room to spare.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                pings += manager.receive(timeout=0.5).count("WATCHDOG=1")
        assert pings >= 2, pings
        # Frozen: no pings (systemd would kill it after WatchdogSec).
        watch.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        with contextlib.suppress(TimeoutError):
            while True:
                manager.receive(timeout=0.2)  # drain what was queued
        assert manager.nothing(wait=2.5)
        watch.send_signal(signal.SIGCONT)
        subprocess.run(
            [str(ismon), "stop", "sdwatch", "--state-dir", str(state)], check=True, timeout=30
        )
        assert watch.wait(30) == 0
        rest: list[str] = []
        with contextlib.suppress(TimeoutError):
            while True:
                rest += manager.receive(timeout=1)
        assert "STOPPING=1" in rest, rest
    finally:
        if watch is not None and watch.poll() is None:
            watch.send_signal(signal.SIGCONT)
            watch.kill()
            watch.wait()
        server.kill()
        server.wait()
