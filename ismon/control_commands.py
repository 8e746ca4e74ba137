# -*- test-case-name: tests.test_control_commands,tests.test_last_exit -*-
"""
The control commands - C{ismon status|stop|pause|continue|disp|del} and
C{clp_httpmon|clp_smtpmon ID --stop|--pause|--continue|--disp|--del} -
in the standard library alone: what they print and how they exit.

Cluster software runs these every few seconds on every node
(docs/cluster.md), so they must not pay for Twisted (docs/performance.md,
"Control commands"):
L{recognise} reads the command lines it fully understands and
L{ismon.entry} runs them before anything imports Twisted.  Every other
command line, including every invalid one, goes the long way through
L{ismon.cli}, whose parsers print the catalogue's refusals; the same
L{run} then does the work, so both ways print and exit alike.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ismon import control_client, state
from ismon.exit_status import ExitStatus

# Start-up is most of what these commands cost, so modules that only some
# of them need (json, threading, the catalogue) are imported where used,
# and typing (~2.5 ms) only for the annotations.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from ismon.metrics import WatchSnapshot

__all__ = [
    "MAX_PAUSE_SECONDS",
    "MAX_REASON_BYTES",
    "METRICS_WATCH_TIMEOUT",
    "ControlRequest",
    "duration_problem",
    "ended_snapshot",
    "format_status",
    "metric_snapshots",
    "metrics",
    "metrics_and_exit",
    "parse_duration",
    "pause_detail",
    "reason_problem",
    "recognise",
    "run",
    "run_and_exit",
    "system_error",
]

#: The control verbs; C{None} stands for status.
VERBS = ("stop", "pause", "continue", "disp", "del")

#: Seconds between looks at the lock while waiting for a stopped watch to exit.
_STOP_POLL = 0.05

#: The longest pause with an expiry, and the longest --max-pause: 7 days
#: (README "Maintenance pauses").
MAX_PAUSE_SECONDS = 7 * 86400
#: The longest pause reason, in UTF-8 bytes.
MAX_REASON_BYTES = 200

_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> int | None:
    """
    Whole seconds from a DURATION: digits with an optional unit, C{90},
    C{90s}, C{15m}, C{2h} (README "Maintenance pauses"); L{None} for
    anything else, or for 0 or more than L{MAX_PAUSE_SECONDS}.
    """
    digits = text.rstrip("smh")
    unit = text[len(digits) :]
    if unit not in _DURATION_UNITS or not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) > 12:  # far beyond 7 days; spare int() a huge number
        return None
    seconds = int(digits) * _DURATION_UNITS[unit]
    return seconds if 1 <= seconds <= MAX_PAUSE_SECONDS else None


def duration_problem(name: str, text: str) -> str:
    """Why C{text} is no DURATION for option C{name} (message 11's detail)."""
    return (
        f"{name} must be a duration of 1 second to 7 days such as 90, 90s, 15m or 2h, "
        f"not {_quote(text)}"
    )


def reason_problem(text: str) -> str | None:
    """Why C{text} cannot be a pause reason, or L{None} if it can."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_REASON_BYTES:
        return f"--reason must be at most {MAX_REASON_BYTES} bytes, not {size}"
    if not text.isprintable():
        return f"--reason must not contain control characters: {_quote(text)}"
    return None


def _quote(text: str, limit: int = 60) -> str:
    # As ismon.options.quote, which this module may not import (Twisted).
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(shown) > limit:
        shown = shown[:limit] + "..."
    return f'"{shown}"'


class ControlRequest:
    """
    One control command, validated.

    @ivar command: the name messages start with: clp_httpmon, clp_smtpmon,
        or ismon for the status of all watches.
    @ivar watch_id: L{None} for the status of every watch in the folder.
    @ivar action: one of L{VERBS}, or L{None} for status.
    @ivar stop_wait: with stop, seconds to wait for the watch to exit.
    @ivar state_dir: L{None} for L{ismon.state.default_state_dir}.
    @ivar as_json: print JSON (status).
    @ivar kill_after: with stop, L{None} to give up after C{stop_wait}
        (message 15); otherwise SIGTERM the watch then, and SIGKILL it this
        many seconds later (README "Stopping by force").
    @ivar pause_for: with pause, seconds until the pause ends by itself, or
        L{None} for no expiry (README "Maintenance pauses").
    @ivar pause_reason: with pause, why (shown by status), or L{None}.
    """

    __slots__ = (
        "action",
        "as_json",
        "command",
        "kill_after",
        "pause_for",
        "pause_reason",
        "state_dir",
        "stop_wait",
        "watch_id",
    )

    def __init__(
        self,
        command: str,
        watch_id: str | None,
        action: str | None,
        stop_wait: float = 10,
        state_dir: Path | None = None,
        as_json: bool = False,
        kill_after: int | None = None,
        pause_for: int | None = None,
        pause_reason: str | None = None,
    ) -> None:
        self.command = command
        self.watch_id = watch_id
        self.action = action
        self.stop_wait = stop_wait
        self.state_dir = state_dir
        self.as_json = as_json
        self.kill_after = kill_after
        self.pause_for = pause_for
        self.pause_reason = pause_reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ControlRequest):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "ControlRequest({})".format(", ".join(repr(field) for field in self._fields()))

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)


# -- the command lines the fast way understands ------------------------------


def _is_clp_command(program: str) -> bool:
    # ismon.entry.clp() passes only the commands of ismon.protocols; that
    # registry is not imported here (it costs attrs, ~20 ms, on every call).
    return program.startswith("clp_") and program.endswith("mon")


_NO_VALUE = ""


def _scan(
    args: list[str], flags: tuple[str, ...], parameters: tuple[str, ...]
) -> tuple[dict[str, str], list[str]] | None:
    """
    Options in the manner of C{getopt.getopt} as Twisted's C{usage.Options}
    uses it: they end at the first positional argument or at C{--}; C{-r}
    is C{--timeout}.  Returns the options given (a flag maps to "") and the
    positional arguments, or L{None} for anything not exactly one of
    C{flags} / C{parameters} (getopt's abbreviations, C{--help}, a
    missing value...): the long way judges those.
    """
    given: dict[str, str] = {}
    at = 0
    while at < len(args):
        arg = args[at]
        if arg == "--":
            at += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        at += 1
        if arg.startswith("--"):
            name, equals, value = arg[2:].partition("=")
            if name in flags and not equals:
                given[name] = _NO_VALUE
                continue
            if name not in parameters:
                return None
        elif arg[1] == "r" and "timeout" in parameters:
            name, equals, value = "timeout", "", arg[2:]
            equals = "=" if value else ""
        else:
            return None
        if not equals:
            if at >= len(args):
                return None
            value = args[at]
            at += 1
        given[name] = value
    return given, args[at:]


def _stop_wait(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 10000:
        return None
    return int(text)


def _watch_id(text: str) -> str | None:
    try:
        return state.validate_watch_id(text)
    except state.InvalidWatchId:
        return None


def _state_dir(given: dict[str, str]) -> tuple[bool, Path | None]:
    value = given.get("state-dir")
    if value is None:
        return True, None
    if not value or "\0" in value:
        return False, None
    return True, Path(value)


def _kill_after(given: dict[str, str], action: str | None) -> tuple[bool, int | None]:
    value = given.get("kill-after")
    if value is None:
        return True, None
    seconds = _stop_wait(value)
    return seconds is not None and action == "stop", seconds


def recognise(program: str, argv: list[str]) -> ControlRequest | None:
    """
    The control command that C{program argv} asks for, or L{None} when the
    command line is anything else: a watch to start, or something the
    Twisted parsers must refuse.  Only exact, valid forms are taken, so the
    catalogue's refusals stay in one place (L{ismon.cli}).
    """
    if program == "ismon":
        return _recognise_ismon(argv)
    if _is_clp_command(program):
        return _recognise_clp(program, argv)
    return None


def _recognise_clp(command: str, argv: list[str]) -> ControlRequest | None:
    # ismon.options.WatchOptions: the ID may come first, before the options.
    leading = [argv[0]] if argv and not argv[0].startswith("-") else []
    scanned = _scan(argv[len(leading) :], VERBS, ("timeout", "state-dir", "kill-after"))
    if scanned is None:
        return None
    given, rest = scanned
    positional = leading + rest
    actions = [verb for verb in VERBS if verb in given]
    if len(positional) != 1 or len(actions) != 1:
        return None
    watch_id = _watch_id(positional[0])
    stop_wait = _stop_wait(given.get("timeout", "10"))
    ok, state_dir = _state_dir(given)
    if watch_id is None or stop_wait is None or not ok:
        return None
    ok, kill_after = _kill_after(given, actions[0])
    if not ok:
        return None
    return ControlRequest(
        command, watch_id, actions[0], stop_wait, state_dir, kill_after=kill_after
    )


def _recognise_ismon(argv: list[str]) -> ControlRequest | None:
    if not argv or argv[0] not in (*VERBS, "status"):
        return None
    verb, rest = argv[0], argv[1:]
    # ismon.cli._main: the ID may come first, as in the 2004 syntax.
    if rest and not rest[0].startswith("-"):
        rest = [*rest[1:], rest[0]]
    scanned = _scan(rest, ("json",), ("timeout", "state-dir", "kill-after", "for", "reason"))
    if scanned is None:
        return None
    given, positional = scanned
    ok, pause_for, pause_reason = _pause_arguments(given, verb)
    if not ok:
        return None
    stop_wait = _stop_wait(given.get("timeout", "10"))
    ok, state_dir = _state_dir(given)
    if len(positional) > 1 or stop_wait is None or not ok:
        return None
    action = None if verb == "status" else verb
    ok, kill_after = _kill_after(given, action)
    if not ok:
        return None
    as_json = "json" in given
    if not positional:
        if action is not None:
            return None  # no ID: message 13 comes from the long way
        return ControlRequest("ismon", None, None, stop_wait, state_dir, as_json)
    watch_id = _watch_id(positional[0])
    if watch_id is None:
        return None
    # `ismon VERB ID` is parsed as `clp_httpmon ID --VERB`, and its messages
    # have always named clp_httpmon.
    return ControlRequest(
        "clp_httpmon",
        watch_id,
        action,
        stop_wait,
        state_dir,
        as_json,
        kill_after,
        pause_for,
        pause_reason,
    )


def _pause_arguments(given: dict[str, str], verb: str) -> tuple[bool, int | None, str | None]:
    """C{--for} and C{--reason}: valid, and given with pause only."""
    text, reason = given.get("for"), given.get("reason")
    if text is None and reason is None:
        return True, None, None
    if verb != "pause" or (reason is not None and reason_problem(reason) is not None):
        return False, None, None
    seconds = None if text is None else parse_duration(text)
    return (text is None or seconds is not None), seconds, reason


# -- running them ------------------------------------------------------------


def run_and_exit(request: ControlRequest) -> NoReturn:
    """Run C{request} and exit with its status."""
    _exit_with(lambda: run(request))


def _exit_with(command: Callable[[], int]) -> NoReturn:
    try:
        code = command()
        sys.stdout.flush()
    except BrokenPipeError:
        # `ismon status | head`: the reader left; that is not our error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = ExitStatus.STOPPED
    try:
        sys.stderr.flush()
    except OSError:
        pass
    # Everything is written and closed by now.  Tearing the interpreter down
    # would add ~3 ms, a tenth of the whole command (docs/performance.md,
    # "Control commands"); as run_watch does, skip it.
    os._exit(code)


def run(request: ControlRequest) -> int:
    """Carry out C{request}, print what it says, and return the exit status."""
    if request.watch_id is None:
        return _status_all(request)
    try:
        return _control(request, request.watch_id)
    except BrokenPipeError:
        raise
    except (control_client.ControlError, OSError) as e:
        sys.stderr.write(f"ismon: {e}\n")
        return ExitStatus.SYSTEM_ERROR


def system_error(
    command: str, watch_id: str, function: str, error: OSError, *, what: str = ""
) -> int:
    """Message 42 with the failing step and errno, the reason after it."""
    from ismon.catalogue import MessageId, render

    text = render(
        MessageId.SYSTEM_ERROR,
        command=command,
        watch_id=watch_id,
        function=function,
        number=error.errno or 0,
    )
    sys.stderr.write(f"{text} {what}{error.strerror or error}\n")
    return ExitStatus.SYSTEM_ERROR


def _folder(state_dir: Path | None) -> state.StateDir:
    return state.StateDir.open(state_dir or state.default_state_dir(), create=False)


def _control(request: ControlRequest, watch_id: str) -> int:
    command, action = request.command, request.action
    try:
        folder = _folder(request.state_dir)
        pid = state.running_pid(folder, watch_id)
    except OSError as e:
        return system_error(command, watch_id, "state", e)

    if action == "disp":
        if pid is None:
            sys.stderr.write(f"{command}: watch {watch_id} is not running\n")
            return ExitStatus.NOT_RUNNING
        print(pid)
        return ExitStatus.STOPPED
    if action == "del":
        try:
            removed = state.remove_leftovers(folder, watch_id)
        except state.AlreadyRunning:
            from ismon.catalogue import MessageId, render

            text = render(MessageId.ID_IN_USE, command=command, watch_id=watch_id)
            sys.stderr.write(f"{text} (--del refused: PID {pid} is alive)\n")
            return ExitStatus.ID_IN_USE
        except OSError as e:
            return system_error(command, watch_id, "del", e)
        for path in removed:
            print(f"removed {path}")
        return ExitStatus.STOPPED
    if action == "stop":
        if pid is None:
            return ExitStatus.STOPPED
        return _stop(folder, request, watch_id, pid)
    if pid is None:
        ended = _ended(folder, watch_id) if action is None else {}
        if request.as_json:
            import json

            print(json.dumps({"watch_id": watch_id, "state": "not running", **ended}))
        elif ended:
            print(f"{watch_id}: not running; {_format_ended(ended)}")
            return ExitStatus.NOT_RUNNING
        sys.stderr.write(f"{command}: watch {watch_id} is not running\n")
        return ExitStatus.NOT_RUNNING
    return _ask(folder, request, watch_id)


def _ended(folder: state.StateDir, watch_id: str) -> dict[str, object]:
    """
    What is known of how the watch C{watch_id}, not running, ended (README
    "Records"): the JSON fields C{last_exit} (its record, or null) with
    C{ended_without_record} when its last run wrote none, or
    C{last_exit_error} when the record is unreadable; nothing when nothing
    is known.
    """
    try:
        record = state.read_last_exit(folder, watch_id)
    except state.RecordUnreadable as e:
        return {"last_exit": None, "last_exit_error": str(e)}
    if state.ended_without_record(folder, watch_id, record):
        return {"last_exit": None, "ended_without_record": True}
    return {} if record is None else {"last_exit": record}


def _format_ended(ended: dict[str, Any]) -> str:
    """How a watch ended, as C{ismon status} shows it after "not running; "."""
    if ended.get("ended_without_record"):
        return "ended without a record (killed?)"
    record = ended.get("last_exit")
    if not record:
        return f"last exit unknown: {ended.get('last_exit_error')}"
    code = record["exit_code"]
    why = _shown(record.get("meaning") or f"exit status {code}")
    if code != ExitStatus.STOPPED and record.get("last_failure"):
        why += f": {_shown(record['last_failure'])}"
    return f"last exit {code} ({why}) at {_when(record['time'])}"


def _stop(folder: state.StateDir, request: ControlRequest, watch_id: str, pid: int) -> int:
    # Pinned before the request: a watch that ignores it is the process
    # that held the ID then, and only that one is ever signalled.
    watch = _WatchProcess.pin(folder, watch_id, pid) if request.kill_after else None
    try:
        deadline = time.monotonic() + request.stop_wait
        try:
            control_client.stop(folder.socket_path(watch_id), timeout=request.stop_wait)
        except (control_client.ControlError, OSError):
            pass  # it may be exiting already; the lock tells
        holder = _wait_ended(folder, watch_id, deadline)
        if holder is None:
            return ExitStatus.STOPPED
        if request.kill_after is not None:
            return _kill(folder, request, watch_id, watch, holder)
        return _stop_failed(request.command, watch_id)
    finally:
        if watch is not None:
            watch.close()


def _wait_ended(folder: state.StateDir, watch_id: str, deadline: float) -> int | None:
    """Wait until the ID's lock is free or C{deadline}; the PID holding it then."""
    while True:
        pid = state.running_pid(folder, watch_id)
        if pid is None or time.monotonic() >= deadline:
            return pid
        _pause(_STOP_POLL)


def _pause(seconds: float) -> None:
    # Not time.sleep: under libfaketime (the clock-step tests) it fails
    # with EINVAL; a timed wait does not (as ismon.state._pause).
    import threading

    threading.Event().wait(seconds)


def _stop_failed(command: str, watch_id: str, why: str = "") -> int:
    from ismon.catalogue import MessageId, render

    if why:
        sys.stderr.write(f"{command}: watch {watch_id}: {why}\n")
    sys.stderr.write(render(MessageId.STOP_FAILED, command=command, watch_id=watch_id) + "\n")
    return ExitStatus.STOP_TIMED_OUT


def _kill(
    folder: state.StateDir,
    request: ControlRequest,
    watch_id: str,
    watch: _WatchProcess | None,
    holder: int,
) -> int:
    """
    --kill-after: SIGTERM the watch that did not end within the stop wait,
    SIGKILL it if it is still there C{kill_after} seconds later, and wait
    as long again for its lock to be free.  Exit 0 once the ID is free; lines
    on stderr say which signals it took, or why none was sent.
    """
    import signal

    command, seconds = request.command, request.kill_after
    assert seconds is not None
    if watch is None:
        return _stop_failed(
            command, watch_id, f"PID {holder} (its pidfile) does not hold its lock: not signalled"
        )
    if watch.pid != holder:
        # The watch asked to stop has ended, and another process holds the
        # ID now (a new start): not ours to kill.
        return _stop_failed(
            command, watch_id, f"PID {holder} holds it now, not PID {watch.pid}: not signalled"
        )
    steps = (
        (signal.SIGTERM, f"did not end within {request.stop_wait:g} s"),
        (signal.SIGKILL, f"did not end within {seconds} s of SIGTERM"),
    )
    for signal_number, why in steps:
        name = signal.Signals(signal_number).name
        refused = watch.signal(folder, watch_id, signal_number)
        if refused:
            if state.running_pid(folder, watch_id) is None:
                return ExitStatus.STOPPED  # it ended just now
            return _stop_failed(command, watch_id, f"{refused}: not signalled")
        sys.stderr.write(f"{command}: watch {watch_id} (PID {watch.pid}) {why}: {name}\n")
        if _wait_ended(folder, watch_id, time.monotonic() + seconds) is None:
            sys.stderr.write(f"{command}: watch {watch_id} (PID {watch.pid}) ended after {name}\n")
            return ExitStatus.STOPPED
    return _stop_failed(
        command, watch_id, f"PID {watch.pid} still holds its lock {seconds} s after SIGKILL"
    )


class _WatchProcess:
    """
    The process that holds a watch's lock, pinned so that a signal meant for
    it can never reach another process that reuses its PID (README
    "Stopping by force").

    On Linux 5.3 and later the pin is a pidfd: opened on the PID the pidfile
    names, then confirmed by the lock being still held under that PID, it
    refers to the watch's process for good, and a signal sent through it
    after the watch has ended fails with ESRCH instead of reaching a newcomer
    that got the same PID.  Without pidfds (older kernels) the process's
    start time (C{/proc/PID/stat} field 22, in clock ticks since boot, which
    differs for a reused PID) is compared again right before each signal.
    Both ways, the lock must still be held under that PID when signalling:
    the pidfile must name it, and the kernel's own record of the lock
    (C{/proc/locks}) must not name another process, so a pidfile naming some
    other live process never gets it signalled.
    """

    __slots__ = ("pid", "pidfd", "start_time")

    def __init__(self, pid: int, pidfd: int | None, start_time: int | None) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.start_time = start_time

    @classmethod
    def pin(cls, folder: state.StateDir, watch_id: str, pid: int) -> _WatchProcess | None:
        """The process of watch C{watch_id}, PID C{pid}; L{None} if it is gone."""
        pidfd: int | None
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        except (AttributeError, OSError):
            pidfd = None  # no pidfds here: the start time must do
        watch = cls(pid, pidfd, _start_time(pid))
        # Confirmed after the pidfd was opened: the lock is held under PID,
        # so the pidfd (and the start time) is the watch's process.
        if watch.start_time is None or not _holds_lock(folder, watch_id, pid):
            watch.close()
            return None
        return watch

    def signal(self, folder: state.StateDir, watch_id: str, signal_number: int) -> str:
        """
        Send the signal if this is still the ID's holder.  Returns "" when
        sent, otherwise why not.
        """
        import signal

        gone = f"PID {self.pid} is no longer the watch asked to stop (it ended)"
        if not _holds_lock(folder, watch_id, self.pid):
            return f"PID {self.pid} does not hold its lock"
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal_number)
            else:
                if _start_time(self.pid) != self.start_time:
                    return gone
                os.kill(self.pid, signal_number)
        except ProcessLookupError:
            return gone
        return ""

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _holds_lock(folder: state.StateDir, watch_id: str, pid: int) -> bool:
    """Whether the ID's lock is held under C{pid}: by the pidfile and /proc/locks."""
    if state.running_pid(folder, watch_id) != pid:
        return False
    # The kernel's record of the flock; unreadable (no /proc) counts as agreeing.
    holder = state._proc_locks_holder(folder.lock_path(watch_id))
    return holder is None or holder == pid


