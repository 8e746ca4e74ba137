"""
C{--check} (README "Running a watch"): the watch commands validate the
whole command line as a start would and exit 0, starting nothing; a bad
line gets the start's own refusal line and exit 2.  As real processes,
against a real listening socket that must see no connection.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import TestCerts
from tests.watchproc import LOOPBACK, Processes, command, message, processes_of_test


@pytest.fixture(name="processes")
def _processes(tmp_path: Path) -> Iterator[Processes]:
    yield from processes_of_test(tmp_path)


@pytest.fixture(name="listener")
def _listener() -> Iterator[socket.socket]:
    """A real TCP listener nobody answers on: a probe would show as a connection."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener


def _no_connection(listener: socket.socket) -> bool:
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


def _run(processes: Processes, argv: list[str], state: Path) -> subprocess.CompletedProcess[str]:
    program, *args = argv
    return processes.run(
        [*command(program), *args, "--state-dir", str(state), "--syslog-socket", "none"]
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["clp_httpmon", "web", "-i", "1", "--check"],
        ["clp_httpmon", "web", "--check", "-v", "1.0", "-h", "/x", "--expect-status", "200-399"],
        ["ismon", "http", "web", "--check", "--grace", "5", "--retry-interval", "0"],
        ["clp_smtpmon", "mail", "--check", "--helo", "node1"],
        ["ismon", "smtp", "mail", "--check", "--starttls", "--insecure"],
    ],
)
def test_a_good_line_exits_0_and_starts_nothing(
    processes: Processes, tmp_path: Path, listener: socket.socket, argv: list[str]
) -> None:
    state = tmp_path / "state"
    port = str(listener.getsockname()[1])
    done = _run(processes, [*argv, "-s", LOOPBACK, "-n", port], state)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not state.exists()
    assert _no_connection(listener)


def test_the_ca_file_is_read_as_a_start_reads_it(
    processes: Processes, tmp_path: Path, certs: TestCerts, listener: socket.socket
) -> None:
    state = tmp_path / "state"
    port = str(listener.getsockname()[1])
    good = ["clp_httpmon", "web", "-s", LOOPBACK, "-n", port, "--tls", "--ca-file", str(certs.ca)]
    done = _run(processes, [*good, "--check"], state)
    assert (done.returncode, done.stderr) == (0, "")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    for ca_file, why in (
        (tmp_path / "missing.pem", "cannot be read: No such file or directory"),
        (not_pem, "holds no usable PEM certificate"),
    ):
        bad = [*good[:-1], str(ca_file)]
        checked = _run(processes, [*bad, "--check"], state)
        assert checked.returncode == 2
        assert checked.stderr == (
            message(11, "clp_httpmon", "web") + f' --ca-file "{ca_file}" {why} (see --help)\n'
        )
        # The same line a start prints.
        started = _run(processes, bad, state)
        assert (started.returncode, started.stderr) == (2, checked.stderr)
    assert not state.exists()
    assert _no_connection(listener)


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [
        (
            ["clp_httpmon", "web", "-i", "0"],
            message(11, "clp_httpmon", "web")
            + ' -i (interval) must be a whole number from 1 to 10000, not "0" (see --help)\n',
        ),
        (
            ["ismon", "http", "-c", "3"],
            message(13, "clp_httpmon", "?")
            + " the watch ID comes first: clp_httpmon ID [options] (see --help)\n",
        ),
        (
            ["clp_smtpmon", "mail", "--tls", "--starttls"],
            message(11, "clp_smtpmon", "mail")
            + " --tls and --starttls cannot be combined: give one (see --help)\n",
        ),
        (
            ["clp_httpmon", "web", "--bogus"],
            message(11, "clp_httpmon", "web") + " unknown option --bogus (see --help)\n",
        ),
    ],
)
def test_a_bad_line_is_refused_as_a_start_refuses_it(
    processes: Processes, tmp_path: Path, argv: list[str], stderr: str
) -> None:
    state = tmp_path / "state"
    checked = _run(processes, [*argv, "--check"], state)
    assert (checked.returncode, checked.stdout, checked.stderr) == (2, "", stderr)
    started = _run(processes, argv, state)
    assert (started.returncode, started.stderr) == (2, stderr)
    assert not state.exists()


def test_check_is_no_control_action(processes: Processes, tmp_path: Path) -> None:
    done = _run(processes, ["clp_httpmon", "web", "--stop", "--check"], tmp_path / "state")
    assert (done.returncode, done.stderr) == (
        2,
        message(11, "clp_httpmon", "web")
        + " --stop and --check cannot be combined: give one action (see --help)\n",
    )


def test_twistd_refuses_check(processes: Processes, tmp_path: Path) -> None:
    done = processes.run(
        [*command("twistd"), "-n", "--pidfile=", "ismon-http", "web", "--check"], cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr == (
        message(11, "clp_httpmon", "web") + " --check is not for twistd: use clp_httpmon or ismon\n"
    )
