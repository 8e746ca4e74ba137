# -*- test-case-name: tests.test_state,tests.test_last_exit -*-
"""
The state folder of the watches on this machine: watch ID validation, the
per-ID lock that dies with its process, the pidfile and the path of the
control socket (README: Records).

Layout of the folder (0700, owned by the user running the watches)::

    <id>.lock   flock()ed by the live watch for its whole life; holds "<id>\\n"
    <id>.pid    the watch's PID and a newline, written atomically after locking
    <id>.sock   the AMP control socket (hashed name when the path is too long)
    <id>.last   the last exit of the watch (JSON, 0600), written as it ends

The lock, not the files, says whether a watch is alive: the kernel drops a
C{flock} when its process dies, however it dies, so a watch killed with
SIGKILL leaves files behind but never blocks a restart.  A watch that ends
writes C{<id>.last} and only then removes its pidfile and unlocks; so a free
lock with a pidfile left means the run ended without writing its record
(README: Records, "The last exit").

Pure standard library: no Twisted here, so the command line can answer
C{--disp} / C{--del} without loading the reactor.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

__all__ = [
    "AlreadyRunning",
    "InvalidWatchId",
    "RecordUnreadable",
    "StateDir",
    "StateDirError",
    "WatchLock",
    "default_state_dir",
    "ended_without_record",
    "exit_meaning",
    "list_watch_ids",
    "pidfile_pid",
    "read_last_exit",
    "remove_leftovers",
    "running_pid",
    "validate_watch_id",
    "write_last_exit",
]

#: Longest watch ID, in bytes (README: Running a watch).  IDs are ASCII so bytes == characters.
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

# How long a locker keeps trying when the lock is held.  Besides a live watch,
# the lock may be held for a few microseconds by running_pid (shared) or by
# remove_leftovers / a starting watch (exclusive); a short grace keeps those
# harmless look-ups from making a start fail with "already running".
_LOCK_GRACE = 0.25
_RETRY_PAUSE = 0.01
_MAX_REOPEN = 100


class InvalidWatchId(ValueError):
    """A watch ID that is not 1-255 ASCII letters and digits."""


class StateDirError(OSError):
    """The state folder is unusable or unsafe (wrong type, owner or mode)."""


class AlreadyRunning(Exception):
    """
    A live watch holds the lock of this ID.

    @ivar watch_id: the ID.
    @ivar pid: the PID of the live watch, or L{None} when it cannot be read.
    """

    def __init__(self, watch_id: str, pid: int | None) -> None:
        where = f" (PID {pid})" if pid is not None else ""
        super().__init__(f"watch {watch_id!r} is already running{where}")
        self.watch_id = watch_id
        self.pid = pid


def validate_watch_id(text: str) -> str:
    """
    Return C{text} if it is a valid watch ID: 1-255 ASCII letters and digits.

    Called before any path is built from the ID, so no ID can name a file
    outside the state folder.

    @raise InvalidWatchId: otherwise.
    """
    if not isinstance(text, str) or _WATCH_ID.fullmatch(text) is None:
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


def _file_stem(watch_id: str) -> str:
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
        trusts as well (L{read_last_exit}); for anybody else, and for a
        watch, the folder must be its own.

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
        return self.path / (_file_stem(validate_watch_id(watch_id)) + ".lock")

    def pid_path(self, watch_id: str) -> Path:
        """The pidfile of the watch."""
        return self.path / (_file_stem(validate_watch_id(watch_id)) + ".pid")

    def record_path(self, watch_id: str) -> Path:
        """The record of the watch's last exit (L{write_last_exit})."""
        return self.path / (_file_stem(validate_watch_id(watch_id)) + ".last")

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


def _pause(seconds: float) -> None:
    # Not time.sleep: under libfaketime with a real monotonic clock (how the
    # clock-step tests run) clock_nanosleep fails with EINVAL; a timed lock
    # wait does not.  Imported here: only a contended lock needs it, and the
    # control commands count every millisecond of start-up.
    import threading

    threading.Event().wait(seconds)


class _Held(Exception):
    """The lock is held by somebody else."""


