# -*- test-case-name: tests.test_control_commands,tests.test_last_exit -*-
"""
The control commands -- C{ismon status|stop|pause|continue|disp|del} and
C{clp_httpmon ID --stop|--pause|--continue|--disp|--del} -- in the standard
library alone: what they print and how they exit, for a L{ControlRequest}
from either parser (L{ismon.control.recognise}, L{ismon.cmdline.cli}), so
both ways print and exit alike.

Cluster software runs these every few seconds on every node
(docs/cluster.md), so they must not pay for Twisted (docs/performance.md,
"Control commands"; docs/architecture.md, "The fast path").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ismon.control import client
from ismon.control.request import ControlRequest, pause_detail
from ismon.control.stop import stop
from ismon.core.exit_status import ExitStatus
from ismon.core.text import local_time, shown, shown_number
from ismon.state.folder import StateDir, default_state_dir
from ismon.state.listing import list_watch_ids
from ismon.state.lock import AlreadyRunning, remove_leftovers, running_or_ended, running_pid

# Start-up is most of what these commands cost, so modules that only some
# of them need (json, the catalogue) are imported where used, and typing
# (~2.5 ms) only for the annotations.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

__all__ = [
    "exit_with",
    "format_status",
    "open_folder",
    "run",
    "run_and_exit",
    "system_error",
]


def run_and_exit(request: ControlRequest) -> NoReturn:
    """Run C{request} and exit with its status."""
    exit_with(lambda: run(request))


def exit_with(command: Callable[[], int]) -> NoReturn:
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
    except (client.ControlError, OSError) as e:
        sys.stderr.write(f"ismon: {e}\n")
        return ExitStatus.SYSTEM_ERROR


def system_error(
    command: str, watch_id: str, function: str, error: OSError, *, what: str = ""
) -> int:
    """Message 42 with the failing step and errno, the reason after it."""
    from ismon.core.catalogue import MessageId, render

    text = render(
        MessageId.SYSTEM_ERROR,
        command=command,
        watch_id=watch_id,
        function=function,
        number=error.errno or 0,
    )
    sys.stderr.write(f"{text} {what}{error.strerror or error}\n")
    return ExitStatus.SYSTEM_ERROR


def open_folder(state_dir: Path | None) -> StateDir:
    """
    The state folder a control command reads.  Root may control the
    watches of another user, in that user's folder (README "Records"); a
    watch never uses such a folder.
    """
    where = state_dir or default_state_dir()
    return StateDir.open(where, create=False, of_other_user=True)


def _control(request: ControlRequest, watch_id: str) -> int:
    command, action = request.command, request.action
    try:
        folder = open_folder(request.state_dir)
        pid = running_pid(folder, watch_id)
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
            removed = remove_leftovers(folder, watch_id)
        except AlreadyRunning:
            from ismon.core.catalogue import MessageId, render

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
        return stop(folder, request, watch_id, pid)
    ended: dict[str, object] = {}
    if pid is None and action is None:
        pid, ended = running_or_ended(folder, watch_id)
    if pid is None:
        if request.as_json:
            import json

            print(json.dumps({"watch_id": watch_id, "state": "not running", **ended}))
        elif ended:
            print(f"{watch_id}: not running; {_format_ended(ended)}")
            return ExitStatus.NOT_RUNNING
        sys.stderr.write(f"{command}: watch {watch_id} is not running\n")
        return ExitStatus.NOT_RUNNING
    return _ask(folder, request, watch_id)


def _format_ended(ended: dict[str, Any]) -> str:
    """How a watch ended, as C{ismon status} shows it after "not running; "."""
    if ended.get("ended_without_record"):
        return "ended without a record (killed?)"
    if ended.get("record_not_written"):
        return f"its last record could not be written ({shown(ended['record_not_written'])})"
    record = ended.get("last_exit")
    if not record:
        return f"last exit unknown: {ended.get('last_exit_error')}"
    code = record["exit_code"]
    why = shown(record.get("meaning") or f"exit status {code}")
    if code != ExitStatus.STOPPED and record.get("last_failure"):
        why += f": {shown(record['last_failure'])}"
    return f"last exit {code} ({why}) at {local_time(record['time'])}"


def _ask(folder: StateDir, request: ControlRequest, watch_id: str) -> int:
    path = folder.socket_path(watch_id)
    try:
        if request.action in ("pause", "continue"):
            from ismon.core.catalogue import MessageId, render
            from ismon.core.protocols import label_of

            # `ismon pause ID` does not know the watch's protocol; the message
            # names the watch's own command, as the watch itself logs it.
            command = client.status(path).get("command", request.command)
            if request.action == "pause":
                client.pause(path, duration=request.pause_for, reason=request.pause_reason)
                message = MessageId.PAUSED
            else:
                client.resume(path)
                message = MessageId.CONTINUED
            print(render(message, command=str(command), watch_id=watch_id))
            if request.action == "pause" and (request.pause_for or request.pause_reason):
                # What the watch made of it: --max-pause may have shortened
                # the pause, and a watch older than --for ignores it.
                paused = client.status(path)
                detail = pause_detail(paused.get("paused_until"), paused.get("pause_reason"))
                text = render(
                    MessageId.PAUSED_UNTIL,
                    command=str(command),
                    watch_id=watch_id,
                    detail=detail,
                    protocol=label_of(str(command)),
                )
                print(text)
        else:
            status = client.status(path)
            if request.as_json:
                import json

                print(json.dumps(status))
            else:
                print(format_status(status))
    except client.ControlUnavailable as e:
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
        f"{shown(got('watch_id'))}: {shown(got('state'))} ({shown(got('target'))}), "
        f"pid {shown(got('pid'))}, up {shown_number(got('uptime', 0), '.0f')}s",
        f"  probes {shown(got('probes'))}, failures {shown(got('failures'))}, "
        f"consecutive failures {shown(got('consecutive_failures'))}/{shown(got('retries'))}",
        f"  detection bound {shown_number(got('detection_bound'), 'g')}s",
    ]
    last = got("last_probe")
    if last:
        last = last if isinstance(last, dict) else {}
        lines.append(f"  last probe {local_time(last.get('time'))}: {shown(last.get('summary'))}")
    if got("paused_since"):
        line = f"  paused since {local_time(status['paused_since'])}"
        if got("paused_until"):
            line += f" until {local_time(status['paused_until'])}"
        if got("pause_reason"):
            line += f" (reason: {shown(status['pause_reason'])})"
        lines.append(line)
    return "\n".join(lines)


def _status_all(request: ControlRequest) -> int:
    try:
        folder = open_folder(request.state_dir)
        watches = [(w, *running_or_ended(folder, w)) for w in list_watch_ids(folder)]
    except OSError as e:
        return system_error("ismon", "-", "state", e)
    if request.as_json:
        import json

        results = [
            {"watch_id": w, "pid": pid, "running": pid is not None, **ended}
            for w, pid, ended in watches
        ]
        print(json.dumps(results))
        return ExitStatus.STOPPED
    for watch_id, pid, ended in watches:
        if pid:
            print(f"{watch_id}: running, pid {pid}")
            continue
        print(
            f"{watch_id}: not running; {_format_ended(ended)}"
            if ended
            else f"{watch_id}: not running (leftovers)"
        )
    return ExitStatus.STOPPED
