"""
The control commands run without Twisted (L{ismon.control.commands},
dispatched by L{ismon.entry}): which command lines take that way, and, as
real processes against a real watch, that they print and exit as before
and never import Twisted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ismon.control.recognise import recognise
from ismon.control.request import ControlRequest
from tests.servers import Nginx
from tests.watchproc import LOOPBACK, Processes, command, message, watch_argv

# -- which command lines take the fast way ----------------------------------


def request(*args: object) -> ControlRequest:
    return ControlRequest(*args)  # type: ignore[arg-type]


D = Path("/tmp/st")

ACCEPTED: list[tuple[str, list[str], ControlRequest]] = [
    ("ismon", ["status"], request("ismon", None, None)),
    ("ismon", ["status", "--json"], request("ismon", None, None, 10, None, True)),
    ("ismon", ["status", "--state-dir", "/tmp/st"], request("ismon", None, None, 10, D)),
    (
        "ismon",
        ["status", "--state-dir=/tmp/st", "--json"],
        request("ismon", None, None, 10, D, True),
    ),
    ("ismon", ["status", "web"], request("ismon", "web", None)),
    ("ismon", ["status", "web", "--json"], request("ismon", "web", None, 10, None, True)),
    ("ismon", ["status", "--json", "web"], request("ismon", "web", None, 10, None, True)),
    ("ismon", ["status", "--", "web"], request("ismon", "web", None)),
    (
        "ismon",
        ["disp", "web", "--state-dir", "/tmp/st"],
        request("ismon", "web", "disp", 10, D),
    ),
    ("ismon", ["stop", "web", "-r", "3"], request("ismon", "web", "stop", 3)),
    ("ismon", ["stop", "web", "-r3"], request("ismon", "web", "stop", 3)),
    ("ismon", ["stop", "web", "--timeout=3"], request("ismon", "web", "stop", 3)),
    ("ismon", ["stop", "web", "--timeout", "10000"], request("ismon", "web", "stop", 10000)),
    ("ismon", ["pause", "web"], request("ismon", "web", "pause")),
    ("ismon", ["continue", "web"], request("ismon", "web", "continue")),
    ("ismon", ["del", "web"], request("ismon", "web", "del")),
    ("clp_httpmon", ["web", "--stop"], request("clp_httpmon", "web", "stop")),
    ("clp_httpmon", ["web", "--stop", "-r", "20"], request("clp_httpmon", "web", "stop", 20)),
    ("clp_smtpmon", ["mail", "--pause"], request("clp_smtpmon", "mail", "pause")),
    (
        "clp_smtpmon",
        ["mail", "--continue", "--state-dir", "/tmp/st"],
        request("clp_smtpmon", "mail", "continue", 10, D),
    ),
    (
        "clp_httpmon",
        ["web", "--disp", "--state-dir=/tmp/st"],
        request("clp_httpmon", "web", "disp", 10, D),
    ),
    ("clp_httpmon", ["web", "--del"], request("clp_httpmon", "web", "del")),
    ("clp_httpmon", ["web", "--del", "--del"], request("clp_httpmon", "web", "del")),
    ("clp_httpmon", ["--pause", "web"], request("clp_httpmon", "web", "pause")),
]

# Each of these is a watch to start, or something the Twisted parsers
# answer (often with a refusal): the fast way must leave them alone.
LEFT_ALONE: list[tuple[str, list[str]]] = [
    ("ismon", []),
    ("ismon", ["--help"]),
    ("ismon", ["--version"]),
    ("ismon", ["http", "web"]),
    ("ismon", ["bogus"]),
    ("ismon", ["stop"]),  # no ID: message 13
    ("ismon", ["status", "we-b"]),  # invalid ID
    ("ismon", ["status", "web", "other"]),
    ("ismon", ["status", "--json", "web", "--state-dir", "x"]),  # options after the ID
    ("ismon", ["status", "--js"]),  # getopt abbreviation
    ("ismon", ["status", "--json=1"]),
    ("ismon", ["status", "--help"]),
    ("ismon", ["status", "-h"]),
    ("ismon", ["stop", "web", "-r", "0"]),
    ("ismon", ["stop", "web", "-r", "10001"]),
    ("ismon", ["stop", "web", "-r", " 5"]),
    ("ismon", ["stop", "web", "-r"]),
    ("ismon", ["stop", "web", "-r", "x"]),
    ("ismon", ["status", "--state-dir", ""]),
    ("ismon", ["status", "--state-dir"]),
    ("clp_httpmon", ["web"]),  # a watch
    ("clp_httpmon", ["web", "-s", "host"]),
    ("clp_httpmon", ["web", "--stop", "-s", "host"]),  # watch options mixed in
    ("clp_httpmon", ["web", "--stop", "--tls"]),
    ("clp_httpmon", ["web", "--stop", "--pause"]),
    ("clp_httpmon", ["web", "--sto"]),
    ("clp_httpmon", ["web", "--stop=yes"]),
    ("clp_httpmon", ["web", "--stop", "extra"]),
    ("clp_httpmon", ["--stop"]),
    ("clp_httpmon", ["w\u00e9b", "--stop"]),
    ("clp_httpmon", ["x" * 256, "--stop"]),
    ("clp_httpmon", ["web", "--stop", "--help"]),
    ("clp_httpmon", ["web", "--version"]),
    ("clp_httpmon", ["web", "--disp", "--state-dir", ""]),
    ("clp_httpmon", ["web", "--disp", "--state-dir", "a\0b"]),
    ("twistd", ["web", "--stop"]),
]


@pytest.mark.parametrize(("program", "argv", "expected"), ACCEPTED)
def test_recognised(program: str, argv: list[str], expected: ControlRequest) -> None:
    assert recognise(program, argv) == expected


@pytest.mark.parametrize(("program", "argv"), LEFT_ALONE)
def test_left_to_the_long_way(program: str, argv: list[str]) -> None:
    assert recognise(program, argv) is None


# -- real processes against a real watch ------------------------------------

# Runs an entry point as its console script would and records every module
# of Twisted (and of the libraries only Twisted needs) as it is imported: an
# audit hook, because the control commands leave with os._exit (no atexit),
# writing unbuffered for the same reason.
_WRAPPER = """
import os, sys
record = os.open(os.environ["ISMON_TEST_MODULES"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
def hook(event, args):
    if event == "import" and args[0].split(".")[0] in (
        "twisted", "zope", "attr", "attrs", "hashlib", "typing"
    ):
        os.write(record, (args[0] + " ").encode())
sys.addaudithook(hook)
program = sys.argv[1]
sys.argv = [program, *sys.argv[2:]]
from ismon import entry
{"ismon": entry.main, "clp_httpmon": entry.clp_httpmon, "clp_smtpmon": entry.clp_smtpmon}[program]()
"""


class Runner:
    def __init__(self, processes: Processes, directory: Path, state: Path) -> None:
        self.processes = processes
        self.modules = directory / "modules.txt"
        self.state = state

    def __call__(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run C{program args --state-dir STATE}; it must not import Twisted."""
        if self.modules.exists():
            self.modules.unlink()
        result = self.processes.run(
            [sys.executable, "-c", _WRAPPER, program, *args, "--state-dir", str(self.state)],
            env={"ISMON_TEST_MODULES": str(self.modules)},
        )
        assert "Traceback" not in result.stderr, result.stderr
        assert self.modules.read_text() == "", (program, args, self.modules.read_text())
        return result


@pytest.mark.integration
def test_every_control_command_without_twisted(
    nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run = Runner(processes, tmp_path, state)
    watch = processes.start(
        watch_argv("clp_httpmon", "web", LOOPBACK, nginx.port, state, timing=["-i", "1"])
    )
    watch.wait_for(re.escape(message(1, "clp_httpmon", "web")) + "$", 20)

    shown = run("ismon", "status", "web")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(
        f"web: watching (http://{LOOPBACK}:{nginx.port}/ HTTP/1.1), pid {watch.pid}, up "
    )
    assert "  detection bound " in shown.stdout

    as_json = run("ismon", "status", "web", "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["pid"] == watch.pid

    listed = run("ismon", "status")
    assert (listed.returncode, listed.stdout) == (0, f"web: running, pid {watch.pid}\n")
    listed = run("ismon", "status", "--json")
    assert json.loads(listed.stdout) == [{"watch_id": "web", "pid": watch.pid, "running": True}]

    for program, args in (("ismon", ["disp", "web"]), ("clp_httpmon", ["web", "--disp"])):
        shown = run(program, *args)
        assert (shown.returncode, shown.stdout) == (0, f"{watch.pid}\n")

    # ismon pause names the watch's own command, as the watch logs it.
    for program, args, number in (
        ("ismon", ["pause", "web"], 7),
        ("clp_httpmon", ["web", "--continue"], 8),
        ("clp_smtpmon", ["web", "--pause"], 7),
        ("ismon", ["continue", "web"], 8),
    ):
        done = run(program, *args)
        assert (done.returncode, done.stdout) == (0, message(number, "clp_httpmon", "web") + "\n")

    refused = run("clp_httpmon", "web", "--del")
    assert refused.returncode == 3
    assert refused.stderr == (
        message(14, "clp_httpmon", "web") + f" (--del refused: PID {watch.pid} is alive)\n"
    )

    # The watch's protocol is not known: ismon names itself (not clp_httpmon).
    absent = run("ismon", "status", "other")
    assert (absent.returncode, absent.stderr) == (1, "ismon: watch other is not running\n")
    absent = run("clp_smtpmon", "other", "--pause")
    assert (absent.returncode, absent.stderr) == (1, "clp_smtpmon: watch other is not running\n")
    absent = run("ismon", "status", "other", "--json")
    assert json.loads(absent.stdout) == {"watch_id": "other", "state": "not running"}

    stopped = run("ismon", "stop", "web", "-r", "20")
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (0, "", "")
    assert watch.wait(20) == 0
    assert run("clp_httpmon", "web", "--stop").returncode == 0  # nothing to stop

    gone = run("ismon", "disp", "web")
    assert (gone.returncode, gone.stderr) == (1, "ismon: watch web is not running\n")
    # A watch stopped on request leaves only the record of its last exit
    # (README "Records") for --del.
    removed = run("clp_httpmon", "web", "--del")
    assert (removed.returncode, removed.stdout) == (0, f"removed {state / 'web.last'}\n")
    assert run("ismon", "status").stdout == ""


@pytest.mark.integration
def test_status_into_a_closed_pipe_exits_quietly(
    nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    watches = [
        processes.start(
            [
                *command("clp_httpmon"),
                f"w{n}",
                "-s",
                LOOPBACK,
                "-n",
                str(nginx.port),
                "--state-dir",
                str(state),
                "--syslog-socket",
                "none",
            ]
        )
        for n in range(3)
    ]
    for n, watch in enumerate(watches):
        watch.wait_for(re.escape(message(1, "clp_httpmon", f"w{n}")) + "$", 20)
    for args in (["status"], ["status", "w0"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before anything is written
        try:
            started = time.monotonic()
            done = subprocess.run(
                [*command("ismon"), *args, "--state-dir", str(state)],
                stdout=write,
                stderr=subprocess.PIPE,
                text=True,
                timeout=30,
                check=False,
            )
        finally:
            os.close(write)
        assert (done.returncode, done.stderr) == (0, ""), args
        assert time.monotonic() - started < 30
