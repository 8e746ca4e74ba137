# -*- test-case-name: tests.test_kill_after,tests.test_control_commands -*-
"""
C{ismon stop ID} and C{clp_httpmon ID --stop}: ask the watch to stop, wait
for its lock to be free, and with C{--kill-after} SIGTERM then SIGKILL the
very process that held the lock when the stop began (README "Stopping by
force").  Standard library only.
"""

from __future__ import annotations

import os
import sys
import time

from ismon.control import client
from ismon.control.request import ControlRequest
from ismon.core.exit_status import ExitStatus
from ismon.state.folder import StateDir
from ismon.state.lock import lock_holder_pid, running_pid, timed_wait

__all__ = ["stop"]

#: Seconds between looks at the lock while waiting for a stopped watch to exit.
_STOP_POLL = 0.05


def stop(folder: StateDir, request: ControlRequest, watch_id: str, pid: int) -> int:
    # Pinned before the request: a watch that ignores it is the process
    # that held the ID then, and only that one is ever signalled.
    watch = _WatchProcess.pin(folder, watch_id, pid) if request.kill_after else None
    try:
        deadline = time.monotonic() + request.stop_wait
        try:
            client.stop(folder.socket_path(watch_id), timeout=request.stop_wait)
        except (client.ControlError, OSError):
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


def _wait_ended(folder: StateDir, watch_id: str, deadline: float) -> int | None:
    """Wait until the ID's lock is free or C{deadline}; the PID holding it then."""
    while True:
        pid = running_pid(folder, watch_id)
        if pid is None or time.monotonic() >= deadline:
            return pid
        timed_wait(_STOP_POLL)


def _stop_failed(command: str, watch_id: str, why: str = "") -> int:
    from ismon.core.catalogue import MessageId, render

    if why:
        sys.stderr.write(f"{command}: watch {watch_id}: {why}\n")
    sys.stderr.write(render(MessageId.STOP_FAILED, command=command, watch_id=watch_id) + "\n")
    return ExitStatus.STOP_TIMED_OUT


def _kill(
    folder: StateDir,
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
            if running_pid(folder, watch_id) is None:
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
    def pin(cls, folder: StateDir, watch_id: str, pid: int) -> _WatchProcess | None:
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
        # so the pidfd (and the start time) is the watch's process; and it
        # runs as the folder's owner, so that root, in another user's
        # folder, signals none but that user's processes.
        if (
            watch.start_time is None
            or not _holds_lock(folder, watch_id, pid)
            or not _runs_as_owner(folder, pid)
        ):
            watch.close()
            return None
        return watch

    def signal(self, folder: StateDir, watch_id: str, signal_number: int) -> str:
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


def _holds_lock(folder: StateDir, watch_id: str, pid: int) -> bool:
    """Whether the ID's lock is held under C{pid}: by the pidfile and /proc/locks."""
    if running_pid(folder, watch_id) != pid:
        return False
    # The kernel's record of the flock; unreadable (no /proc) counts as agreeing.
    holder = lock_holder_pid(folder.lock_path(watch_id))
    return holder is None or holder == pid


def _runs_as_owner(folder: StateDir, pid: int) -> bool:
    """Whether process C{pid} runs as the owner of C{folder} (its /proc entry's owner)."""
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.stat(folder.path).st_uid
    except OSError:
        return False


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
