"""
Running the product as real processes in tests: watches in the background
(output to a file, polled), control commands in the foreground, and the
catalogue texts of the README (Messages) written out here (not taken from
L{ismon.core.catalogue}, so that a wrong catalogue cannot agree with itself).

Every process started through L{Processes} is ended by PID when the test
ends, pass or fail: SIGCONT (it may have been stopped), SIGTERM, then
SIGKILL.  A background process from a non-interactive shell has SIGINT
ignored, so SIGTERM is the signal to use.

That also holds for the test runner itself when a script starts it with
C{&}, and a child inherits an ignored SIGINT; background processes are
therefore started with SIGINT at its default, as an operator's shell or
systemd would start a watch, whatever the runner inherited.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.procs import ScriptNotInstalled, console_script, end_process, signal_pid

__all__ = [
    "FAST",
    "LOOPBACK",
    "PATIENCE",
    "Processes",
    "WatchProcess",
    "command",
    "exits_within_bound",
    "message",
    "message_ids",
    "processes_of_test",
    "watch_argv",
    "watch_exits_on",
]

LOOPBACK = "127.0.0.1"
#: A quick schedule: a stall is detected within a few seconds.
FAST = ["-i", "1", "-c", "2", "-r", "1"]
#: Seconds to wait for what should happen at once or within a few seconds
#: (a process to end, a line to appear).  Generous, because a loaded CI
#: machine can take seconds to start a Python process; waits end as soon as
#: the thing happens, so only a failing test waits this long.
PATIENCE = 30.0

# The README's Messages table, verbatim: the 2004 texts, and 95, 96, 102
# and 103 of ismon's own.
_CATALOGUE_TEXTS = {
    1: "The {cmd} has started watching {proto}.",
    2: "The {cmd} is going to watch {proto} daemon.",
    3: "The {cmd} will stop watching {proto} daemon.",
    6: "The {cmd} will terminate.",
    7: "The {cmd} is going to stop monitoring.",
    8: "The {cmd} is going to monitor.",
    11: "Invalid parameter in the {cmd}.",
    13: "The monitor id is not specified at the {cmd} command.",
    14: "The specified monitor id is already under use in other processes.",
    15: "The {cmd} has not performed end processing.",
    42: "The {cmd} has detected system error (",
    71: "The {cmd} has detected network error(socket error[{nn}]).",
    72: "The {cmd} has detected network error(connect error[{nn}]).",
    74: "The {cmd} has detected network error(select error[{nn}]).",
    95: "The {cmd} has detected that {proto} answers again.",
    96: "The {cmd} will retry watching {proto} (",
    102: "The {cmd} could not write its record (",
    103: "The {cmd} found its state folder gone (",
}
_PROTO = {
    "clp_httpmon": "HTTP",
    "clp_smtpmon": "SMTP",
    "clp_pop3mon": "POP3",
    "clp_imapmon": "IMAP4",
    "clp_ftpmon": "FTP",
    "clp_dnsmon": "DNS",
    "clp_tcpmon": "TCP",
}
ETIMEDOUT = 110


def message(number: int, cmd: str, watch_id: str | None, nn: int | str = "") -> str:
    """
    The text of catalogue message C{number} with its C{[ID:...]} tag (or,
    for messages that carry free text, C{watch_id=None}, just the start).
    """
    text = _CATALOGUE_TEXTS[number].format(cmd=cmd, proto=_PROTO.get(cmd, ""), nn=nn)
    if watch_id is None or text.endswith("("):
        return text
    return f"{text} [ID:{watch_id}]"


def message_ids(output: str, cmd: str, watch_id: str, among: Sequence[int]) -> list[int]:
    """The catalogue ids (out of C{among}) of the lines of C{output}, in order."""
    texts = {n: message(n, cmd, watch_id, nn=ETIMEDOUT) for n in among}
    found = []
    for line in output.splitlines():
        for n, text in texts.items():
            if text in line and (text.endswith("(") or line.endswith(text)):
                found.append(n)
    return found


# -- commands ---------------------------------------------------------------

_SCRIPT_FALLBACK = {
    **{name: f"from ismon.cmdline.cli import clp; clp({name!r})" for name in _PROTO},
    "ismon": "from ismon.cmdline.cli import main; main()",
}


def command(name: str) -> list[str]:
    """
    The argv prefix that runs the console script C{name} of this Python
    (L{tests.procs.console_script}), or its entry point through this Python
    when the script is not installed.
    """
    try:
        return [str(console_script(name))]
    except ScriptNotInstalled:
        return [sys.executable, "-c", _SCRIPT_FALLBACK[name]]


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ISMON_STATE_DIR", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


# -- processes --------------------------------------------------------------


class WatchProcess:
    """One background process; stdout and stderr go to C{out}."""

    def __init__(self, process: subprocess.Popen[bytes], out: Path, argv: Sequence[str]) -> None:
        self.process = process
        self.out = out
        self.argv = list(argv)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        try:
            return self.out.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = PATIENCE) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.argv[:3]} still running after {timeout} s\n--- output ---\n" + self.output()
            ) from None

    def wait_for(self, pattern: str, timeout: float = PATIENCE, *, after: int = 0) -> str:
        """
        The first line of the output (from character C{after} on) that
        matches the regex C{pattern}; waits for it, fails if the process
        ends or C{timeout} passes first.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            ended = not self.running()
            for line in self.output()[after:].splitlines():
                if regex.search(line):
                    return line
            if ended or time.monotonic() > deadline:
                state = f"ended with {self.process.returncode}" if ended else "timed out"
                raise AssertionError(
                    f"no line matching {pattern!r} ({state})\n--- output ---\n{self.output()}"
                )
            time.sleep(0.02)

    def detection_bound(self) -> float:
        """The bound the watch printed at start-up ("a stall is detected within Ns")."""
        line = self.wait_for(r"a stall is detected within \d+(\.\d+)?s")
        match = re.search(r"a stall is detected within (\d+(?:\.\d+)?)s", line)
        assert match is not None
        return float(match.group(1))

    def signal(self, sig: int) -> None:
        signal_pid(self.pid, sig)

    def end(self) -> None:
        """Make sure the process is gone (L{tests.procs.end_process})."""
        end_process(self.process)


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """
    While children are started: SIGINT not ignored in this process, so that
    they get the default (a Python handler does not survive exec).
    """
    ignored = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    )
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class Processes:
    """Starts the processes of one test and ends them all when it ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._started: list[WatchProcess] = []
        self._count = 0

    def start(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        name: str = "proc",
    ) -> WatchProcess:
        self._count += 1
        out = self.directory / f"{name}-{self._count}.out"
        with open(out, "wb") as f, _sigint_not_ignored():
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                env=_environment(env),
                cwd=cwd or self.directory,
                start_new_session=True,
            )
        watch = WatchProcess(process, out, argv)
        self._started.append(watch)
        return watch

    def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to its end (killed after C{timeout}); capture its output."""
        return subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_environment(env),
            cwd=cwd or self.directory,
            timeout=timeout,
            check=False,
        )

    def end_all(self) -> None:
        while self._started:
            self._started.pop().end()


