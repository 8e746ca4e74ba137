# -*- test-case-name: tests.test_state,tests.test_last_exit -*-
"""
Which watch IDs have files in a state folder: live watches, and the records
and leftovers of ended ones (ask L{ismon.state.lock.running_pid} which is
which).  Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ismon.state.folder import MAX_WATCH_ID, StateDir, file_stem, is_watch_id
from ismon.state.record import RecordPending, RecordUnreadable, read_record

__all__ = ["list_watch_ids"]


def _entries(folder: Path) -> Iterator[str]:
    try:
        with os.scandir(folder) as it:
            for entry in it:
                yield entry.name
    except (FileNotFoundError, NotADirectoryError):
        return


def _id_in_lock_file(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = os.read(fd, MAX_WATCH_ID + 2)
    except OSError:
        return None
    finally:
        os.close(fd)
    text = data.decode("ascii", "replace").strip()
    return text if is_watch_id(text) else None


def list_watch_ids(state: StateDir) -> list[str]:
    """
    The IDs that have a lock file, pidfile or last-exit record in the
    folder, sorted: live watches, and the records and leftovers of ended
    ones (ask L{running_pid} which is which).  A long (hashed) ID with
    neither its lock file nor a readable record cannot be named and is not
    listed.
    """
    found: set[str] = set()
    for name in _entries(state.path):
        for suffix in (".lock", ".pid", ".last"):
            if not name.endswith(suffix):
                continue
            stem = name[: -len(suffix)]
            if is_watch_id(stem):
                found.add(stem)
            elif stem.startswith("h-") and suffix != ".pid":
                watch_id = _id_in_file(state.path / name, suffix)
                if watch_id is not None and file_stem(watch_id) == stem:
                    found.add(watch_id)
    return sorted(found)


def _id_in_file(path: Path, suffix: str) -> str | None:
    if suffix == ".lock":
        return _id_in_lock_file(path)
    try:
        record: dict[str, object] | None = read_record(path)
    except RecordPending as e:
        record = e.placeholder
    except RecordUnreadable:
        return None
    watch_id = record.get("watch_id") if record is not None else None
    return watch_id if isinstance(watch_id, str) and is_watch_id(watch_id) else None
