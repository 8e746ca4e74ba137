"""
The state folder failing under a live watch, and the records it must
still leave (issue 22; README "Records"):

  - full (a 1 MiB tmpfs filled while the watch runs): the record is still
    written, into the file reserved at start; a start there is refused;
  - made read-only: the watch probes on and exits as it would, one line
    (message 102) says which record could not be written and why, and
    `ismon status` says the record could not be written (not "killed?");
    a start there is refused;
  - deleted: the watch makes its records again (message 103, once) and
    `ismon status` finds it;
  - SIGKILLed around its own exit: never a torn or empty record, never a
    blocked next start, no temporaries piling up (a start and --del clean
    those of dead processes);
  - a big folder (500 ended watches, 20 stale pidfiles): `ismon status`
    and `ismon metrics` answer within 2 s.

The tmpfs and read-only mounts live in a mount namespace of the test's own
(`unshare -m`): the watch and the commands run in it (`nsenter`), the test
reads the folder through /proc/PID/root.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import FreshServers, unavailable
from tests.netns import no_traceback, started
from tests.servers import Nginx, free_port
from tests.watchproc import PATIENCE, Processes, command, message, watch_argv

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"
CMD = "clp_httpmon"
TEARDOWN = 3.0


@pytest.fixture
def http_server(fresh_servers: FreshServers) -> Nginx:
    """A private nginx (plain HTTP): the tests stall it."""
    return fresh_servers.nginx(tls=False)


class MountNamespace:
    """
    A private mount namespace, held by a sleeping process of its own: what
    is mounted in it is seen by the commands run in it, and by no one else.
    """

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sleep", "600"],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + PATIENCE
        ours = os.readlink("/proc/self/ns/mnt")
        while True:
            try:
                if os.readlink(f"/proc/{self.holder.pid}/ns/mnt") != ours:
                    break
            except OSError:
                pass
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("unshare --mount did not start")
            time.sleep(0.01)

    @property
    def prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *argv],
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def sees(self, path: Path) -> Path:
        """C{path} as the namespace sees it, read from here."""
        return Path(f"/proc/{self.holder.pid}/root") / str(path).lstrip("/")

    def end(self) -> None:
        self.holder.kill()
        self.holder.wait(PATIENCE)


@pytest.fixture
def namespace() -> Iterator[MountNamespace]:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        unavailable("unshare and nsenter (util-linux) are needed")
    try:
        space = MountNamespace()
    except (OSError, RuntimeError) as e:
        unavailable(f"no mount namespace: {e}")
        raise
    try:
        yield space
    finally:
        space.end()


def _tmpfs(namespace: MountNamespace, where: Path, size: str = "1m") -> Path:
    where.mkdir()
    done = namespace.run(
        "mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)
    )
    assert done.returncode == 0, done.stderr
    return where / "state"


def _fill(namespace: MountNamespace, folder: Path) -> None:
    namespace.run("dd", "if=/dev/zero", f"of={folder}/fill", "bs=4k")
    assert namespace.run("dd", "if=/dev/zero", f"of={folder}/more", "bs=4k", "count=1").returncode


def _read_only(namespace: MountNamespace, folder: Path) -> None:
    # A bind mount made read-only: the watch's files, opened on the mount
    # below, stay writable (a remount of the whole file system would be
    # refused while they are open), its paths are not.
    for argv in (
        ("mount", "--bind", str(folder), str(folder)),
        ("mount", "-o", "remount,bind,ro", str(folder)),
    ):
        done = namespace.run(*argv)
        assert done.returncode == 0, done.stderr


def _status(
    namespace: MountNamespace | None, state: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    argv = [*command("ismon"), "status", *extra, "--state-dir", str(state)]
    if namespace is not None:
        return namespace.run(*argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=PATIENCE, check=False)


def _stall_and_end(watch: object, server: Nginx, bound: float) -> int:
    with server.stalled():
        since = time.monotonic()
        code = watch.wait(bound + 15)  # type: ignore[attr-defined]
        elapsed = time.monotonic() - since
    assert elapsed <= bound + TEARDOWN, (elapsed, watch.output())  # type: ignore[attr-defined]
    return int(code)


# -- full ------------------------------------------------------------------------


def test_a_folder_filled_under_the_watch_still_gets_its_record(
    http_server: Nginx, processes: Processes, namespace: MountNamespace, tmp_path: Path
) -> None:
    """
    Before: exit 1 in time, but no record, nothing logged, and `ismon
    status` could not tell why.  The record goes into the file the watch
    reserved as it started.
    """
    state = _tmpfs(namespace, tmp_path / "mnt")
    argv = watch_argv(CMD, "web", LOOPBACK, http_server.port, state)
    watch = processes.start([*namespace.prefix, *argv])
    bound = started(watch, CMD, "web")
    _fill(namespace, state.parent)
    assert _stall_and_end(watch, http_server, bound) == 1
    no_traceback(watch.output())
    record = json.loads(namespace.sees(state / "web.last").read_text())
    assert (record["exit_code"], record["pid"]) == (1, watch.pid)
    shown = _status(namespace, state, "web").stdout
    assert shown.startswith("web: not running; last exit 1 (the server failed: "), shown


def test_a_start_in_a_full_folder_is_refused(
    processes: Processes, namespace: MountNamespace, tmp_path: Path
) -> None:
    state = _tmpfs(namespace, tmp_path / "mnt")
    namespace.run("mkdir", "-m", "700", str(state))
    _fill(namespace, state.parent)
    done = namespace.run(*watch_argv(CMD, "web", LOOPBACK, free_port(), state))
    assert done.returncode == 4, done.stdout + done.stderr
    assert message(42, CMD, "web") + "state 28). [ID:web]" in done.stdout
    assert "No space left on device" in done.stdout
    assert message(1, CMD, "web") not in done.stdout
    no_traceback(done.stdout + done.stderr)


# -- read-only -------------------------------------------------------------------


def test_a_folder_made_read_only_under_the_watch_is_said_not_lost(
    http_server: Nginx, processes: Processes, namespace: MountNamespace, tmp_path: Path
) -> None:
    """
    Before: exit 1 in time, but a critical traceback ("Could not remove the
    records ... Read-only file system"), no line about the record, and
    `ismon status` said "ended without a record (killed?)".
    """
    state = _tmpfs(namespace, tmp_path / "mnt", "8m")
    watch = processes.start(
        [*namespace.prefix, *watch_argv(CMD, "web", LOOPBACK, http_server.port, state)]
    )
    bound = started(watch, CMD, "web")
    _read_only(namespace, state)
    assert _stall_and_end(watch, http_server, bound) == 1
    output = watch.output()
    no_traceback(output)
    said = [line for line in output.splitlines() if message(102, CMD, None) in line]
    assert len(said) == 1, output
    assert said[0].endswith(
        message(102, CMD, None) + f"last exit 1: {state}/web.last: Read-only file system). [ID:web]"
    ), said
    assert message(6, CMD, "web") in output
    shown = _status(namespace, state, "web")
    assert (shown.returncode, shown.stdout) == (
        1,
        f"web: not running; its last record could not be written (the state folder {state}"
        " is read-only)\n",
    )
    as_json = json.loads(_status(namespace, state, "web", "--json").stdout)
    assert as_json["last_exit"] is None and "read-only" in as_json["record_not_written"]


def test_a_start_in_a_read_only_folder_is_refused(
    namespace: MountNamespace, tmp_path: Path
) -> None:
    state = _tmpfs(namespace, tmp_path / "mnt")
    namespace.run("mkdir", "-m", "700", str(state))
    _read_only(namespace, state)
    done = namespace.run(*watch_argv(CMD, "web", LOOPBACK, free_port(), state))
    assert done.returncode == 4, done.stdout + done.stderr
    assert message(42, CMD, "web") + "state 30). [ID:web]" in done.stdout
    no_traceback(done.stdout + done.stderr)


# -- deleted -----------------------------------------------------------------------


def test_a_folder_deleted_under_the_watch_is_made_again(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    Before: the watch probed on and exited in time, but `ismon status`
    called the live watch not running, and nothing was logged.
    """
    state = tmp_path / "state"
    watch = processes.start(watch_argv(CMD, "web", LOOPBACK, http_server.port, state))
    bound = started(watch, CMD, "web")
    shutil.rmtree(state)
    # At the next probe (interval 1 s): said once, and found again.
    watch.wait_for(re.escape(message(103, CMD, None) + f"{state} was deleted; made again"))
    running = _status(None, state, "web")
    assert running.returncode == 0 and running.stdout.startswith("web: watching ("), running
    assert _status(None, state).stdout == f"web: running, pid {watch.pid}\n"
    assert _stall_and_end(watch, http_server, bound) == 1
    output = watch.output()
    assert output.count(message(103, CMD, None)) == 1, output
    no_traceback(output)
    assert json.loads((state / "web.last").read_text())["exit_code"] == 1
    assert sorted(os.listdir(state)) == ["web.last"]


# -- killed around its own exit ---------------------------------------------------------


def _temporaries(state: Path) -> list[str]:
    return sorted(name for name in os.listdir(state) if name.endswith(".tmp"))


def test_sigkill_around_the_exit_never_tears_the_record_nor_blocks_a_start(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    A watch asked to stop (SIGTERM) and SIGKILLed a seeded moment later,
    from before its record is written to after its lock is gone, again and
    again.  Before: records were never torn, but 31 of 200 kills left a
    `.last-PID-*.tmp` that no start and no --del removed.
    """
    state = tmp_path / "state"
    argv = watch_argv(CMD, "web", LOOPBACK, http_server.port, state)
    chance = random.Random(22)
    seen: dict[str, int] = {"placeholder": 0, "record": 0}
    for round_ in range(20):
        watch = processes.start(argv, name="killed")
        started(watch, CMD, "web")
        # The next start cleaned what the last kill left: at most the
        # running watch's own reserved file.
        assert len(_temporaries(state)) <= 1, _temporaries(state)
        watch.signal(signal.SIGTERM)
        # Most moments in the first 20 ms, while the watch winds down.
        time.sleep(chance.uniform(0.0, 0.02) if round_ % 3 else chance.uniform(0.02, 0.08))
        watch.signal(signal.SIGKILL)
        code = watch.wait()
        assert code in (0, -signal.SIGKILL), (round_, code, watch.output())
        text = (state / "web.last").read_bytes()
        record = json.loads(text)  # never torn, never empty
        assert isinstance(record, dict) and record.get("pid") == watch.pid, (round_, text)
        seen["placeholder" if record.get("running") else "record"] += 1
        shown = _status(None, state, "web")
        assert shown.returncode == 1 and shown.stdout.startswith("web: not running; "), shown
    print(f"killed before the record: {seen['placeholder']}, after: {seen['record']}")
    # The next start is never blocked.
    last = processes.start(argv, name="last")
    started(last, CMD, "web")
    assert message(14, CMD, "web") not in last.output()
    assert len(_temporaries(state)) == 1
    deleted = processes.run([*command("ismon"), "stop", "web", "--state-dir", str(state)])
    assert deleted.returncode == 0
    assert last.wait() == 0
    assert _temporaries(state) == []


def test_a_start_and_del_remove_the_temporaries_of_the_dead_only(
    processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    dead = [state / ".last-999999999-0a0b0c0d.tmp", state / ".pid-999999998-0a0b0c0d.tmp"]
    alive = state / f".last-{os.getpid()}-0a0b0c0d.tmp"  # this test: alive
    for path in (*dead, alive):
        path.write_text("{")
    deleted = processes.run([*command("ismon"), "del", "web", "--state-dir", str(state)])
    assert deleted.returncode == 0, deleted.stderr
    assert sorted(deleted.stdout.splitlines()) == sorted(f"removed {p}" for p in dead)
    assert _temporaries(state) == [alive.name]


# -- big folders ------------------------------------------------------------------


def _record(watch_id: str, pid: int, when: float) -> dict[str, object]:
    return {
        "command": "clp_httpmon",
        "exit_code": 1,
        "failures": 3,
        "last_failure": f"The clp_httpmon has detected network error(select error[110]). [ID:{watch_id}]",
        "meaning": "the server failed",
        "pid": pid,
        "probes": 10,
        "protocol": "http",
        "started": when - 60,
        "target": "http://127.0.0.1:80/ HTTP/1.1",
        "time": when,
        "uptime": 60.0,
        "watch_id": watch_id,
    }


def _timed(argv: Sequence[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.monotonic()
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    return time.monotonic() - began, done


def test_status_and_metrics_of_a_big_folder_answer_within_2_s(tmp_path: Path) -> None:
    """500 ended watches and 20 killed ones (stale pidfiles, placeholders)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    now = time.time()
    for n in range(500):
        (state / f"ended{n}.last").write_text(json.dumps(_record(f"ended{n}", 100000 + n, now)))
        (state / f"ended{n}.last").chmod(0o600)
    for n in range(20):
        pid = 999000 + n  # no such process
        (state / f"killed{n}.pid").write_text(f"{pid}\n")
        (state / f"killed{n}.lock").write_text(f"killed{n}\n")
        placeholder = {
            "watch_id": f"killed{n}",
            "pid": pid,
            "running": True,
            "started": now,
            "previous": None,
        }
        (state / f"killed{n}.last").write_text(json.dumps(placeholder))
    for argv in (
        [*command("ismon"), "status", "--state-dir", str(state)],
        [*command("ismon"), "status", "--json", "--state-dir", str(state)],
        [*command("ismon"), "metrics", "--state-dir", str(state)],
    ):
        elapsed, done = _timed(argv)
        assert done.returncode == 0, done.stderr
        assert elapsed < 2.0, (argv[-3:], elapsed)
    listed = _timed([*command("ismon"), "status", "--state-dir", str(state)])[1].stdout.splitlines()
    assert len(listed) == 520
    assert listed.count("killed0: not running; ended without a record (killed?)") == 1
