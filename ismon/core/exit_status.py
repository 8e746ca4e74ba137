# -*- test-case-name: tests.test_last_exit -*-
"""
The one table of exit codes (README "Exit codes"): each code and what it
says, in a few words, as the last-exit record and C{ismon status} show it.
Standard library only: the control commands exit with these without
loading Twisted.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus", "exit_meaning"]


class ExitStatus(IntEnum):
    """The one table of exit codes (README "Exit codes")."""

    STOPPED = 0
    SERVER_FAILED = 1
    INVALID_PARAMETER = 2
    ID_IN_USE = 3
    SYSTEM_ERROR = 4
    STOP_TIMED_OUT = 5

    # For --disp / --pause / --continue / status: the ID is not running.
    NOT_RUNNING = 1


_MEANINGS: dict[int, str] = {
    ExitStatus.STOPPED: "stopped on request",
    ExitStatus.SERVER_FAILED: "the server failed",
    ExitStatus.INVALID_PARAMETER: "invalid parameter",
    ExitStatus.ID_IN_USE: "the ID is already in use",
    ExitStatus.SYSTEM_ERROR: "system error",
    ExitStatus.STOP_TIMED_OUT: "the watch did not end",
}


def exit_meaning(code: int) -> str:
    """What an exit code says (README "Exit codes"), in a few words."""
    return _MEANINGS.get(code, f"exit status {code}")
