"""
The one table of exit codes (README "Exit codes").  Standard library only:
the control commands exit with these without loading Twisted.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus"]


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
