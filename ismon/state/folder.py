# -*- test-case-name: tests.test_state -*-
"""
The state folder of the watches on this machine, and the names in it:
watch ID validation, where the folder is, the checks that make it safe to
use, and the path of each watch's files (README: Records).

Layout of the folder (0700, owned by the user running the watches)::

    <id>.lock   flock()ed by the live watch for its whole life; holds "<id>\\n"
    <id>.pid    the watch's PID and a newline, written atomically after locking
    <id>.sock   the AMP control socket (hashed name when the path is too long)
    <id>.last   the last exit of the watch (JSON, 0600), written as it ends

Who holds a watch's lock is L{ismon.state.lock}; the last-exit record is
L{ismon.state.record}.  Pure standard library: the control commands
answer without loading Twisted.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

__all__ = [
    "MAX_WATCH_ID",
    "InvalidWatchId",
    "StateDir",
    "StateDirError",
    "default_state_dir",
    "file_stem",
    "is_watch_id",
    "validate_watch_id",
]

MAX_WATCH_ID = 255

_WATCH_ID = re.compile(r"[A-Za-z0-9]{1,255}", re.ASCII)

# File names are limited to NAME_MAX (255) bytes: "<id>.lock" fits only for
# IDs of up to 250 bytes.  Longer IDs use "h-<sha256 hex>.lock/.pid" and the
# lock file holds the ID itself so that list_watch_ids can name them.  "-" is
# never part of an ID, so hashed names cannot collide with plain ones.
_NAME_MAX = 255
_LONGEST_SUFFIX = len(".lock")  # ".last" and ".sock" are as long

#: Above this many bytes a socket path is replaced by its hashed form.
SOCKET_PATH_SOFT_LIMIT = 100
#: sun_path holds 108 bytes including the terminating NUL on Linux.
SOCKET_PATH_HARD_LIMIT = 107


class InvalidWatchId(ValueError):
    """A watch ID that is not 1-255 ASCII letters and digits."""


class StateDirError(OSError):
    """The state folder is unusable or unsafe (wrong type, owner or mode)."""


def is_watch_id(text: str) -> bool:
    """Whether C{text} is a valid watch ID: 1-255 ASCII letters and digits."""
    return isinstance(text, str) and _WATCH_ID.fullmatch(text) is not None


def validate_watch_id(text: str) -> str:
    """
    Return C{text} if it is a valid watch ID: 1-255 ASCII letters and digits.

    Called before any path is built from the ID, so no ID can name a file
    outside the state folder.

    @raise InvalidWatchId: otherwise.
    """
    if not is_watch_id(text):
        shown = repr(text) if len(repr(text)) <= 80 else repr(text)[:77] + "..."
        raise InvalidWatchId(
            f"invalid watch ID {shown}: use 1-{MAX_WATCH_ID} ASCII letters and digits"
        )
    return text


def default_state_dir() -> Path:
    """
    Where the watches of this user keep their state.

      - C{$ISMON_STATE_DIR} if set and not empty;
      - C{/run/ismon} for root;
      - C{$XDG_RUNTIME_DIR/ismon} if that variable names a directory we own;
      - C{/tmp/ismon-<uid>} otherwise.

    A watch and the commands that control it must agree on this folder, so
    they must see the same environment (or both set C{ISMON_STATE_DIR}).
    """
    explicit = os.environ.get("ISMON_STATE_DIR")
    if explicit:
        return Path(explicit)
    uid = os.geteuid()
    if uid == 0:
        return Path("/run/ismon")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            st = os.stat(runtime)
        except OSError:
            pass
        else:
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
                return Path(runtime) / "ismon"
    return Path(f"/tmp/ismon-{uid}")


def _sha256_hex(watch_id: str) -> str:
    # Imported here: hashlib maps OpenSSL's libcrypto (~4 MB of RSS), which a
    # control command with a short ID does not need (docs/performance.md).
    import hashlib

    return hashlib.sha256(watch_id.encode("ascii")).hexdigest()


def file_stem(watch_id: str) -> str:
    """The name of the ID's files without their suffix (hashed for long IDs)."""
    if len(watch_id) + _LONGEST_SUFFIX <= _NAME_MAX:
        return watch_id
    return "h-" + _sha256_hex(watch_id)


