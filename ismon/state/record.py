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

from ismon.state.files import read_pid, replace_file, temporary_name, unlink
from ismon.state.folder import StateDir, validate_watch_id

__all__ = [
    "MAX_RECORD_SIZE",
    "PreparedRecord",
    "RecordPending",
    "RecordUnreadable",
    "ended_fields",
    "ended_without_record",
    "prepare_record",
    "read_last_exit",
    "read_record",
    "write_last_exit",
]

#: A record is a few hundred bytes; anything much larger is not ours.
MAX_RECORD_SIZE = 64 * 1024


#: Bytes kept ready for the record a watch writes as it ends: a record is a
#: few hundred bytes (the last failure's line is at most 400).
RESERVED_RECORD_SIZE = 16 * 1024


class RecordUnreadable(Exception):
    """The record of a watch's last exit is there but cannot be used; says why."""


class RecordPending(RecordUnreadable):
    """
    The file holds the placeholder a run writes as it starts ("running, pid
    N", L{prepare_record}), not yet the record of its exit: with the lock
    free, that run ended without writing its record.
    """

    def __init__(self, text: str, placeholder: dict[str, object]) -> None:
        super().__init__(text)
        self.placeholder = placeholder


class PreparedRecord:
    """
    The record of a run's last exit, made ready when the run starts
    (L{prepare_record}): C{<id>.last} holds the run's placeholder, and a
    temporary file of L{RESERVED_RECORD_SIZE} bytes is reserved and kept
    open beside it.  The record is written into that file and renamed over
    the placeholder (L{write}), so writing it needs no new descriptor and
    no new space: a watch out of descriptors, or whose folder filled up,
    still leaves its record.  A folder made read-only or deleted cannot take
    the rename; the placeholder then stays, and C{ismon status} says that
    the record could not be written.
    """

    def __init__(self, state: StateDir, watch_id: str, fd: int | None, tmp: Path) -> None:
        self._state = state
        self._watch_id = watch_id
        self._fd = fd
        self._tmp = tmp

    def write(self, record: dict[str, object]) -> None:
        """
        Write C{record} as the last exit (once; a later call writes it the
        ordinary way, L{write_last_exit}).

        @raise OSError: it could not be written; the message names the file.
        """
        import json

        data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        path = self._state.record_path(self._watch_id)
        fd, self._fd = self._fd, None
        if fd is None or len(data) > RESERVED_RECORD_SIZE:
            _write_record(self._state, path, data)
            return
        try:
            view = memoryview(data)
            at = 0
            while at < len(data):
                at += os.pwrite(fd, view[at:], at)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        except OSError:
            # The reserved file failed (an I/O error): the ordinary way.
            os.close(fd)
            _discard(self._tmp)
            _write_record(self._state, path, data)
            return
        os.close(fd)
        try:
            os.replace(self._tmp, path)
        except OSError as e:
            _discard(self._tmp)
            raise OSError(e.errno, f"{path}: {e.strerror}") from None
        _sync_folder(self._state)

    def discard(self) -> None:
        """Give the reserved file back (a start that is refused)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            _discard(self._tmp)


def prepare_record(state: StateDir, watch_id: str, started: float) -> PreparedRecord:
    """
    As a run starts, while it holds the ID's lock: write its placeholder
    C{<id>.last} ("running, pid N", the previous record inside it) and
    reserve the file its record will be written into (L{PreparedRecord}).
    A folder that cannot take them (full, read-only) refuses the start.

    @raise OSError: they cannot be written; the message names the file.
    """
    import json

    path = state.record_path(watch_id)
    try:
        previous: dict[str, object] | None = read_record(path)
    except RecordPending as e:
        previous = _dict_or_none(e.placeholder.get("previous"))
    except RecordUnreadable:
        previous = None
    placeholder = {
        "watch_id": watch_id,
        "pid": os.getpid(),
        "running": True,
        "started": started,
        "previous": previous,
    }
    data = (json.dumps(placeholder, sort_keys=True) + "\n").encode("utf-8")
    try:
        replace_file(path, data, kind="last", sync=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
    tmp = temporary_name(path, "last")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as e:
        raise OSError(e.errno, f"cannot reserve {tmp}: {e.strerror}") from None
    try:
        # Written, not fallocate()d: every file system takes it (a
        # copy-on-write one still needs new blocks for the record itself).
        zeros = memoryview(bytes(RESERVED_RECORD_SIZE))
        while zeros:
            zeros = zeros[os.write(fd, zeros) :]
    except OSError as e:
        os.close(fd)
        _discard(tmp)
        raise OSError(e.errno, f"cannot reserve {tmp}: {e.strerror}") from None
    return PreparedRecord(state, watch_id, fd, tmp)


def _dict_or_none(value: object) -> dict[str, object] | None:
    return value if isinstance(value, dict) else None


def _discard(path: Path) -> None:
    try:
        unlink(path)
    except OSError:
        pass


def _sync_folder(state: StateDir) -> None:
    """Make a rename in the folder survive a crash of the node (best effort)."""
    try:
        folder = os.open(state.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def _write_record(state: StateDir, path: Path, data: bytes) -> None:
    try:
        replace_file(path, data, kind="last", sync=True)
    except OSError as e:
        raise OSError(e.errno, f"{path}: {e.strerror}") from None
    _sync_folder(state)


def write_last_exit(state: StateDir, watch_id: str, record: dict[str, object]) -> None:
    """
    Write C{record} (a JSON object) as the last exit of C{watch_id},
    atomically: a temporary file in the folder (0600), fsynced, renamed over
    C{<id>.last}.  A reader sees the old record or the new one, never a
    part.  Call it while holding the ID's lock, before releasing it: a
    watch that never held the lock must not replace the record of the
    one that does.  A running watch writes through its L{PreparedRecord}.

    @raise OSError: the record cannot be written.
    """
    import json

    path = state.record_path(watch_id)
    data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    _write_record(state, path, data)


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
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: arrays or objects nested past the interpreter's
        # depth, which json raises instead of a ValueError.
        raise RecordUnreadable(f"the record {path} is not valid JSON") from None
    if (
        isinstance(record, dict)
        and record.get("running") is True
        and type(record.get("pid")) is int
    ):
        raise RecordPending(f"the record {path} is a run's placeholder", record)
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
    except RecordPending as e:
        return _pending_fields(state, watch_id, e.placeholder)
    except RecordUnreadable as e:
        return {"last_exit": None, "last_exit_error": str(e)}
    if ended_without_record(state, watch_id, record):
        return {"last_exit": None, "ended_without_record": True}
    return {} if record is None else {"last_exit": record}


def _pending_fields(
    state: StateDir, watch_id: str, placeholder: dict[str, object]
) -> dict[str, object]:
    """
    What a run's placeholder, found with the lock free, says of its end.
    The run that wrote it ended without replacing it by its record: it
    could not write it (the folder full, read-only), or it was killed.  A
    run that could not write its record still removed its pidfile, unless
    the folder is read-only; a killed one removed nothing.
    """
    pid = placeholder.get("pid")
    pidfile = read_pid(state.pid_path(watch_id))
    if pidfile is not None and pidfile != pid:
        # A later start wrote its pidfile and died before its placeholder.
        return {"last_exit": None, "ended_without_record": True}
    if pidfile is None:
        why = f"its run (PID {pid}) could not write it; that run's log says why"
    elif _read_only(state):
        why = f"the state folder {state.path} is read-only"
    else:
        return {"last_exit": None, "ended_without_record": True}
    return {"last_exit": None, "record_not_written": why}


def _read_only(state: StateDir) -> bool:
    try:
        return bool(os.statvfs(state.path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
