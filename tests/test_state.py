"""
Tests for L{ismon.state}: watch ID validation, the state folder's checks,
file names, and the lock that dies with its process.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

import ismon
from ismon.state import folder as state
from ismon.state.folder import (
    InvalidWatchId,
    StateDir,
    StateDirError,
    default_state_dir,
    validate_watch_id,
)
from ismon.state.listing import list_watch_ids
from ismon.state.lock import AlreadyRunning, WatchLock, remove_leftovers, running_pid

_SOURCE_ROOT = str(Path(ismon.__file__).resolve().parent.parent)
_OTHER_UID = 12345


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
    return env


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start C{python -c code args...} with ismon importable."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


_TRY_ACQUIRE = """
    import sys
    from pathlib import Path
    from ismon.state.folder import StateDir
    from ismon.state.lock import AlreadyRunning, WatchLock
    try:
        WatchLock.acquire(StateDir.open(Path(sys.argv[1])), sys.argv[2])
    except AlreadyRunning as e:
        print(e.pid)
        sys.exit(3)
    print("acquired")
"""

_HOLD = """
    import sys, time
    from pathlib import Path
    from ismon.state.folder import StateDir
    from ismon.state.lock import WatchLock
    lock = WatchLock.acquire(StateDir.open(Path(sys.argv[1])), sys.argv[2])
    print("locked", flush=True)
    time.sleep(60)
