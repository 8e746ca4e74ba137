# -*- test-case-name: tests.test_last_exit -*-
"""
The record of a watch's last exit, C{<id>.last} (README "Records", "The
last exit"): written atomically as the watch ends, while it still holds its
lock, and read by C{ismon status}, C{ismon metrics} and the exporter.
Standard library only.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ismon.state.files import read_pid, replace_file
from ismon.state.folder import StateDir, validate_watch_id

__all__ = [
    "MAX_RECORD_SIZE",
    "RecordUnreadable",
    "ended_fields",
    "ended_without_record",
    "read_last_exit",
    "read_record",
    "write_last_exit",
]

#: A record is a few hundred bytes; anything much larger is not ours.
MAX_RECORD_SIZE = 64 * 1024


class RecordUnreadable(Exception):
    """The record of a watch's last exit is there but cannot be used; says why."""


def write_last_exit(state: StateDir, watch_id: str, record: dict[str, object]) -> None:
    """
    Write C{record} (a JSON object) as the last exit of C{watch_id},
    atomically: a temporary file in the folder (0600), fsynced, renamed over
    C{<id>.last}.  A reader sees the old record or the new one, never a
    part.  Call it while holding the ID's lock, before releasing it: a
    watch that never held the lock must not replace the record of the
    one that does.

    @raise OSError: the record cannot be written.
    """
    import json

    path = state.record_path(watch_id)
    data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    replace_file(path, data, kind="last", sync=True)
    try:
        folder = os.open(state.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(folder)  # the rename itself survives a crash of the node
    except OSError:
        pass
    finally:
        os.close(folder)


def read_last_exit(state: StateDir, watch_id: str) -> dict[str, object] | None:
    """
    The record of C{watch_id}'s last exit, or L{None} if there is none.

    @raise RecordUnreadable: the file is there but not a record of ours (a
        symbolic link, another owner, too large, not a JSON object with an
        exit code and a time); the message says why, on one line.
    """
    return read_record(state.record_path(watch_id))


def read_record(path: Path) -> dict[str, object] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        why = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be read ({e.strerror})"
        raise RecordUnreadable(f"the record {path} {why}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RecordUnreadable(f"the record {path} is not a regular file")
        if st.st_uid != os.geteuid() and not _root_trusts(st.st_uid, path):
            raise RecordUnreadable(
                f"the record {path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})"
            )
        if st.st_size > MAX_RECORD_SIZE:
            raise RecordUnreadable(
                f"the record {path} is too large ({st.st_size} bytes, at most {MAX_RECORD_SIZE})"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_RECORD_SIZE:
            chunk = os.read(fd, MAX_RECORD_SIZE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise RecordUnreadable(f"the record {path} cannot be read ({e.strerror})") from None
    finally:
        os.close(fd)
    if size > MAX_RECORD_SIZE:
        raise RecordUnreadable(f"the record {path} is too large (over {MAX_RECORD_SIZE} bytes)")
    import json

    try:
        record = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RecordUnreadable(f"the record {path} is not valid JSON") from None
    if (
        not isinstance(record, dict)
        or type(record.get("exit_code")) is not int
        or type(record.get("time")) not in (int, float)
    ):
        raise RecordUnreadable(f"the record {path} is not a last-exit record")
    return record


def _root_trusts(owner: int, path: Path) -> bool:
    """
    Root trusts a record of the user whose folder holds it: that user's
    watches wrote it (L{ismon.state.folder.StateDir.open} with
    C{of_other_user}).
    """
    if os.geteuid() != 0:
        return False
    try:
        return os.stat(path.parent, follow_symlinks=False).st_uid == owner
    except OSError:
        return False


def ended_without_record(state: StateDir, watch_id: str, record: dict[str, object] | None) -> bool:
    """
    Whether the last run of C{watch_id} ended without writing its record
    (killed, or the node lost power), given the C{record} there is: its
    pidfile is still there, and the record is not that run's own.  A watch
    that ends writes its record and then removes its pidfile before it
    unlocks; the loop watchdog's exit (and the last-resort one) write the
    record but leave the pidfile, so a record newer than the pidfile and
    naming its PID is the run's own.  Ask only once L{running_pid} has
    found the lock free.
    """
    pid_path = state.pid_path(validate_watch_id(watch_id))
    try:
        started = os.lstat(pid_path).st_mtime_ns
    except FileNotFoundError:
        return False
    if record is None or record.get("pid") != read_pid(pid_path):
        return True
    try:
        return os.lstat(state.record_path(watch_id)).st_mtime_ns < started
    except FileNotFoundError:
        return True


def ended_fields(state: StateDir, watch_id: str) -> dict[str, object]:
    """
    What is known of how the watch C{watch_id}, not running, ended (README
    "Records"): the JSON fields C{last_exit} (its record, or null) with
    C{ended_without_record} when its last run wrote none, or
    C{last_exit_error} when the record is unreadable; nothing when nothing
    is known.  Ask only once L{ismon.state.lock.running_pid} has found the
    lock free.
    """
    try:
        record = read_last_exit(state, watch_id)
    except RecordUnreadable as e:
        return {"last_exit": None, "last_exit_error": str(e)}
    if ended_without_record(state, watch_id, record):
        return {"last_exit": None, "ended_without_record": True}
    return {} if record is None else {"last_exit": record}
