# -*- test-case-name: tests.test_replies -*-
"""
The one declared error of every parser in L{ismon.wire}: what a server sent
is no reply of its protocol.  A parser raises nothing else for any input
(docs/fuzzing.md); the probe turns it into a catalogue message (82 for
HTTP, 83 with 0 for the line protocols).
"""

from __future__ import annotations

__all__ = ["InvalidReply"]


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
