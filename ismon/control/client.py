# -*- test-case-name: tests.test_control_client -*-
"""
A blocking control client in the standard library alone: one AMP request
over the watch's UNIX socket, one answer, within one deadline.

The control commands run every few seconds on every cluster node; loading
Twisted and a reactor for one exchange cost five times the exchange itself
(docs/performance.md, "Control commands").  L{ismon.control} keeps the
server and a Twisted client; tests/test_control_client.py asks one real
server the same things through both clients and expects the same answers
and the same errors, word for word.

The error classes live here so that both clients and the server share them.
"""

from __future__ import annotations

import os
import socket
import time

from ismon.wire.ampbox import (
    ANSWER,
    ASK,
    COMMAND,
    ERROR,
    ERROR_CODE,
    ERROR_DESCRIPTION,
    BoxReader,
    MalformedBox,
    encode_box,
)

# typing and pathlib cost start-up time; these names serve only annotations.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "ControlError",
    "ControlRefused",
    "ControlUnavailable",
    "call",
    "pause",
    "resume",
    "status",
    "stop",
]

#: The error code the server sends with a L{ControlRefused}.
REFUSED_CODE = b"REFUSED"
#: Seconds one request may take by default, connect to answer.
DEFAULT_TIMEOUT = 10.0

# The tag of our one request: Twisted's first tag on a connection, so both
# clients send the very same bytes.
_TAG = b"1"
_READ_SIZE = 65536


class ControlError(Exception):
    """A control request did not succeed (base class)."""


class ControlRefused(ControlError):
    """
    The watch understood the request and declined it.  Raise it from an
    L{ismon.control.amp.IWatchControl} method; the client sees the same type
    and message.
    """


class ControlUnavailable(ControlError):
    """No watch answered on the control socket (none runs, or it is stuck)."""


def call(
    socket_path: Path | str,
    command: bytes,
    timeout: float = DEFAULT_TIMEOUT,
    arguments: dict[bytes, bytes] | None = None,
) -> dict[bytes, bytes]:
    """
    Send C{command} to the watch listening on C{socket_path} and return the
    answer box (without its C{_answer} tag), all within C{timeout} seconds.

    The texts of the errors are those of L{ismon.control.amp.call}.

    @raise ControlUnavailable: no socket, nobody listening, connection
        closed before the answer (for instance: this user is not allowed),
        or no answer in time.
    @raise ControlRefused: the watch declined.
    @raise ControlError: any other error reported by the watch.
    """
    where = os.fspath(socket_path)
    deadline = time.monotonic() + timeout
    request = encode_box({**(arguments or {}), COMMAND: command, ASK: _TAG})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(where)
        except TimeoutError:
            raise ControlUnavailable(
                f"no watch answered on {where} within {timeout:g} s (connect)"
            ) from None
        except OSError as e:
            why = os.strerror(e.errno) if e.errno else str(e)
            raise ControlUnavailable(f"no watch is listening on {where} ({why})") from None
        return _exchange(sock, where, request, deadline, timeout)


def _exchange(
    sock: socket.socket, where: str, request: bytes, deadline: float, timeout: float
) -> dict[bytes, bytes]:
    def late() -> ControlUnavailable:
        return ControlUnavailable(f"no watch answered on {where} within {timeout:g} s")

    def closed(how: str) -> ControlUnavailable:
        # Twisted names an orderly close ConnectionDone, any other ConnectionLost.
        return ControlUnavailable(
            f"the watch on {where} closed the connection without answering"
            f" (is this user allowed to control it?): {how}"
        )

    try:
        sock.settimeout(max(deadline - time.monotonic(), 1e-3))
        sock.sendall(request)
    except TimeoutError:
        raise late() from None
    except OSError:
        raise closed("ConnectionLost") from None
    reader = BoxReader()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise late()
        sock.settimeout(left)
        try:
            data = sock.recv(_READ_SIZE)
        except TimeoutError:
            raise late() from None
        except OSError:
            raise closed("ConnectionLost") from None
        if not data:
            raise closed("ConnectionDone")
        try:
            boxes = reader.feed(data)
        except MalformedBox as e:
            raise ControlError(f"the watch on {where} sent a malformed answer: {e}") from None
        for box in boxes:
            if box.get(ANSWER) == _TAG:
                del box[ANSWER]
                return box
            if box.get(ERROR) == _TAG:
                raise _error(where, box)
            # Anything else (a request from the server, another tag) is not
            # for us; Twisted's client would not answer it either.


def _error(where: str, box: dict[bytes, bytes]) -> ControlError:
    description = box.get(ERROR_DESCRIPTION, b"").decode("utf-8", "replace")
    if box.get(ERROR_CODE) == REFUSED_CODE:
        return ControlRefused(description)
    # Twisted reports every code it has no class for as UNKNOWN.
    return ControlError(f"the watch on {where} reported an error: Code<UNKNOWN>: {description}")


def _boolean(where: str, answer: dict[bytes, bytes], key: bytes) -> bool:
    value = answer.get(key)
    if value == b"True":
        return True
    if value == b"False":
        return False
    raise ControlError(f"the watch on {where} sent a malformed answer: {key!r} is {value!r}")


def stop(socket_path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Ask the watch to stop; returns once it has accepted (not exited)."""
    call(socket_path, b"stop", timeout)


def pause(
    socket_path: Path | str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    duration: float | None = None,
    reason: str | None = None,
) -> bool:
    """
    Suspend probing, for C{duration} seconds if given; C{False} if it was
    already suspended.  Arguments not given are not sent, so a watch older
    than them still pauses.  They are encoded as Twisted's C{amp.Float}
    and C{amp.Unicode} encode them.
    """
    arguments: dict[bytes, bytes] = {}
    if duration is not None:
        arguments[b"duration"] = repr(float(duration)).encode("ascii")
    if reason is not None:
        arguments[b"reason"] = reason.encode("utf-8")
    answer = call(socket_path, b"pause", timeout, arguments)
    return _boolean(os.fspath(socket_path), answer, b"changed")


def resume(socket_path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Resume probing ("continue"); C{False} if it was not suspended."""
    return _boolean(os.fspath(socket_path), call(socket_path, b"continue", timeout), b"changed")


def status(socket_path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """The watch's status object."""
    import json  # here: the other requests do without its start-up cost

    answer = call(socket_path, b"status", timeout)
    try:
        decoded = json.loads(answer[b"status"].decode("utf-8"))
    except (KeyError, ValueError, RecursionError) as e:
        # RecursionError: arrays or objects nested past the interpreter's
        # depth (found by the status_document fuzz target's one-hour run).
        raise ControlError(f"the watch on {socket_path} sent a malformed status: {e}") from None
    if not isinstance(decoded, dict):
        raise ControlError(f"the watch on {socket_path} sent a status that is not an object")
    return decoded
