# -*- test-case-name: tests.test_control_commands -*-
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
    from typing import Any, NoReturn

__all__ = ["ControlRequest", "format_status", "recognise", "run", "run_and_exit", "system_error"]

#: The control verbs; C{None} stands for status.
VERBS = ("stop", "pause", "continue", "disp", "del")

#: Seconds between looks at the lock while waiting for a stopped watch to exit.
_STOP_POLL = 0.05


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
    """

    __slots__ = ("action", "as_json", "command", "state_dir", "stop_wait", "watch_id")

    def __init__(
        self,
        command: str,
        watch_id: str | None,
        action: str | None,
        stop_wait: float = 10,
        state_dir: Path | None = None,
        as_json: bool = False,
    ) -> None:
        self.command = command
        self.watch_id = watch_id
        self.action = action
        self.stop_wait = stop_wait
        self.state_dir = state_dir
        self.as_json = as_json

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

_CLP_COMMANDS = ("clp_httpmon", "clp_smtpmon")
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


def recognise(program: str, argv: list[str]) -> ControlRequest | None:
    """
    The control command that C{program argv} asks for, or L{None} when the
    command line is anything else: a watch to start, or something the
    Twisted parsers must refuse.  Only exact, valid forms are taken, so the
    catalogue's refusals stay in one place (L{ismon.cli}).
    """
    if program == "ismon":
        return _recognise_ismon(argv)
    if program in _CLP_COMMANDS:
        return _recognise_clp(program, argv)
    return None


def _recognise_clp(command: str, argv: list[str]) -> ControlRequest | None:
    # ismon.options.WatchOptions: the ID may come first, before the options.
    leading = [argv[0]] if argv and not argv[0].startswith("-") else []
    scanned = _scan(argv[len(leading) :], VERBS, ("timeout", "state-dir"))
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
    return ControlRequest(command, watch_id, actions[0], stop_wait, state_dir)


def _recognise_ismon(argv: list[str]) -> ControlRequest | None:
    if not argv or argv[0] not in (*VERBS, "status"):
        return None
    verb, rest = argv[0], argv[1:]
    # ismon.cli._main: the ID may come first, as in the 2004 syntax.
    if rest and not rest[0].startswith("-"):
        rest = [*rest[1:], rest[0]]
    scanned = _scan(rest, ("json",), ("timeout", "state-dir"))
    if scanned is None:
        return None
    given, positional = scanned
    stop_wait = _stop_wait(given.get("timeout", "10"))
    ok, state_dir = _state_dir(given)
    if len(positional) > 1 or stop_wait is None or not ok:
        return None
    action = None if verb == "status" else verb
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
    return ControlRequest("clp_httpmon", watch_id, action, stop_wait, state_dir, as_json)


# -- running them ------------------------------------------------------------


def run_and_exit(request: ControlRequest) -> NoReturn:
    """Run C{request} and exit with its status."""
    try:
        code = run(request)
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
        return _stop(folder, request, watch_id)
    if pid is None:
        if request.as_json:
            import json

            print(json.dumps({"watch_id": watch_id, "state": "not running"}))
        sys.stderr.write(f"{command}: watch {watch_id} is not running\n")
        return ExitStatus.NOT_RUNNING
    return _ask(folder, request, watch_id)


def _stop(folder: state.StateDir, request: ControlRequest, watch_id: str) -> int:
    deadline = time.monotonic() + request.stop_wait
    try:
        control_client.stop(folder.socket_path(watch_id), timeout=request.stop_wait)
    except (control_client.ControlError, OSError):
        pass  # it may be exiting already; the lock tells
    while time.monotonic() < deadline:
        if state.running_pid(folder, watch_id) is None:
            return ExitStatus.STOPPED
        # Not time.sleep: under libfaketime (the clock-step tests) it fails
        # with EINVAL; a timed wait does not (as ismon.state._pause).
        import threading

        threading.Event().wait(_STOP_POLL)
    if state.running_pid(folder, watch_id) is None:
        return ExitStatus.STOPPED
    from ismon.catalogue import MessageId, render

    text = render(MessageId.STOP_FAILED, command=request.command, watch_id=watch_id)
    sys.stderr.write(text + "\n")
    return ExitStatus.STOP_TIMED_OUT


def _ask(folder: state.StateDir, request: ControlRequest, watch_id: str) -> int:
    path = folder.socket_path(watch_id)
    try:
        if request.action in ("pause", "continue"):
            from ismon.catalogue import MessageId, render

            # `ismon pause ID` does not know the watch's protocol; the message
            # names the watch's own command, as the watch itself logs it.
            command = control_client.status(path).get("command", request.command)
            if request.action == "pause":
                control_client.pause(path)
                message = MessageId.PAUSED
            else:
                control_client.resume(path)
                message = MessageId.CONTINUED
            print(render(message, command=str(command), watch_id=watch_id))
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
    """The human form of a watch's status object (C{ismon status ID})."""
    lines = [
        f"{status.get('watch_id')}: {status.get('state')} ({status.get('target')}), "
        f"pid {status.get('pid')}, up {status.get('uptime', 0):.0f}s",
        f"  probes {status.get('probes')}, failures {status.get('failures')}, "
        f"consecutive failures {status.get('consecutive_failures')}/{status.get('retries')}",
        f"  detection bound {status.get('detection_bound'):g}s",
    ]
    last = status.get("last_probe")
    if last:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["time"]))
        lines.append(f"  last probe {when}: {last['summary']}")
    if status.get("paused_since"):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["paused_since"]))
        lines.append(f"  paused since {when}")
    return "\n".join(lines)


def _status_all(request: ControlRequest) -> int:
    try:
        folder = _folder(request.state_dir)
        watches = [(w, state.running_pid(folder, w)) for w in state.list_watch_ids(folder)]
    except OSError as e:
        return system_error("ismon", "-", "state", e)
    if request.as_json:
        import json

        results = [{"watch_id": w, "pid": pid, "running": pid is not None} for w, pid in watches]
        print(json.dumps(results))
        return ExitStatus.STOPPED
    for watch_id, pid in watches:
        print(f"{watch_id}: " + (f"running, pid {pid}" if pid else "not running (leftovers)"))
    return ExitStatus.STOPPED
