# -*- test-case-name: tests.test_control_commands,tests.test_options -*-
"""
The vocabulary of the control commands -- C{ismon status|stop|pause|continue|disp|del}
and C{clp_httpmon ID --stop|--pause|--continue|--disp|--del} -- as one
validated value, L{ControlRequest}, and the rules of a pause's DURATION and
reason (README "Maintenance pauses").  Both parsers of these command lines
(the fast L{ismon.control.recognise} and the Twisted one of
L{ismon.cmdline}) build it, and the watch's control socket
(L{ismon.control.amp}) applies the same pause rules.

Standard library only, and no C{typing}: the control commands import this
on every call (docs/architecture.md, "The fast path").
"""

from __future__ import annotations

from pathlib import Path

from ismon.core.text import local_time, quote, shown

__all__ = [
    "MAX_PAUSE_SECONDS",
    "MAX_REASON_BYTES",
    "VERBS",
    "ControlRequest",
    "duration_problem",
    "parse_duration",
    "pause_detail",
    "reason_problem",
]

#: The control verbs; C{None} stands for status.
VERBS = ("stop", "pause", "continue", "disp", "del")

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
        f"not {quote(text)}"
    )


def reason_problem(text: str) -> str | None:
    """Why C{text} cannot be a pause reason, or L{None} if it can."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_REASON_BYTES:
        return f"--reason must be at most {MAX_REASON_BYTES} bytes, not {size}"
    if not text.isprintable():
        return f"--reason must not contain control characters: {quote(text)}"
    return None


class ControlRequest:
    """
    One control command, validated.

    @ivar command: the name messages start with: clp_httpmon, clp_smtpmon,
        or ismon for the status of all watches.
    @ivar watch_id: L{None} for the status of every watch in the folder.
    @ivar action: one of L{VERBS}, or L{None} for status.
    @ivar stop_wait: with stop, seconds to wait for the watch to exit.
    @ivar state_dir: L{None} for L{ismon.state.folder.default_state_dir}.
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


def pause_detail(until: float | None, reason: str | None, limit: str = "") -> str:
    """
    Message 100's detail: when the pause ends by itself (C{until}, wall
    clock) and why; C{limit} names what set the expiry when it is not the
    pause's own C{--for}.
    """
    if until is None:
        parts = ["no expiry"]
    else:
        parts = [f"until {local_time(until)}" + (f", set by {limit}" if limit else "")]
    if reason:
        parts.append(f"reason: {shown(reason)}")
    return "; ".join(parts)
