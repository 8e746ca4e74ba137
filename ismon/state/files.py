# -*- test-case-name: tests.test_state,tests.test_last_exit -*-
"""
Small files written and read safely: atomically replaced (a reader sees
the old content or the new, never a part), never through a link.
Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_pid", "replace_file", "unlink"]


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


def replace_file(path: Path, data: bytes, *, kind: str, sync: bool, mode: int = 0o600) -> None:
    """
    Put C{data} at C{path} atomically: a temporary file in the same folder
    (C{mode}, never through a link), optionally fsynced, renamed over
    C{path}.  A reader sees the old content or the new one, never a part.
    """
    # A short temporary name: "<id>.pid" with a 250-byte ID is at NAME_MAX.
    tmp = path.with_name(f".{kind}-{os.getpid()}-{os.urandom(4).hex()}.tmp")
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