def _lock(path: Path, *, create: bool, shared: bool, grace: float) -> int | None:
    """
    Open C{path} and C{flock} it without blocking, trying again for up to
    C{grace} seconds while somebody else holds it.

    Returns the locked descriptor, or L{None} if the file does not exist and
    C{create} is false.  Raises L{_Held} when the grace runs out.

    Deleting a lock file races with somebody who opened it just before: they
    would then lock an inode that no longer has a name while a third party
    creates and locks a fresh file, and two watches would run.  So every
    locker checks, once it holds the lock, that the path still names the
    inode it locked, and starts over otherwise.  With that check a lock file
    may be unlinked by whoever holds it exclusively, which is what
    L{WatchLock.release} and L{remove_leftovers} do.
    """
    deadline = time.monotonic() + grace
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= os.O_RDONLY if shared else os.O_RDWR
    if create:
        flags |= os.O_CREAT
    operation = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    for _ in range(_MAX_REOPEN):
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise _Held() from None
            _pause(_RETRY_PAUSE)
            continue
        except BaseException:
            os.close(fd)
            raise
        try:
            named = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            named = None
        except BaseException:
            os.close(fd)
            raise
        mine = os.fstat(fd)
        if named is not None and (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        # Unlinked or replaced while we were getting the lock: start over.
        os.close(fd)
    raise StateDirError(errno.EAGAIN, f"the lock file {path} keeps changing; giving up")


def _read_pid(path: Path) -> int | None:
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


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_locks_holder(path: Path) -> int | None:
    """The PID /proc/locks gives for a FLOCK on C{path}'s inode (Linux)."""
    try:
        st = os.stat(path, follow_symlinks=False)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters
        # have "->" as an extra second field; we never block, so skip them).
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
            try:
                pid = int(fields[4])
            except ValueError:
                continue
            if pid > 0:
                return pid
    return None


def pidfile_pid(state: StateDir, watch_id: str) -> int | None:
    """
    The PID the watch's pidfile names, if that process exists.  No lock is
    taken (L{running_pid} takes it for a moment, which could make a watch
    starting just then fail): a watch removes its pidfile as it ends.
    """
    pid = _read_pid(state.pid_path(watch_id))
    return pid if pid is not None and _pid_exists(pid) else None


def _holder_pid(state: StateDir, watch_id: str, *, use_proc: bool = True) -> int | None:
    """
    Best effort: the PID of whoever holds the ID's lock right now.  The
    pidfile is trusted when it names a live process; C{/proc/locks} (which
    also shows a C{--del} or a look-up holding the lock for a moment) only
    when C{use_proc}.
    """
    pid = pidfile_pid(state, watch_id)
    if pid is not None:
        return pid
    return _proc_locks_holder(state.lock_path(watch_id)) if use_proc else None


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _write_pidfile(path: Path, pid: int) -> None:
    _replace_file(path, f"{pid}\n".encode("ascii"), kind="pid", sync=False)


def _replace_file(path: Path, data: bytes, *, kind: str, sync: bool, mode: int = 0o600) -> None:
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
        _unlink(tmp)
        raise


class WatchLock:
    """
    The exclusive right of this process to run one watch ID.

    Take it with L{WatchLock.acquire}; give it back with L{release} (or a
    C{with} block).  If the process dies without releasing, the kernel
    releases the lock; the files left behind are harmless and are replaced
    by the next start.
    """

    def __init__(self, state: StateDir, watch_id: str, fd: int) -> None:
        self.state = state
        self.watch_id = watch_id
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state: StateDir, watch_id: str) -> WatchLock:
        """
        Lock C{<id>.lock} (C{flock(LOCK_EX | LOCK_NB)}, descriptor O_CLOEXEC
        so children that exec do not inherit it), then write the pidfile
        atomically and clear a stale control socket.

        @raise InvalidWatchId: C{watch_id} is invalid.
        @raise AlreadyRunning: a live watch holds the ID.
        @raise StateDirError: the state folder is unusable.
        """
        watch_id = validate_watch_id(watch_id)
        path = state.lock_path(watch_id)
        try:
            fd = _lock(path, create=True, shared=False, grace=_LOCK_GRACE)
        except _Held:
            raise AlreadyRunning(watch_id, _holder_pid(state, watch_id)) from None
        except StateDirError:
            raise
        except OSError as e:
            raise StateDirError(e.errno, f"cannot open the lock file {path}: {e.strerror}") from e
        assert fd is not None
        lock = cls(state, watch_id, fd)
        try:
            content = f"{watch_id}\n".encode("ascii")
            os.ftruncate(fd, 0)
            os.pwrite(fd, content, 0)
            # We hold the lock: whatever socket is there was left by a dead
            # watch and would make bind() fail with EADDRINUSE.
            sock = state.socket_path(watch_id)
            try:
                if not stat.S_ISDIR(os.lstat(sock).st_mode):
                    _unlink(sock)
            except FileNotFoundError:
                pass
            _write_pidfile(state.pid_path(watch_id), os.getpid())
        except BaseException:
            os.close(fd)
            lock._fd = None
            raise
        return lock

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """
        Remove the pidfile, the control socket and the lock file, then
        unlock.  Idempotent.

        The files are removed while we still hold the lock, so no new watch
        can have written its own files yet; a starter that opened the lock
        file meanwhile notices the unlinked inode and starts over (see
        L{_lock}).

        Close the control port first and call this only once its
        C{stopListening()} Deferred has fired: Twisted unlinks the socket
        itself when the port has closed (one reactor turn later) and logs a
        critical FileNotFoundError if the file is already gone - or, if the
        lock was already released, may unlink the socket of the next watch.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlink(self.state.pid_path(self.watch_id))
            try:
                _unlink(self.state.socket_path(self.watch_id))
            except StateDirError:
                pass
            _unlink(self.state.lock_path(self.watch_id))
        finally:
            os.close(fd)

    def __enter__(self) -> WatchLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<WatchLock {self.watch_id!r} in {self.state.path} held={self.held}>"


def running_pid(state: StateDir, watch_id: str) -> int | None:
    """
    The PID of the live watch C{watch_id}, or L{None} if none runs.

    Alive means the lock is held: we try a shared non-blocking C{flock} and
    drop it at once.  The PID comes from the pidfile (checked against the
    process table), or from C{/proc/locks} while a starting watch has not
    written its pidfile yet.

    @raise StateDirError: the lock is held but no PID can be found at all.
    """
    watch_id = validate_watch_id(watch_id)
    path = state.lock_path(watch_id)
    deadline = time.monotonic() + 2 * _LOCK_GRACE
    while True:
        try:
            fd = _lock(path, create=False, shared=True, grace=0.0)
        except _Held:
            late = time.monotonic() >= deadline - _LOCK_GRACE
            pid = _holder_pid(state, watch_id, use_proc=late)
            if pid is not None:
                return pid
            if time.monotonic() >= deadline:
                raise StateDirError(
                    errno.ESRCH,
                    f"watch {watch_id!r} holds its lock {path} but its PID is unknown",
                ) from None
            _pause(_RETRY_PAUSE)
            continue
        except StateDirError:
            raise
        except OSError as e:
            raise StateDirError(e.errno, f"cannot read the lock file {path}: {e.strerror}") from e
        if fd is not None:
            os.close(fd)
        return None


def remove_leftovers(state: StateDir, watch_id: str) -> list[Path]:
    """
    Remove the files a dead watch left behind, and the record of its last
    exit (C{--del}).

    Takes the ID's lock first, so a live watch is never touched and no
    watch can start while the files go.

    @return: the files removed (an empty list when there were none).
    @raise AlreadyRunning: the watch is alive.
    """
    watch_id = validate_watch_id(watch_id)
    if not state.path.is_dir():
        return []
    lock_file = state.lock_path(watch_id)
    had_lock_file = os.path.lexists(lock_file)
    try:
        fd = _lock(lock_file, create=True, shared=False, grace=_LOCK_GRACE)
    except _Held:
        raise AlreadyRunning(watch_id, _holder_pid(state, watch_id)) from None
    except StateDirError:
        raise
    except OSError as e:
        raise StateDirError(e.errno, f"cannot open the lock file {lock_file}: {e.strerror}") from e
    assert fd is not None
    removed: list[Path] = []
    try:
        leftovers = (state.pid_path(watch_id), state.socket_path(watch_id))
        for path in (*leftovers, state.record_path(watch_id)):
            if _unlink(path):
                removed.append(path)
        if _unlink(lock_file) and had_lock_file:
            removed.append(lock_file)
    finally:
        os.close(fd)
    return removed


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
    return text if _WATCH_ID.fullmatch(text) else None


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
            if _WATCH_ID.fullmatch(stem):
                found.add(stem)
            elif stem.startswith("h-") and suffix != ".pid":
                watch_id = _id_in_file(state.path / name, suffix)
                if watch_id is not None and _file_stem(watch_id) == stem:
                    found.add(watch_id)
    return sorted(found)


def _id_in_file(path: Path, suffix: str) -> str | None:
    if suffix == ".lock":
        return _id_in_lock_file(path)
    try:
        record = _read_record(path)
    except RecordUnreadable:
        return None
    watch_id = record.get("watch_id") if record is not None else None
    return watch_id if isinstance(watch_id, str) and _WATCH_ID.fullmatch(watch_id) else None


# -- the last exit (README "Records", "The last exit") ------------------------

#: A record is a few hundred bytes; anything much larger is not ours.
MAX_RECORD_SIZE = 64 * 1024

_MEANINGS = {
    0: "stopped on request",
    1: "the server failed",
    2: "invalid parameter",
    3: "the ID is already in use",
    4: "system error",
    5: "the watch did not end",
}


def exit_meaning(code: int) -> str:
    """What an exit code says (README "Exit codes"), in a few words."""
    return _MEANINGS.get(code, f"exit status {code}")


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
    _replace_file(path, data, kind="last", sync=True)
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
    return _read_record(state.record_path(watch_id))


def _read_record(path: Path) -> dict[str, object] | None:
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
    watches wrote it (L{StateDir.open} with C{of_other_user}).
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
    if record is None or record.get("pid") != _read_pid(pid_path):
        return True
    try:
        return os.lstat(state.record_path(watch_id)).st_mtime_ns < started
    except FileNotFoundError:
        return True
