"""
Root controls the watches of another user (README "Records"): root's
control commands accept a state folder that user owns -- C{/run/ismon} of
the Debian package's C{ismon} user -- and trust its records; their
signals reach only that user's processes; a watch started by root still
refuses such a folder, and a third user is still refused.

The same with a real watch of the C{ismon} user under systemd:
C{tests/test_deb.py}.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ismon.control import commands, stop
from ismon.control.recognise import recognise
from ismon.state import folder as state
from ismon.state.record import read_last_exit, write_last_exit
from tests.watchproc import command

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")

OWNER = 65534  # nobody: the watches' user here
THIRD = 1  # daemon: another user, neither root nor the owner


def _as_user(uid: int, action: Callable[[], int]) -> int:
    """C{action}'s result, run in a forked child with uid and gid C{uid}."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            code = action()
        except BaseException as e:
            os.write(2, f"as uid {uid}: {type(e).__name__}: {e}\n".encode())
        finally:
            os.write(write_end, str(code).encode())
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 20)
        text = os.read(read_end, 64).decode() if ready else "timeout"
    finally:
        os.close(read_end)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    assert text.isdigit(), text
    return int(text)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A state folder of uid 65534 (0700) holding the record of an ended watch w1."""
    base = Path(tempfile.mkdtemp(prefix="ismon-root-"))
    where = base / "state"
    where.mkdir(mode=0o700)
    os.chown(where, OWNER, OWNER)
    os.chmod(base, 0o755)

    def leave_a_record() -> int:
        opened = state.StateDir.open(where)
        record = {"exit_code": 1, "time": time.time(), "meaning": "the server failed", "pid": 4242}
        write_last_exit(opened, "w1", {**record, "watch_id": "w1"})
        return 0

    try:
        assert _as_user(OWNER, leave_a_record) == 0
        assert os.stat(where).st_uid == OWNER
        yield where
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _ismon(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ISMON_STATE_DIR"}
    return subprocess.run(
        [*command("ismon"), *argv],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=30,
        check=False,
    )


def test_root_reads_the_records_of_the_folders_owner(folder: Path) -> None:
    shown = _ismon("status", "w1", "--state-dir", str(folder))
    assert shown.returncode == 1, shown
    assert shown.stdout.startswith("w1: not running; last exit 1 (the server failed"), shown
    assert "belongs to" not in shown.stderr
    listed = _ismon("status", "--json", "--state-dir", str(folder))
    assert listed.returncode == 0, listed
    [entry] = json.loads(listed.stdout)
    assert entry["watch_id"] == "w1" and entry["last_exit"]["pid"] == 4242


def test_root_deletes_the_records_of_the_folders_owner(folder: Path) -> None:
    done = _ismon("del", "w1", "--state-dir", str(folder))
    assert done.returncode == 0, done
    assert "removed" in done.stdout
    assert os.listdir(folder) == []
    assert os.stat(folder).st_uid == OWNER  # nothing of root's made or changed


def test_root_writes_the_metrics_textfile_as_root(folder: Path, tmp_path: Path) -> None:
    textfile = tmp_path / "textfile"
    textfile.mkdir(mode=0o755)
    done = _ismon("metrics", "--state-dir", str(folder), "--textfile", str(textfile))
    assert done.returncode == 0, done
    written = textfile / "ismon.prom"
    assert written.stat().st_uid == 0
    assert 'watch="w1"' in written.read_text()


def test_a_watch_started_by_root_still_refuses_the_folder(folder: Path) -> None:
    started = subprocess.run(
        [*command("clp_httpmon"), "w2", "-s", "127.0.0.1", "-n", "9", "--state-dir", str(folder)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert started.returncode == 4, started
    assert f"belongs to uid {OWNER}, not to us (uid 0); refusing to use it" in started.stdout
    assert sorted(os.listdir(folder)) == ["w1.last"]


def test_another_user_is_still_refused(folder: Path) -> None:
    def status() -> int:
        request = recognise("ismon", ["status", "w1", "--state-dir", str(folder)])
        assert request is not None
        return commands.run(request)

    assert _as_user(THIRD, status) == 4
    assert _as_user(OWNER, status) == 1  # the owner reads its own record: not running


def test_only_control_commands_of_root_open_another_users_folder(folder: Path) -> None:
    with pytest.raises(state.StateDirError, match=f"belongs to uid {OWNER}, not to us"):
        state.StateDir.open(folder, create=False)
    opened = state.StateDir.open(folder, create=False, of_other_user=True)
    assert read_last_exit(opened, "w1") is not None  # the owner's record is trusted


def test_root_signals_only_the_folder_owners_processes(folder: Path) -> None:
    """stop --kill-after, in another user's folder, pins no process of root's."""
    opened = state.StateDir.open(folder, create=False, of_other_user=True)
    assert not stop._runs_as_owner(opened, os.getpid())
    assert stop._WatchProcess.pin(opened, "w1", os.getpid()) is None