def _start_time(pid: int) -> int | None:
    """Field 22 of C{/proc/PID/stat}: when the process started; L{None} if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    # Field 2, the name in parentheses, may hold spaces and ")": the fields
    # after the last ")" start at field 3.
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        return int(fields[22 - 3])
    except (IndexError, ValueError):
        return None


def _ask(folder: state.StateDir, request: ControlRequest, watch_id: str) -> int:
    path = folder.socket_path(watch_id)
    try:
        if request.action in ("pause", "continue"):
            from ismon.catalogue import MessageId, render

            # `ismon pause ID` does not know the watch's protocol; the message
            # names the watch's own command, as the watch itself logs it.
            command = control_client.status(path).get("command", request.command)
            if request.action == "pause":
                control_client.pause(path, duration=request.pause_for, reason=request.pause_reason)
                message = MessageId.PAUSED
            else:
                control_client.resume(path)
                message = MessageId.CONTINUED
            print(render(message, command=str(command), watch_id=watch_id))
            if request.action == "pause" and (request.pause_for or request.pause_reason):
                # What the watch made of it: --max-pause may have shortened
                # the pause, and a watch older than --for ignores it.
                paused = control_client.status(path)
                detail = pause_detail(paused.get("paused_until"), paused.get("pause_reason"))
                text = render(
                    MessageId.PAUSED_UNTIL, command=str(command), watch_id=watch_id, detail=detail
                )
                print(text)
        else:
            status = control_client.status(path)
            if request.as_json:
                import json

                print(json.dumps(status))
            else:
                print(format_status(status))
    except control_client.ControlUnavailable as e:
        sys.stderr.write(f"{request.command}: watch {watch_id}: {e}\n")
        return ExitStatus.NOT_RUNNING
    return ExitStatus.STOPPED


def format_status(status: dict[str, Any]) -> str:
    """
    The human form of a watch's status object (C{ismon status ID}).  The
    object came over a socket: any value may be missing or of another
    type, and the text is printable whatever it holds.
    """
    got = status.get
    lines = [
        f"{_shown(got('watch_id'))}: {_shown(got('state'))} ({_shown(got('target'))}), "
        f"pid {_shown(got('pid'))}, up {_number(got('uptime', 0), '.0f')}s",
        f"  probes {_shown(got('probes'))}, failures {_shown(got('failures'))}, "
        f"consecutive failures {_shown(got('consecutive_failures'))}/{_shown(got('retries'))}",
        f"  detection bound {_number(got('detection_bound'), 'g')}s",
    ]
    last = got("last_probe")
    if last:
        last = last if isinstance(last, dict) else {}
        lines.append(f"  last probe {_when(last.get('time'))}: {_shown(last.get('summary'))}")
    if got("paused_since"):
        line = f"  paused since {_when(status['paused_since'])}"
        if got("paused_until"):
            line += f" until {_when(status['paused_until'])}"
        if got("pause_reason"):
            line += f" (reason: {_shown(status['pause_reason'])})"
        lines.append(line)
    return "\n".join(lines)


def _shown(value: object) -> str:
    """A value of a status object or record as printable text (no control character)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    # A lone surrogate (JSON's "\ud800") is not printable either: print() would fail on it.
    return "".join(c if c.isprintable() else "?" for c in text)