def processes_of_test(directory: Path) -> Iterator[Processes]:
    """
    The processes of one test, all ended at teardown: the body of the
    C{processes} fixture in C{tests/conftest.py}.
    """
    started = Processes(directory)
    try:
        yield started
    finally:
        started.end_all()


def watch_argv(
    cmd: str,
    watch_id: str,
    host: str,
    port: int,
    state: Path,
    *extra: str,
    timing: Sequence[str] = FAST,
    syslog: str = "none",
) -> list[str]:
    """The command line of a watch of C{host}:C{port} with its records in C{state}."""
    return [
        *command(cmd),
        watch_id,
        "-s",
        host,
        "-n",
        str(port),
        *timing,
        "--state-dir",
        str(state),
        "--syslog-socket",
        syslog,
        *extra,
    ]


#: What a watch may need beyond its bound to end: process teardown, and the
#: test noticing the failure a moment late.
TEARDOWN = 1.0


def exits_within_bound(
    watch: WatchProcess,
    bound: float,
    cmd: str,
    watch_id: str,
    failure: str,
    *,
    retries: int = 2,
    teardown: float = TEARDOWN,
) -> float:
    """
    From now, C{watch} exits 1 within C{bound} (plus C{teardown}), having
    logged C{failure} for the probe and each of its C{retries}, the last
    right before message 6, and no traceback.  Returns how long it took.
    """
    started = time.monotonic()
    code = watch.wait(bound + PATIENCE)
    took = time.monotonic() - started
    output = watch.output()
    assert code == 1, output
    assert took <= bound + teardown, f"exit {took:.2f}s after the failure began, bound {bound}s"
    assert output.count(f"{failure} [ID:{watch_id}]") == retries + 1, output
    tagged = [line for line in output.splitlines() if "[ID:" in line]
    assert tagged[-1].endswith(f"The {cmd} will terminate. [ID:{watch_id}]"), output
    assert tagged[-2].endswith(f"{failure} [ID:{watch_id}]"), output
    assert "Traceback" not in output
    return took


def watch_exits_on(
    processes: Processes,
    cmd: str,
    label: str,
    port: int,
    state: Path,
    failure: str,
    *extra: str,
) -> None:
    """
    A watch C{cmd} of 127.0.0.1:C{port} (-i 1 -c 1 -r 1, the options
    C{extra}), its protocol named C{label} in its messages, logs C{failure}
    for its probe and its retry and exits 1 within the bound it printed
    (a hostile server's misbehaviour).
    """
    watch_id = "hostile"
    watch = processes.start(
        watch_argv(
            cmd, watch_id, LOOPBACK, port, state, *extra, timing=["-i", "1", "-c", "1", "-r", "1"]
        ),
        name="watch",
    )
    bound = watch.detection_bound()
    # The bound runs from the first probe, right after this line.
    watch.wait_for(re.escape(f"The {cmd} has started watching {label}. [ID:{watch_id}]"))
    exits_within_bound(watch, bound, cmd, watch_id, failure, retries=1)
