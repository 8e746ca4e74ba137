# -*- test-case-name: tests.test_replies,tests.test_options -*-
"""
Showing text that came from outside -- a server's bytes, an operator's
argument -- on one log-safe line: no control characters, bounded.
Standard library only: the fast control commands use it too.
"""

from __future__ import annotations

import re
import time

__all__ = ["local_time", "printable", "quote", "shown", "shown_number"]

# Bytes that are not printable ASCII: their absence lets printable() skip
# the per-character pass that almost every real reply would go through.
_NOT_PLAIN_ASCII = re.compile(rb"[^\x20-\x7e]")


def printable(raw: bytes, limit: int = 200) -> str:
    """A log-safe rendering of server bytes: no control characters, bounded."""
    head = raw[:limit]
    if _NOT_PLAIN_ASCII.search(head) is None:
        text = head.decode("ascii")
    else:
        text = "".join(c if c.isprintable() else "?" for c in head.decode("utf-8", "replace"))
    return text + ("..." if len(raw) > limit else "")


def quote(text: str, limit: int = 60) -> str:
    """C{text} in double quotes, control characters escaped, long ones cut."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(shown) > limit:
        shown = shown[:limit] + "..."
    return f'"{shown}"'


def local_time(epoch: object) -> str:
    """
    C{YYYY-MM-DD hh:mm:ss} in local time, as status lines and messages show
    times.  The time may come from a status document or a record read from
    outside: anything that is no time (NaN, 1e300, a string) is shown as
    what it is instead of raising.
    """
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return f"(no valid time: {shown(epoch)})"


def shown(value: object) -> str:
    """A value of a status document or record as printable text (no control character)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    # A lone surrogate (JSON's "\ud800") is not printable either: print() would fail on it.
    return "".join(c if c.isprintable() else "?" for c in text)


def shown_number(value: object, spec: str) -> str:
    """C{value} formatted with C{spec} if it is a number, else shown as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return format(value, spec)
        except (ValueError, OverflowError):  # an integer too large for a float
            pass
    return shown(value)
