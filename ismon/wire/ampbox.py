# -*- test-case-name: tests.test_ampbox -*-
"""
The AMP box wire format, in the standard library alone, so that the control
commands can talk to a watch without loading Twisted (docs/performance.md,
"Control commands").

A box is a sequence of key/value pairs, each a 2-byte big-endian length and
that many bytes; keys are 1-255 bytes, values 0-65535 bytes, and an empty
key ends the box.  Requests carry C{_command} and C{_ask} (a tag); answers
carry C{_answer} with the tag, errors C{_error} with the tag plus
C{_error_code} and C{_error_description}.  This is what
C{twisted.protocols.amp} puts on the wire; tests/test_ampbox.py holds the
two to the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ANSWER",
    "ASK",
    "COMMAND",
    "ERROR",
    "ERROR_CODE",
    "ERROR_DESCRIPTION",
    "MAX_KEY_LENGTH",
    "MAX_VALUE_LENGTH",
    "BoxReader",
    "MalformedBox",
    "encode_box",
]

COMMAND = b"_command"
ASK = b"_ask"
ANSWER = b"_answer"
ERROR = b"_error"
ERROR_CODE = b"_error_code"
ERROR_DESCRIPTION = b"_error_description"

MAX_KEY_LENGTH = 0xFF
MAX_VALUE_LENGTH = 0xFFFF

#: Bytes one box may take before a reader refuses it.  AMP itself bounds
#: only each key and value; our answers hold a few keys and at most one
#: full-size value (the status), so this is generous and still bounded.
DEFAULT_MAX_BOX_BYTES = 4 * (MAX_VALUE_LENGTH + MAX_KEY_LENGTH + 4)


class MalformedBox(ValueError):
    """Bytes that are not a box this reader accepts."""


def encode_box(box: Mapping[bytes, bytes]) -> bytes:
    """
    The wire form of C{box}: pairs sorted by key, as Twisted sends them.

    @raise MalformedBox: a key that is empty or too long, or a value too long.
    """
    parts: list[bytes] = []
    for key, value in sorted(box.items()):
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise MalformedBox(f"keys and values must be bytes: {key!r}")
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise MalformedBox(f"a key must be 1-{MAX_KEY_LENGTH} bytes: {key[:40]!r}")
        if len(value) > MAX_VALUE_LENGTH:
            raise MalformedBox(f"the value of {key!r} is over {MAX_VALUE_LENGTH} bytes")
        parts += (len(key).to_bytes(2, "big"), key, len(value).to_bytes(2, "big"), value)
    parts.append(b"\x00\x00")
    return b"".join(parts)


class BoxReader:
    """
    Cuts a byte stream into boxes.  Feed it what arrives; it returns the
    boxes completed so far and keeps the rest.

    Bounded: a key over L{MAX_KEY_LENGTH} bytes, or a box over
    C{max_box_bytes}, raises L{MalformedBox} as soon as it is seen, so a
    peer cannot make the reader hold more than one box's worth of bytes;
    a box over the bound is refused however the stream was cut.  Each
    byte is parsed once: a box that arrives in many pieces is continued
    where the last piece left it, not read again from its start.
    """

    def __init__(self, max_box_bytes: int = DEFAULT_MAX_BOX_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_box_bytes
        # The box being read: its pairs so far, where it starts in _buffer
        # and where its next pair starts.
        self._box: dict[bytes, bytes] = {}
        self._start = 0
        self._at = 0

    def feed(self, data: bytes) -> list[dict[bytes, bytes]]:
        self._buffer += data
        boxes: list[dict[bytes, bytes]] = []
        while self._parse():
            if self._at - self._start > self._max:
                raise MalformedBox(f"a box of over {self._max} bytes")
            boxes.append(self._box)
            self._box = {}
            self._start = self._at
        # Drop the boxes read, once per feed (not once per box).
        del self._buffer[: self._start]
        self._at -= self._start
        self._start = 0
        if len(self._buffer) > self._max:
            raise MalformedBox(f"a box of over {self._max} bytes")
        return boxes

    @property
    def pending(self) -> int:
        """Bytes received towards a box not yet complete."""
        return len(self._buffer) - self._start

    def _parse(self) -> bool:
        """Read the pairs that have arrived; whether the box ended (its empty key)."""
        buffer = self._buffer
        size = len(buffer)
        at = self._at
        while True:
            if at + 2 > size:
                return False
            length = int.from_bytes(buffer[at : at + 2], "big")
            if length == 0:
                self._at = at + 2
                return True
            if length > MAX_KEY_LENGTH:
                raise MalformedBox(f"a key of {length} bytes (at most {MAX_KEY_LENGTH})")
            value_at = at + 2 + length
            if value_at + 2 > size:
                return False
            value_length = int.from_bytes(buffer[value_at : value_at + 2], "big")
            end = value_at + 2 + value_length
            if end > size:
                return False
            self._box[bytes(buffer[at + 2 : value_at])] = bytes(buffer[value_at + 2 : end])
            at = self._at = end
