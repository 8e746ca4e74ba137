# -*- test-case-name: tests.test_state,tests.test_last_exit -*-
"""
Small files written and read safely: atomically replaced (a reader sees
the old content or the new, never a part), never through a link.
Standard library only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["read_pid", "remove_stale_temporaries", "replace_file", "temporary_name", "unlink"]


def read_pid(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = os.read(fd, 64)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        pid = int(data.strip() or b"x")
    except ValueError:
        return None
    return pid if pid > 0 else None


def unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def temporary_name(path: Path, kind: str) -> Path:
    """
    A new temporary file's name beside C{path}: C{.KIND-PID-RANDOM.tmp}.
    The PID says whose it is, so that a temporary left by a killed process
    can be told from one being written (L{remove_stale_temporaries}).
    """
    # A short name: "<id>.pid" with a 250-byte ID is at NAME_MAX.
    return path.with_name(f".{kind}-{os.getpid()}-{os.urandom(4).hex()}.tmp")


_TEMPORARY = re.compile(r"\.(?:last|pid)-([0-9]{1,10})-[0-9a-f]{8}\.tmp")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """
    Remove the temporaries (L{temporary_name}) that processes no longer
    alive left in C{folder}: a watch killed while it wrote its pidfile or
    its record.  Those of live processes (a watch writing, or keeping its
    record ready) stay.

    @return: the files removed.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.fullmatch(name)
        if match is None or _alive(int(match.group(1))):
            continue
        path = folder / name
        try:
            if unlink(path):
                removed.append(path)
        except OSError:
            pass  # a read-only folder: left for a later start
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not ours to judge: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def replace_file(path: Path, data: bytes, *, kind: str, sync: bool, mode: int = 0o600) -> None:
    """
    Put C{data} at C{path} atomically: a temporary file in the same folder
    (C{mode}, never through a link), optionally fsynced, renamed over
    C{path}.  A reader sees the old content or the new one, never a part.
    """
    tmp = temporary_name(path, kind)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            if mode != 0o600:
                os.fchmod(fd, mode)  # not through the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        unlink(tmp)
        raise