class StateDir:
    """
    A checked state folder.  Build it with L{StateDir.open}; the plain
    constructor performs no checks.

    A frozen value written out by hand: importing attrs would double the
    start-up time of the control commands (docs/performance.md).
    """

    __slots__ = ("path",)
    path: Path

    def __init__(self, path: Path) -> None:
        object.__setattr__(self, "path", path)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"StateDir is frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"StateDir is frozen: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StateDir):
            return NotImplemented
        return self.path == other.path

    def __hash__(self) -> int:
        return hash((StateDir, self.path))

    def __repr__(self) -> str:
        return f"StateDir(path={self.path!r})"

    @classmethod
    def open(
        cls, path: Path | None = None, create: bool = True, *, of_other_user: bool = False
    ) -> StateDir:
        """
        Check (and with C{create}, make) the state folder.

        The folder must be a real directory (not a symlink) owned by our
        effective uid, and not writable by group or others (anybody could
        have planted files in it).  A folder of ours that is merely readable
        or searchable by others is tightened to 0700.  Missing parents are
        made (C{/run/ismon}, a custom C{$ISMON_STATE_DIR}).

        Without C{create}, a missing folder is no error: the result simply
        holds no watch (every query answers "not running").

        With C{of_other_user}, root may open the folder of another user
        (its control commands: README "Records"), whose records it then
        trusts as well (L{ismon.state.record.read_last_exit}); for anybody
        else, and for a watch, the folder must be its own.

        @param path: the folder; L{default_state_dir} when L{None}.
        @raise StateDirError: the folder is unusable or unsafe.
        """
        where = Path(os.path.abspath(path if path is not None else default_state_dir()))
        created = False
        if create:
            try:
                where.parent.mkdir(parents=True, exist_ok=True)
                os.mkdir(where, 0o700)
                created = True
            except FileExistsError:
                pass
            except OSError as e:
                raise StateDirError(
                    e.errno, f"cannot create the state folder {where}: {e.strerror}"
                ) from e
        try:
            fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                return cls(where)
            raise StateDirError(
                errno.ENOENT, f"the state folder {where} vanished while being made"
            ) from None
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise StateDirError(
                    e.errno,
                    f"the state folder {where} exists but is not a directory"
                    " (or is a symbolic link); remove it or set ISMON_STATE_DIR",
                ) from e
            raise StateDirError(
                e.errno, f"cannot open the state folder {where}: {e.strerror}"
            ) from e
        try:
            _check_folder(fd, where, created=created, of_other_user=of_other_user)
        finally:
            os.close(fd)
        return cls(where)

    def lock_path(self, watch_id: str) -> Path:
        """The file a live watch keeps C{flock}ed."""
        return self.path / (file_stem(validate_watch_id(watch_id)) + ".lock")

    def pid_path(self, watch_id: str) -> Path:
        """The pidfile of the watch."""
        return self.path / (file_stem(validate_watch_id(watch_id)) + ".pid")

    def record_path(self, watch_id: str) -> Path:
        """The record of the watch's last exit (L{write_last_exit})."""
        return self.path / (file_stem(validate_watch_id(watch_id)) + ".last")

    def socket_path(self, watch_id: str) -> Path:
        """
        The control socket.  C{<id>.sock}, or C{s-<sha256(id)[:32]>.sock}
        when the former would exceed L{SOCKET_PATH_SOFT_LIMIT} bytes (AF_UNIX
        addresses are limited to 107 bytes); the name is a pure function of
        the folder and the ID, so clients find it without asking.

        @raise StateDirError: even the hashed path is too long (a very long
        state folder path).
        """
        plain = self.path / (validate_watch_id(watch_id) + ".sock")
        if len(os.fsencode(plain)) <= SOCKET_PATH_SOFT_LIMIT:
            return plain
        hashed = self.path / f"s-{_sha256_hex(watch_id)[:32]}.sock"
        if len(os.fsencode(hashed)) > SOCKET_PATH_HARD_LIMIT:
            raise StateDirError(
                errno.ENAMETOOLONG,
                f"the state folder path {self.path} is too long for a UNIX socket"
                f" (at most {SOCKET_PATH_HARD_LIMIT - 40} bytes); set ISMON_STATE_DIR",
            )
        return hashed


def _check_folder(
    fd: int, where: Path, *, created: bool = False, of_other_user: bool = False
) -> None:
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(errno.ENOTDIR, f"the state folder {where} is not a directory")
    uid = os.geteuid()
    if st.st_uid != uid and not (uid == 0 and of_other_user):
        raise StateDirError(
            errno.EPERM,
            f"the state folder {where} belongs to uid {st.st_uid}, not to us (uid {uid});"
            " refusing to use it",
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise StateDirError(
            errno.EPERM,
            f"the state folder {where} is writable by group or others (mode {mode:04o});"
            f" refusing to use it: check its content, then chmod 700 {where}",
        )
    # Only a folder we have just made is set to 0700 (the umask may have
    # cut it); an existing one is used as it is: `--state-dir /run` must not
    # change /run for every other daemon.
    if created and mode != 0o700:
        try:
            os.fchmod(fd, 0o700)
        except OSError as e:
            raise StateDirError(
                e.errno, f"cannot make the state folder {where} private: {e.strerror}"
            ) from e
