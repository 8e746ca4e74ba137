# -*- test-case-name: tests.test_replies -*-
"""
The one declared error of every parser in L{ismon.wire}: what a server sent
is no reply of its protocol.  A parser raises nothing else for any input
(docs/fuzzing.md); the probe turns it into a catalogue message (82 for
HTTP, 83 with 0 for the line protocols).  And the line bound the line
parsers share, judged alike on a line however its bytes were cut.
"""

from __future__ import annotations

__all__ = ["InvalidReply", "line_over", "unfinished_over"]


def line_over(raw: bytes, limit: int) -> bool:
    """Whether the complete line C{raw} (its LF taken off) holds more than C{limit} bytes, its CR not counted."""
    return len(raw) - raw.endswith(b"\r") > limit


def unfinished_over(buffer: bytes, start: int, limit: int) -> bool:
    """
    Whether the unfinished line C{buffer[start:]} can no longer become a
    line within C{limit} (L{line_over}): more than C{limit} + 1 bytes, or
    C{limit} + 1 whose last is not the CR of its line end.  So a line is
    refused at once, and exactly when it would be refused whole: the
    verdict never depends on where the reads were cut (found by fuzzing:
    a line one CR over the bound was refused cut, taken whole).
    """
    size = len(buffer) - start
    return size > limit + 1 or (size == limit + 1 and not buffer.endswith(b"\r"))


class InvalidReply(Exception):
    """
    What the server sent is no reply of the protocol.

    @ivar reason: why, in a few words (a message's detail).
    @ivar received: the offending bytes, or their start (shown, bounded).
    """

    def __init__(self, reason: str, received: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.received = received