"""


class _TempFolder:
    """Mixin: a fresh folder under the system temp dir (short paths)."""

    def make_temp(self, test: TestCase) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="ismon-test-"))
        test.addCleanup(shutil.rmtree, folder, True)
        return folder


class ValidateWatchIdTests(TestCase):
    def test_valid(self) -> None:
        for text in ["a", "Z", "0", "httpwatch", "Web01", "x" * 254, "x" * 255, "A1b2C3"]:
            self.assertEqual(validate_watch_id(text), text)

    def test_invalid(self) -> None:
        for text in [
            "",
            "x" * 256,
            "/",
            "a/b",
            "..",
            ".",
            "-",
            "a-b",
            "a_b",
            "a.b",
            "a b",
            " a",
            "a\x00b",
            "a\n",
            "\n",
            "abc\n",
            "é",
            "\uff41",  # fullwidth letter a: alphanumeric, not ASCII
            "\u0663",  # Arabic-Indic digit three
            "a:b",
            "*",
        ]:
            with self.assertRaises(InvalidWatchId, msg=repr(text)):
                validate_watch_id(text)

    def test_not_a_string(self) -> None:
        with self.assertRaises(InvalidWatchId):
            validate_watch_id(b"abc")  # type: ignore[arg-type]

    def test_is_value_error(self) -> None:
        self.assertTrue(issubclass(InvalidWatchId, ValueError))

    def test_message_bounded(self) -> None:
        with self.assertRaises(InvalidWatchId) as caught:
            validate_watch_id("/" * 10000)
        self.assertLess(len(str(caught.exception)), 200)

    def test_checked_before_paths(self) -> None:
        folder = StateDir(Path("/nonexistent"))
        for method in (folder.lock_path, folder.pid_path, folder.socket_path):
            for bad in ["../etc/passwd", "a/b", "", "x" * 256]:
                with self.assertRaises(InvalidWatchId):
                    method(bad)
        for function in (running_pid, remove_leftovers):
            with self.assertRaises(InvalidWatchId):
                function(folder, "../x")
        with self.assertRaises(InvalidWatchId):
            WatchLock.acquire(folder, "../x")


class DefaultStateDirTests(TestCase, _TempFolder):
    def setUp(self) -> None:
        saved = {k: os.environ.get(k) for k in ("ISMON_STATE_DIR", "XDG_RUNTIME_DIR")}

        def restore() -> None:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

        self.addCleanup(restore)
        for key in saved:
            os.environ.pop(key, None)

    def test_explicit(self) -> None:
        os.environ["ISMON_STATE_DIR"] = "/somewhere/else"
        self.patch(os, "geteuid", lambda: 0)
        self.assertEqual(default_state_dir(), Path("/somewhere/else"))

    def test_empty_explicit_ignored(self) -> None:
        os.environ["ISMON_STATE_DIR"] = ""
        self.patch(os, "geteuid", lambda: 0)
        self.assertEqual(default_state_dir(), Path("/run/ismon"))

    def test_root(self) -> None:
        os.environ["XDG_RUNTIME_DIR"] = str(self.make_temp(self))
        self.patch(os, "geteuid", lambda: 0)
        self.assertEqual(default_state_dir(), Path("/run/ismon"))

    def test_xdg_owned(self) -> None:
        runtime = self.make_temp(self)
        os.chown(runtime, _OTHER_UID, -1)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        self.patch(os, "geteuid", lambda: _OTHER_UID)
        self.assertEqual(default_state_dir(), runtime / "ismon")

    def test_xdg_not_owned(self) -> None:
        os.environ["XDG_RUNTIME_DIR"] = str(self.make_temp(self))  # owned by root
        self.patch(os, "geteuid", lambda: _OTHER_UID)
        self.assertEqual(default_state_dir(), Path(f"/tmp/ismon-{_OTHER_UID}"))

    def test_xdg_missing_or_relative(self) -> None:
        self.patch(os, "geteuid", lambda: _OTHER_UID)
        for value in ["/nonexistent/run", "relative/run"]:
            os.environ["XDG_RUNTIME_DIR"] = value
            self.assertEqual(default_state_dir(), Path(f"/tmp/ismon-{_OTHER_UID}"))

    def test_no_xdg(self) -> None:
        self.patch(os, "geteuid", lambda: _OTHER_UID)
        self.assertEqual(default_state_dir(), Path(f"/tmp/ismon-{_OTHER_UID}"))


class StateDirOpenTests(TestCase, _TempFolder):
    def setUp(self) -> None:
        self.base = self.make_temp(self)

    def mode(self, path: Path) -> int:
        return stat.S_IMODE(os.lstat(path).st_mode)

    def test_creates_private(self) -> None:
        where = self.base / "a" / "b" / "state"
        folder = StateDir.open(where)
        self.assertEqual(folder.path, where)
        self.assertEqual(self.mode(where), 0o700)
        self.assertEqual(os.stat(where).st_uid, os.geteuid())

    def test_creates_private_despite_umask(self) -> None:
        for mask in (0o000, 0o077, 0o777):
            old = os.umask(mask)
            try:
                where = self.base / f"u{mask:o}"
                StateDir.open(where)
            finally:
                os.umask(old)
            self.assertEqual(self.mode(where), 0o700, f"umask {mask:o}")

    def test_default_path(self) -> None:
        where = self.base / "fromenv"
        self.patch(state, "default_state_dir", lambda: where)
        self.assertEqual(StateDir.open().path, where)
        self.assertTrue(where.is_dir())

    def test_relative_made_absolute(self) -> None:
        old = os.getcwd()
        os.chdir(self.base)
        self.addCleanup(os.chdir, old)
        folder = StateDir.open(Path("rel"))
        self.assertTrue(folder.path.is_absolute())
        self.assertEqual(folder.path, self.base.resolve() / "rel")

    def test_existing_ok(self) -> None:
        where = self.base / "s"
        where.mkdir(mode=0o700)
        StateDir.open(where)
        StateDir.open(where)
        self.assertEqual(self.mode(where), 0o700)

    def test_existing_readable_left_alone(self) -> None:
        """
        An existing folder nobody else can write to is used as it is: even a
        read-only command must not chmod, say, /run given by mistake.
        """
        where = self.base / "s"
        where.mkdir()
        for mode in (0o755, 0o750, 0o711, 0o500):
            os.chmod(where, mode)
            StateDir.open(where)
            StateDir.open(where, create=False)
            self.assertEqual(self.mode(where), mode, f"{mode:o}")

    def test_writable_refused(self) -> None:
        where = self.base / "s"
        where.mkdir()
        for loose in (0o777, 0o770, 0o702, 0o720, 0o1777):
            os.chmod(where, loose)
            with self.assertRaises(StateDirError, msg=f"{loose:o}") as caught:
                StateDir.open(where)
            self.assertIn("writable by group or others", str(caught.exception))
            self.assertEqual(self.mode(where), loose, "must not be changed")

    def test_other_owner_refused(self) -> None:
        where = self.base / "s"
        where.mkdir(mode=0o700)
        for mode in (0o700, 0o777, 0o755):
            os.chmod(where, mode)
            os.chown(where, _OTHER_UID, -1)
            for create in (True, False):
                with self.assertRaises(StateDirError) as caught:
                    StateDir.open(where, create=create)
                self.assertIn(f"belongs to uid {_OTHER_UID}", str(caught.exception))
            self.assertEqual(self.mode(where), mode)
            self.assertEqual(os.stat(where).st_uid, _OTHER_UID)

    def test_not_a_directory(self) -> None:
        where = self.base / "file"
        where.write_text("x")
        for create in (True, False):
            with self.assertRaises(StateDirError) as caught:
                StateDir.open(where, create=create)
            self.assertIn("not a directory", str(caught.exception))

    def test_symlink_refused(self) -> None:
        target = self.base / "real"
        target.mkdir(mode=0o700)
        link = self.base / "link"
        link.symlink_to(target)
        with self.assertRaises(StateDirError):
            StateDir.open(link)

    def test_parent_not_creatable(self) -> None:
        blocker = self.base / "file"
        blocker.write_text("x")
        with self.assertRaises(StateDirError) as caught:
            StateDir.open(blocker / "state")
        self.assertIsInstance(caught.exception, OSError)

    def test_missing_without_create(self) -> None:
        where = self.base / "missing"
        folder = StateDir.open(where, create=False)
        self.assertEqual(folder.path, where)
        self.assertFalse(where.exists())
        self.assertIsNone(running_pid(folder, "web"))
        self.assertEqual(list_watch_ids(folder), [])
        self.assertEqual(remove_leftovers(folder, "web"), [])
        self.assertFalse(where.exists())

    def test_error_is_oserror(self) -> None:
        self.assertTrue(issubclass(StateDirError, OSError))


class PathTests(TestCase, _TempFolder):
    def test_names(self) -> None:
        folder = StateDir(Path("/run/ismon"))
        self.assertEqual(folder.lock_path("web1"), Path("/run/ismon/web1.lock"))
        self.assertEqual(folder.pid_path("web1"), Path("/run/ismon/web1.pid"))
        self.assertEqual(folder.socket_path("web1"), Path("/run/ismon/web1.sock"))

    def test_case_sensitive(self) -> None:
        folder = StateDir(Path("/run/ismon"))
        self.assertNotEqual(folder.lock_path("Web"), folder.lock_path("web"))
        self.assertNotEqual(folder.socket_path("W" * 200), folder.socket_path("w" * 200))

    def test_long_socket_hashed(self) -> None:
        folder = StateDir(Path("/run/ismon"))
        long_id = "a" * 100
        expected = "s-" + hashlib.sha256(long_id.encode()).hexdigest()[:32] + ".sock"
        self.assertEqual(folder.socket_path(long_id), Path("/run/ismon") / expected)
        self.assertEqual(folder.socket_path(long_id), folder.socket_path(long_id))

    def test_socket_threshold(self) -> None:
        folder = StateDir(Path("/run/ismon"))  # 10 bytes + "/" + id + ".sock"
        fits = "a" * (100 - 16)
        self.assertEqual(folder.socket_path(fits).name, fits + ".sock")
        self.assertEqual(len(os.fsencode(folder.socket_path(fits))), 100)
        self.assertTrue(folder.socket_path(fits + "a").name.startswith("s-"))

    def test_socket_paths_fit(self) -> None:
        for base in ["/run/ismon", "/tmp/ismon-65534", "/run/user/1000/ismon", "/" + "d" * 66]:
            folder = StateDir(Path(base))
            for length in range(1, 256):
                path = folder.socket_path("Z" * length)
                self.assertLessEqual(len(os.fsencode(path)), 107, f"{base} {length}")
                self.assertEqual(path.parent, folder.path)

    def test_socket_folder_too_long(self) -> None:
        folder = StateDir(Path("/" + "d" * 70))
        self.assertEqual(folder.socket_path("a").name, "a.sock")
        with self.assertRaises(StateDirError) as caught:
            folder.socket_path("a" * 60)
        self.assertEqual(caught.exception.errno, errno.ENAMETOOLONG)

    def test_socket_bindable(self) -> None:
        base = self.make_temp(self)
        folder = StateDir.open(base / "s")
        for length in (1, 80, 255):
            path = folder.socket_path("Q" * length)
            sock = socket.socket(socket.AF_UNIX)
            self.addCleanup(sock.close)
            sock.bind(os.fspath(path))

    def test_long_id_file_names(self) -> None:
        folder = StateDir(Path("/run/ismon"))
        self.assertEqual(folder.lock_path("x" * 250).name, "x" * 250 + ".lock")
        for long_id in ("x" * 251, "x" * 255):
            digest = hashlib.sha256(long_id.encode()).hexdigest()
            self.assertEqual(folder.lock_path(long_id).name, f"h-{digest}.lock")
            self.assertEqual(folder.pid_path(long_id).name, f"h-{digest}.pid")
        for length in range(1, 256):
            self.assertLessEqual(len(folder.lock_path("y" * length).name), 255)


class LockTests(TestCase, _TempFolder):
    def setUp(self) -> None:
        self.folder = StateDir.open(self.make_temp(self) / "state")

    def acquire(self, watch_id: str = "web") -> WatchLock:
        lock = WatchLock.acquire(self.folder, watch_id)
        self.addCleanup(lock.release)
        return lock

    def hold_in_child(self, watch_id: str = "web") -> subprocess.Popen[str]:
        child = _python(_HOLD, str(self.folder.path), watch_id)

        def reap() -> None:
            if child.poll() is None:
                child.kill()
            child.communicate()

        self.addCleanup(reap)
        assert child.stdout is not None
        line = child.stdout.readline()
        if line != "locked\n":
            _, err = child.communicate(timeout=10)
            self.fail(f"child did not lock: {line!r} {err}")
        return child

    def test_acquire_writes_files(self) -> None:
        lock = self.acquire()
        self.assertTrue(lock.held)
        self.assertEqual(self.folder.pid_path("web").read_text(), f"{os.getpid()}\n")
        lock_file = self.folder.lock_path("web")
        self.assertEqual(stat.S_IMODE(os.stat(lock_file).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.folder.pid_path("web")).st_mode), 0o600)
        self.assertEqual(lock_file.read_text(), "web\n")
        self.assertEqual(sorted(os.listdir(self.folder.path)), ["web.lock", "web.pid"])

    def test_descriptor_not_inherited(self) -> None:
        lock = self.acquire()
        assert lock._fd is not None
        self.assertTrue(fcntl.fcntl(lock._fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)

    def test_second_acquire_same_process(self) -> None:
        self.acquire()
        with self.assertRaises(AlreadyRunning) as caught:
            WatchLock.acquire(self.folder, "web")
        self.assertEqual(caught.exception.pid, os.getpid())
        self.assertEqual(caught.exception.watch_id, "web")
        self.assertIn(str(os.getpid()), str(caught.exception))

    def test_second_acquire_subprocess(self) -> None:
        self.acquire()
        child = _python(_TRY_ACQUIRE, str(self.folder.path), "web")
        out, err = child.communicate(timeout=30)
        self.assertEqual(child.returncode, 3, err)
        self.assertEqual(out.strip(), str(os.getpid()))
        # The loser must not have touched the winner's files.
        self.assertEqual(self.folder.pid_path("web").read_text(), f"{os.getpid()}\n")

    def test_other_ids_independent(self) -> None:
        self.acquire("web")
        self.acquire("mail")
        self.assertEqual(list_watch_ids(self.folder), ["mail", "web"])

    def test_child_holds(self) -> None:
        child = self.hold_in_child()
        with self.assertRaises(AlreadyRunning) as caught:
            WatchLock.acquire(self.folder, "web")
        self.assertEqual(caught.exception.pid, child.pid)
        self.assertEqual(running_pid(self.folder, "web"), child.pid)
        with self.assertRaises(AlreadyRunning) as caught:
            remove_leftovers(self.folder, "web")
        self.assertEqual(caught.exception.pid, child.pid)
        self.assertTrue(self.folder.pid_path("web").exists())
        self.assertTrue(self.folder.lock_path("web").exists())

    def test_sigkill_then_restart_at_once(self) -> None:
        child = self.hold_in_child()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        # Leftovers stay behind ...
        self.assertEqual(self.folder.pid_path("web").read_text(), f"{child.pid}\n")
        self.assertIsNone(running_pid(self.folder, "web"))
        self.assertEqual(list_watch_ids(self.folder), ["web"])
        # ... and do not block a new start: no lock attempt finds the ID
        # held (counted, not timed: a loaded machine can stall any span).
        real_flock = fcntl.flock
        held: list[int] = []

        def flock(fd: int, operation: int) -> None:
            try:
                real_flock(fd, operation)
            except BlockingIOError:
                held.append(fd)
                raise

        self.patch(fcntl, "flock", flock)
        lock = self.acquire()
        self.assertEqual(held, [])
        self.assertEqual(self.folder.pid_path("web").read_text(), f"{os.getpid()}\n")
        self.assertEqual(running_pid(self.folder, "web"), os.getpid())
        lock.release()
        self.assertIsNone(running_pid(self.folder, "web"))

    def test_acquire_clears_stale_socket(self) -> None:
        path = self.folder.socket_path("web")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.fspath(path))
        sock.close()
        self.acquire()
        self.assertFalse(os.path.lexists(path))

    def test_release(self) -> None:
        lock = self.acquire()
        self.folder.socket_path("web").write_text("")  # stands for the socket
        lock.release()
        self.assertFalse(lock.held)
        self.assertEqual(os.listdir(self.folder.path), [])
        lock.release()  # idempotent
        self.assertIsNone(running_pid(self.folder, "web"))
        self.acquire()

    def test_release_after_files_gone(self) -> None:
        lock = self.acquire()
        os.unlink(self.folder.pid_path("web"))
        os.unlink(self.folder.lock_path("web"))
        lock.release()
        self.assertEqual(os.listdir(self.folder.path), [])

    def test_context_manager(self) -> None:
        with WatchLock.acquire(self.folder, "web") as lock:
            self.assertTrue(lock.held)
            self.assertEqual(running_pid(self.folder, "web"), os.getpid())
        self.assertFalse(lock.held)
        self.assertIsNone(running_pid(self.folder, "web"))

    def test_longest_id(self) -> None:
        long_id = "L" * 255
        lock = self.acquire(long_id)
        self.assertEqual(running_pid(self.folder, long_id), os.getpid())
        self.assertEqual(list_watch_ids(self.folder), [long_id])
        with self.assertRaises(AlreadyRunning):
            WatchLock.acquire(self.folder, long_id)
        lock.release()
        self.assertEqual(os.listdir(self.folder.path), [])

    def test_lock_file_replaced_while_locking(self) -> None:
        """
        A starter that locks a lock file which was unlinked (and recreated)
        in the meantime must notice and lock the file that has the name.
        """
        lock_file = self.folder.lock_path("web")
        lock_file.write_text("")
        real_flock = fcntl.flock
        calls = []

        def racing_flock(fd: int, operation: int) -> None:
            if not calls:
                # Another process deletes and recreates the file just after
                # we opened it and before we lock it.
                os.unlink(lock_file)
                lock_file.write_text("")
            calls.append(fd)
            real_flock(fd, operation)

        self.patch(fcntl, "flock", racing_flock)
        lock = self.acquire()
        self.assertGreaterEqual(len(calls), 2)
        assert lock._fd is not None
        mine, named = os.fstat(lock._fd), os.stat(lock_file)
        self.assertEqual((mine.st_dev, mine.st_ino), (named.st_dev, named.st_ino))
        self.patch(fcntl, "flock", real_flock)
        with self.assertRaises(AlreadyRunning):
            WatchLock.acquire(self.folder, "web")

    def test_mutual_exclusion_under_contention(self) -> None:
        """
        Several processes start, run and release the same ID in a loop
        (release unlinks the lock file) while another runs --del and status
        look-ups: never are two holders inside at once.
        """
        worker = """
            import os, sys, time
            from pathlib import Path
            from ismon.state.folder import StateDir
            from ismon.state.lock import AlreadyRunning, WatchLock
            folder = StateDir.open(Path(sys.argv[1]))
            marker = folder.path / "inside"
            deadline = time.monotonic() + 1.5
            wins = 0
            while time.monotonic() < deadline:
                try:
                    lock = WatchLock.acquire(folder, "web")
                except AlreadyRunning:
                    continue
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    print("VIOLATION", flush=True)
                    sys.exit(1)
                os.close(fd)
                wins += 1
                time.sleep(0.001)
                os.unlink(marker)
                lock.release()
            print(wins)
        """
        meddler = """
            import sys, time
            from pathlib import Path
            from ismon.state.folder import StateDir
            from ismon.state.lock import AlreadyRunning, remove_leftovers, running_pid
            folder = StateDir.open(Path(sys.argv[1]))
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                running_pid(folder, "web")
                try:
                    remove_leftovers(folder, "web")
                except AlreadyRunning:
                    pass
        """
        children = [_python(worker, str(self.folder.path)) for _ in range(4)]
        children.append(_python(meddler, str(self.folder.path)))
        results = [child.communicate(timeout=60) for child in children]
        for child, (out, err) in zip(children, results, strict=True):
            self.assertEqual(child.returncode, 0, out + err)
        wins = sum(int(out) for out, _ in results[:-1])
        self.assertGreater(wins, 4)


class RunningPidTests(TestCase, _TempFolder):
    def setUp(self) -> None:
        self.folder = StateDir.open(self.make_temp(self) / "state")

    def test_nothing(self) -> None:
        self.assertIsNone(running_pid(self.folder, "web"))

    def test_stale_files(self) -> None:
        self.folder.lock_path("web").write_text("web\n")
        self.folder.pid_path("web").write_text(f"{os.getpid()}\n")
        self.assertIsNone(running_pid(self.folder, "web"))

    def test_pidfile_only(self) -> None:
        self.folder.pid_path("web").write_text(f"{os.getpid()}\n")
        self.assertIsNone(running_pid(self.folder, "web"))

    def test_held_without_pidfile(self) -> None:
        """A watch that has locked but not yet written its pidfile."""
        lock = WatchLock.acquire(self.folder, "web")
        self.addCleanup(lock.release)
        os.unlink(self.folder.pid_path("web"))
        if not os.path.exists("/proc/locks"):
            raise SkipTest("no /proc/locks")
        self.assertEqual(running_pid(self.folder, "web"), os.getpid())

    def test_held_with_garbage_pidfile(self) -> None:
        lock = WatchLock.acquire(self.folder, "web")
        self.addCleanup(lock.release)
        self.folder.pid_path("web").write_text("garbage\n")
        if not os.path.exists("/proc/locks"):
            raise SkipTest("no /proc/locks")
        self.assertEqual(running_pid(self.folder, "web"), os.getpid())

    def test_probe_does_not_block_start(self) -> None:
        """A look-up holding the lock for a moment does not fail a start."""
        lock_file = self.folder.lock_path("web")
        lock_file.write_text("")
        fd = os.open(lock_file, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        child = _python(_TRY_ACQUIRE, str(self.folder.path), "web")
        time.sleep(0.05)
        os.close(fd)
        out, err = child.communicate(timeout=30)
        self.assertEqual(child.returncode, 0, err)
        self.assertEqual(out, "acquired\n")


class RemoveLeftoversTests(TestCase, _TempFolder):
    def setUp(self) -> None:
        self.folder = StateDir.open(self.make_temp(self) / "state")

    def test_nothing(self) -> None:
        self.assertEqual(remove_leftovers(self.folder, "web"), [])
        self.assertEqual(os.listdir(self.folder.path), [])

    def test_removes_stale(self) -> None:
        paths = [
            self.folder.lock_path("web"),
            self.folder.pid_path("web"),
            self.folder.socket_path("web"),
        ]
        for path in paths:
            path.write_text("stale\n")
        other = self.folder.pid_path("mail")
        other.write_text("1\n")
        removed = remove_leftovers(self.folder, "web")
        self.assertEqual(sorted(removed), sorted(paths))
        self.assertEqual(os.listdir(self.folder.path), ["mail.pid"])

    def test_pidfile_only(self) -> None:
        self.folder.pid_path("web").write_text("99999\n")
        self.assertEqual(remove_leftovers(self.folder, "web"), [self.folder.pid_path("web")])
        self.assertEqual(os.listdir(self.folder.path), [])

    def test_refuses_live(self) -> None:
        lock = WatchLock.acquire(self.folder, "web")
        self.addCleanup(lock.release)
        with self.assertRaises(AlreadyRunning) as caught:
            remove_leftovers(self.folder, "web")
        self.assertEqual(caught.exception.pid, os.getpid())
        self.assertEqual(sorted(os.listdir(self.folder.path)), ["web.lock", "web.pid"])
        self.assertEqual(running_pid(self.folder, "web"), os.getpid())

    def test_then_start(self) -> None:
        self.folder.lock_path("web").write_text("")
        remove_leftovers(self.folder, "web")
        lock = WatchLock.acquire(self.folder, "web")
        self.addCleanup(lock.release)
        self.assertEqual(running_pid(self.folder, "web"), os.getpid())


class ListWatchIdsTests(TestCase, _TempFolder):
    def setUp(self) -> None:
        self.folder = StateDir.open(self.make_temp(self) / "state")

    def test_lists(self) -> None:
        for name in [
            "web.lock",
            "web.pid",
            "mail.pid",
            "Old.lock",
            "s-0123456789abcdef0123456789abcdef.sock",
            "web.sock",
            ".pid-123-abcd.tmp",
            "a-b.lock",
            "notes.txt",
            ".lock",
            "h-deadbeef.lock",
        ]:
            (self.folder.path / name).write_text("")
        self.assertEqual(list_watch_ids(self.folder), ["Old", "mail", "web"])

    def test_hashed_long_id(self) -> None:
        long_id = "Q" * 253
        self.folder.lock_path(long_id).write_text(long_id + "\n")
        # A hashed lock file whose content does not match its name is ignored.
        (self.folder.path / ("h-" + "0" * 64 + ".lock")).write_text(long_id + "\n")
        self.assertEqual(list_watch_ids(self.folder), [long_id])

    def test_empty(self) -> None:
        self.assertEqual(list_watch_ids(self.folder), [])


class ReusedPidTests(TestCase, _TempFolder):
    """
    One answer to "is this watch running?" (L{running_pid}: its lock),
    everywhere it is asked: a pidfile left by a killed watch whose PID now
    belongs to another live process never makes the watch look alive, not
    to C{ismon status}, C{ismon metrics} or the exporter.
    """

    def setUp(self) -> None:
        self.folder = StateDir.open(self.make_temp(self) / "state")
        # A live process that is not the watch, with the killed watch's PID.
        self.stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.addCleanup(self.stranger.wait)
        self.addCleanup(self.stranger.kill)
        self.folder.lock_path("web").write_text("web\n")
        self.folder.pid_path("web").write_text(f"{self.stranger.pid}\n")

    def test_not_running(self) -> None:
        from ismon.state.lock import running_or_ended

        self.assertIsNone(running_pid(self.folder, "web"))
        self.assertEqual(
            running_or_ended(self.folder, "web"),
            (None, {"last_exit": None, "ended_without_record": True}),
        )
        # No running_pid of its own anywhere: the exporter's pidfile guess is gone.
        import ismon.state.lock

        self.assertNotIn("pidfile_pid", ismon.state.lock.__all__)

    def test_metrics_and_the_exporter_agree(self) -> Any:
        """
        The loop watchdog's exit 4 writes the record and leaves the pidfile:
        its record is shown, though the pidfile's PID is alive again.
        """
        from twisted.internet import reactor

        from ismon.metrics.collector import Collector
        from ismon.metrics.render import WatchSnapshot
        from ismon.metrics.snapshots import metric_snapshots
        from ismon.state.record import write_last_exit

        record = {"watch_id": "web", "pid": self.stranger.pid, "exit_code": 4, "time": 1.0}
        write_last_exit(self.folder, "web", record)
        ended = WatchSnapshot("web", None, record)
        self.assertEqual(metric_snapshots(self.folder, timeout=1), [ended])
        collected = Collector(reactor, self.folder.path, 1.0).snapshots()
        return collected.addCallback(self.assertEqual, [ended])
