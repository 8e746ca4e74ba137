# -*- test-case-name: tests.test_state,tests.test_kill_after -*-
"""
The lock that says a watch runs.  A live watch holds C{<id>.lock}
C{flock}ed for its whole life; the kernel drops a C{flock} when its process
dies, however it dies, so a watch killed with SIGKILL leaves files behind
but never blocks a restart, and a PID reused by another process is never
taken for the watch.  L{running_pid} is the one answer to "is this watch
running?" (README: Records).

A watch that ends writes C{<id>.last} (L{ismon.state.record}) and only then
removes its pidfile and unlocks; so a free lock with a pidfile left means
the run ended without writing its record.

Standard library only: the control commands answer without loading Twisted.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from pathlib import Path
from types import TracebackType

from ismon.state.files import read_pid, remove_stale_temporaries, replace_file, unlink
from ismon.state.folder import StateDir, StateDirError, validate_watch_id
from ismon.state.record import ended_fields

__all__ = [
    "AlreadyRunning",
    "WatchLock",
    "lock_holder_pid",
    "remove_leftovers",
    "running_or_ended",
    "running_pid",
    "timed_wait",
]


# How long a locker keeps trying when the lock is held.  Besides a live watch,
# the lock may be held for a few microseconds by running_pid (shared) or by
# remove_leftovers / a starting watch (exclusive); a short grace keeps those
# harmless look-ups from making a start fail with "already running".
_LOCK_GRACE = 0.25
_RETRY_PAUSE = 0.01
_MAX_REOPEN = 100


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


def timed_wait(seconds: float) -> None:
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
            timed_wait(_RETRY_PAUSE)
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


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder_pid(path: Path) -> int | None:
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


def _pidfile_pid(state: StateDir, watch_id: str) -> int | None:
    """
    The PID the watch's pidfile names, if that process exists.  No lock is
    taken (L{running_pid} takes it for a moment, which could make a watch
    starting just then fail): a watch removes its pidfile as it ends.
    """
    pid = read_pid(state.pid_path(watch_id))
    return pid if pid is not None and _pid_exists(pid) else None


def _holder_pid(state: StateDir, watch_id: str, *, use_proc: bool = True) -> int | None:
    """
    Best effort: the PID of whoever holds the ID's lock right now.  The
    pidfile is trusted when it names a live process; C{/proc/locks} (which
    also shows a C{--del} or a look-up holding the lock for a moment) only
    when C{use_proc}.
    """
    pid = _pidfile_pid(state, watch_id)
    if pid is not None:
        return pid
    return lock_holder_pid(state.lock_path(watch_id)) if use_proc else None


def _write_pidfile(path: Path, pid: int) -> None:
    replace_file(path, f"{pid}\n".encode("ascii"), kind="pid", sync=False)


def _lock_exclusive(state: StateDir, watch_id: str) -> int:
    """
    Take the ID's lock for ourselves (creating its file), as a starting
    watch and C{--del} do.

    @raise AlreadyRunning: a live watch holds it.
    @raise StateDirError: the lock file cannot be opened.
    """
    path = state.lock_path(watch_id)
    try:
        fd = _lock(path, create=True, shared=False, grace=_LOCK_GRACE)
    except _Held:
        raise AlreadyRunning(watch_id, _holder_pid(state, watch_id)) from None
    except StateDirError:
        raise
    except OSError as e:
        raise StateDirError(e.errno, f"cannot open the lock file {path}: {e.strerror}") from e
    assert fd is not None  # create=True: never "no such file"
    return fd


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
        fd = _lock_exclusive(state, watch_id)
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
                    unlink(sock)
            except FileNotFoundError:
                pass
            _write_pidfile(state.pid_path(watch_id), os.getpid())
        except BaseException:
            os.close(fd)
            lock._fd = None
            raise
        # Temporaries of watches killed while they wrote (README "Records").
        remove_stale_temporaries(state.path)
        return lock

    @property
    def gone(self) -> bool:
        """
        Whether the lock file this process holds no longer has a name: its
        folder (or the file) was deleted, and no one can find this watch
        until L{renew} makes them again.
        """
        fd = self._fd
        if fd is None:
            return False
        try:
            return os.fstat(fd).st_nlink == 0
        except OSError:
            return False

    def renew(self) -> None:
        """
        Make the records again after the folder (or the lock file) was
        deleted under a live watch: the folder, the lock file, locked anew,
        and the pidfile.  The old lock goes only once the new one is held.

        @raise AlreadyRunning: another watch took the ID meanwhile.
        @raise StateDirError: the folder cannot be made or used.
        """
        state = StateDir.open(self.state.path)
        fd = _lock_exclusive(state, self.watch_id)
        try:
            content = f"{self.watch_id}\n".encode("ascii")
            os.ftruncate(fd, 0)
            os.pwrite(fd, content, 0)
            _write_pidfile(state.pid_path(self.watch_id), os.getpid())
        except OSError as e:
            os.close(fd)
            raise StateDirError(e.errno, f"cannot write in {state.path}: {e.strerror}") from e
        old, self._fd = self._fd, fd
        self.state = state
        if old is not None:
            os.close(old)

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
            unlink(self.state.pid_path(self.watch_id))
            try:
                unlink(self.state.socket_path(self.watch_id))
            except StateDirError:
                pass
            unlink(self.state.lock_path(self.watch_id))
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
            timed_wait(_RETRY_PAUSE)
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
    fd = _lock_exclusive(state, watch_id)
    removed: list[Path] = []
    try:
        leftovers = (state.pid_path(watch_id), state.socket_path(watch_id))
        for path in (*leftovers, state.record_path(watch_id)):
            if unlink(path):
                removed.append(path)
        if unlink(lock_file) and had_lock_file:
            removed.append(lock_file)
        # Any watch's temporaries whose writer is dead (they carry no ID).
        removed += remove_stale_temporaries(state.path)
    finally:
        os.close(fd)
    return removed


def running_or_ended(state: StateDir, watch_id: str) -> tuple[int | None, dict[str, object]]:
    """
    The PID of the live watch C{watch_id} and nothing more; or L{None} with
    what is known of how its last run ended
    (L{ismon.state.record.ended_fields}).  A watch that starts while its
    last run's files are read is found running, not taken for a run killed
    without its record: a new start writes its own pidfile, which no
    earlier record names.
    """
    pid = running_pid(state, watch_id)
    if pid is not None:
        return pid, {}
    fields = ended_fields(state, watch_id)
    if fields.get("ended_without_record"):
        pid = running_pid(state, watch_id)
        if pid is not None:
            return pid, {}
    return None, fields