def _number(value: object, spec: str) -> str:
    """C{value} formatted with C{spec} if it is a number, else shown as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return format(value, spec)
        except (ValueError, OverflowError):  # an integer too large for a float
            pass
    return _shown(value)


def _when(epoch: object) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return f"(no valid time: {_shown(epoch)})"


def pause_detail(until: float | None, reason: str | None, limit: str = "") -> str:
    """
    Message 100's detail: when the pause ends by itself (C{until}, wall
    clock) and why; C{limit} names what set the expiry when it is not the
    pause's own C{--for}.
    """
    if until is None:
        parts = ["no expiry"]
    else:
        parts = [f"until {_when(until)}" + (f", set by {limit}" if limit else "")]
    if reason:
        parts.append(f"reason: {_shown(reason)}")
    return "; ".join(parts)


def _status_all(request: ControlRequest) -> int:
    try:
        folder = _folder(request.state_dir)
        watches = [(w, state.running_pid(folder, w)) for w in state.list_watch_ids(folder)]
    except OSError as e:
        return system_error("ismon", "-", "state", e)
    if request.as_json:
        import json

        results = [
            {
                "watch_id": w,
                "pid": pid,
                "running": pid is not None,
                **(_ended(folder, w) if pid is None else {}),
            }
            for w, pid in watches
        ]
        print(json.dumps(results))
        return ExitStatus.STOPPED
    for watch_id, pid in watches:
        if pid:
            print(f"{watch_id}: running, pid {pid}")
            continue
        ended = _ended(folder, watch_id)
        print(
            f"{watch_id}: not running; {_format_ended(ended)}"
            if ended
            else f"{watch_id}: not running (leftovers)"
        )
    return ExitStatus.STOPPED


# -- ismon metrics (docs/metrics.md) -------------------------------------------

#: Seconds one watch may take to answer C{ismon metrics}: a stuck watch
#: costs this once, and shows as C{ismon_up 0}.
METRICS_WATCH_TIMEOUT = 2.0

#: The file node_exporter's textfile collector reads (it reads C{*.prom}
#: only, so the temporary file beside it is never read half-written).
TEXTFILE_NAME = "ismon.prom"

#: How many watches C{ismon metrics} asks at the same time.
_METRICS_THREADS = 32

_METRICS_FLAGS = ("openmetrics", "help")
_METRICS_PARAMETERS = ("state-dir", "textfile")


def ended_snapshot(folder: state.StateDir, watch_id: str) -> WatchSnapshot:
    """
    The snapshot of a watch that does not run: its last-exit record, if
    that record is the last run's own (as C{ismon status} judges it).
    """
    from ismon.metrics import WatchSnapshot

    record = _ended(folder, watch_id).get("last_exit")
    return WatchSnapshot(watch_id, None, record if isinstance(record, dict) else None)


def metric_snapshots(
    folder: state.StateDir, timeout: float = METRICS_WATCH_TIMEOUT
) -> list[WatchSnapshot]:
    """
    One snapshot per watch ID in C{folder}: a running watch is asked for
    its status, within C{timeout} seconds (no answer: no status); an ended
    one gives its last-exit record.  The running watches are asked at
    once, each from its own thread (up to 32 at a time), so stuck watches
    cost one C{timeout} together, not one each.
    """
    import threading

    from ismon.metrics import WatchSnapshot

    found: dict[str, WatchSnapshot] = {}

    def ask(watch_id: str) -> None:
        status: dict[str, Any] | None
        try:
            status = control_client.status(folder.socket_path(watch_id), timeout)
        except (control_client.ControlError, OSError):
            status = None
        found[watch_id] = WatchSnapshot(watch_id, status, None)

    watch_ids = state.list_watch_ids(folder)
    running: list[str] = []
    for watch_id in watch_ids:
        if state.running_pid(folder, watch_id) is None:
            found[watch_id] = ended_snapshot(folder, watch_id)
        else:
            running.append(watch_id)
    for first in range(0, len(running), _METRICS_THREADS):
        asking = [
            threading.Thread(target=ask, args=(watch_id,), daemon=True)
            for watch_id in running[first : first + _METRICS_THREADS]
        ]
        for thread in asking:
            thread.start()
        for thread in asking:
            thread.join()  # each ends within its own timeout
    return [found[watch_id] for watch_id in watch_ids]


def _metrics_options(argv: list[str]) -> tuple[dict[str, str], str]:
    """The options of C{ismon metrics}, and what is wrong with them ("" if nothing)."""
    given: dict[str, str] = {}
    at = 0
    while at < len(argv):
        arg = argv[at]
        at += 1
        if arg == "--":
            if at < len(argv):
                return given, f"unexpected argument {_quote(argv[at])}: metrics takes no watch ID"
            break
        if arg == "-h":
            arg = "--help"
        if not arg.startswith("--"):
            return given, f"unexpected argument {_quote(arg)}: metrics takes no watch ID"
        name, equals, value = arg[2:].partition("=")
        if name in _METRICS_FLAGS:
            if equals:
                return given, f"--{name} takes no value"
            given[name] = _NO_VALUE
        elif name in _METRICS_PARAMETERS:
            if not equals:
                if at == len(argv):
                    return given, f"--{name} needs a folder"
                value = argv[at]
                at += 1
            if not value or "\0" in value:
                return given, f"--{name} needs a folder, not {_quote(value)}"
            given[name] = value
        else:
            return given, f"unknown option {_quote(arg)}"
    if "openmetrics" in given and "textfile" in given:
        return given, "--textfile writes the classic format: leave out --openmetrics"
    textfile = given.get("textfile")
    if textfile is not None and not os.path.isdir(textfile):
        return given, f"--textfile {_quote(textfile)} is not a folder"
    return given, ""


def metrics(argv: list[str]) -> int:
    """
    C{ismon metrics [--state-dir DIR] [--openmetrics] [--textfile DIR]}:
    print the metrics of every watch in the state folder, or write them
    to C{DIR/ismon.prom}; return the exit status.
    """
    given, problem = _metrics_options(argv)
    if problem:
        sys.stderr.write(f"ismon metrics: {problem} (see ismon --help)\n")
        return ExitStatus.INVALID_PARAMETER
    if "help" in given:
        from ismon.manual import full_help

        sys.stdout.write(full_help("ismon"))
        return ExitStatus.STOPPED
    from ismon.metrics import render

    state_dir = given.get("state-dir")
    try:
        folder = _folder(Path(state_dir) if state_dir is not None else None)
        snapshots = metric_snapshots(folder)
    except OSError as e:
        return system_error("ismon", "-", "state", e)
    textfile = given.get("textfile")
    if textfile is None:
        sys.stdout.write(render(snapshots, openmetrics="openmetrics" in given))
        return ExitStatus.STOPPED
    path = Path(textfile) / TEXTFILE_NAME
    try:
        # Atomic (README "Records" writes ID.last the same way), and
        # readable by node_exporter, which seldom runs as our user.
        state._replace_file(
            path, render(snapshots).encode("utf-8"), kind="prom", sync=True, mode=0o644
        )
    except OSError as e:
        return system_error("ismon", "-", "textfile", e, what=f"{path}: ")
    return ExitStatus.STOPPED


def metrics_and_exit(argv: list[str]) -> NoReturn:
    """Run C{ismon metrics argv} and exit with its status."""
    _exit_with(lambda: metrics(argv))
