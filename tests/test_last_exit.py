"""
The last exit on record (README "Records"): the record a watch leaves as it
ends (L{ismon.state.record.write_last_exit} / L{ismon.state.record.read_last_exit}), and
what C{ismon status}, C{--json}, the status of all watches and C{--del}
make of it - against real watch processes: a stalled server (exit 1 with
message 74's text), a stop (0), a second run that keeps the first run's
record until it ends, a start refused with 14 that leaves the record alone,
and a SIGKILLed watch that cannot write one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ismon.state.folder import StateDir
from ismon.state.listing import list_watch_ids
from ismon.state.lock import remove_leftovers
from ismon.state.record import (
    MAX_RECORD_SIZE,
    RecordUnreadable,
    ended_without_record,
    read_last_exit,
    write_last_exit,
)
from tests.servers import Nginx
from tests.watchproc import LOOPBACK, PATIENCE, Processes, WatchProcess, command, message

RECORD = {
    "watch_id": "web",
    "command": "clp_httpmon",
    "exit_code": 1,
    "meaning": "the server failed",
    "time": 1796000000.5,
    "last_failure": "The clp_httpmon has detected network error(select error[110]). [ID:web]",
    "probes": 3,
    "failures": 3,
    "uptime": 3.2,
}

WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


@pytest.fixture
def folder(tmp_path: Path) -> StateDir:
    return StateDir.open(tmp_path / "state")


# -- the record itself ---------------------------------------------------------


def test_written_whole_private_and_read_back(folder: StateDir) -> None:
    write_last_exit(folder, "web", RECORD)
    path = folder.record_path("web")
    assert path.name == "web.last"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_last_exit(folder, "web") == RECORD
    # Replaced by rename: no temporary file is left, and the new record wins.
    write_last_exit(folder, "web", {**RECORD, "exit_code": 0})
    assert sorted(os.listdir(folder.path)) == ["web.last"]
    assert read_last_exit(folder, "web") == {**RECORD, "exit_code": 0}


def test_written_by_rename_so_a_reader_never_sees_a_part(folder: StateDir) -> None:
    write_last_exit(folder, "web", RECORD)
    before = folder.record_path("web").stat().st_ino
    write_last_exit(folder, "web", {**RECORD, "probes": 4})
    # A new inode: the old file was never written in place.
    assert folder.record_path("web").stat().st_ino != before


def test_a_missing_record_is_none(folder: StateDir) -> None:
    assert read_last_exit(folder, "web") is None
    assert not ended_without_record(folder, "web", None)


def test_a_pidfile_left_without_the_runs_own_record_is_an_unrecorded_end(
    folder: StateDir,
) -> None:
    # The previous run's record, then a run that left its pidfile (killed).
    write_last_exit(folder, "web", {**RECORD, "pid": 100})
    earlier = read_last_exit(folder, "web")
    os.utime(folder.record_path("web"), ns=(10**18, 10**18))
    folder.pid_path("web").write_text("200\n")
    assert ended_without_record(folder, "web", earlier)
    assert ended_without_record(folder, "web", None)
    # That run wrote its record but could not remove its pidfile (the loop
    # watchdog's exit): its own, newer record.
    os.utime(folder.pid_path("web"), ns=(10**18, 10**18))
    write_last_exit(folder, "web", {**RECORD, "pid": 200})
    assert not ended_without_record(folder, "web", read_last_exit(folder, "web"))
    # The same PID again (reused), but the record is older than the pidfile.
    os.utime(folder.record_path("web"), ns=(10**18 - 1, 10**18 - 1))
    assert ended_without_record(folder, "web", read_last_exit(folder, "web"))


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b"[1, 2]", "is not a last-exit record"),
        (b'{"exit_code": "1", "time": 1}', "is not a last-exit record"),
        (b'{"exit_code": 1}', "is not a last-exit record"),
        (b" " * (MAX_RECORD_SIZE + 1), f"is too large ({MAX_RECORD_SIZE + 1} bytes"),
    ],
)
def test_a_bad_record_is_refused_with_one_line(folder: StateDir, content: bytes, why: str) -> None:
    folder.record_path("web").write_bytes(content)
    with pytest.raises(RecordUnreadable) as caught:
        read_last_exit(folder, "web")
    assert why in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_symbolic_link_is_refused(folder: StateDir, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text(json.dumps(RECORD))
    folder.record_path("web").symlink_to(target)
    with pytest.raises(RecordUnreadable, match="is a symbolic link"):
        read_last_exit(folder, "web")


def test_a_record_of_another_owner_is_refused(folder: StateDir) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file away")
    path = folder.record_path("web")
    path.write_text(json.dumps(RECORD))
    os.chown(path, 65534, 65534)
    with pytest.raises(RecordUnreadable, match="belongs to uid 65534, not to us"):
        read_last_exit(folder, "web")


def test_listed_and_removed_with_the_leftovers() -> None:
    # A short folder: a long ID's socket path must fit in sun_path.
    with tempfile.TemporaryDirectory(prefix="lx", dir="/tmp") as short:
        listed_and_removed(StateDir.open(Path(short) / "s"))


def listed_and_removed(folder: StateDir) -> None:
    write_last_exit(folder, "web", RECORD)
    long_id = "w" * 251  # a hashed file name: the record names the ID
    write_last_exit(folder, long_id, {**RECORD, "watch_id": long_id})
    assert list_watch_ids(folder) == sorted(["web", long_id])
    assert remove_leftovers(folder, "web") == [folder.record_path("web")]
    assert remove_leftovers(folder, long_id) == [folder.record_path(long_id)]
    assert os.listdir(folder.path) == []


def test_an_unreadable_record_is_one_line_in_status(folder: StateDir, processes: Processes) -> None:
    folder.record_path("web").write_bytes(b"{garbage")
    shown = status(processes, folder.path, "web")
    assert shown.returncode == 1
    assert shown.stdout == (
        f"web: not running; last exit unknown: the record {folder.record_path('web')}"
        " is not valid JSON\n"
    )
    as_json = status(processes, folder.path, "web", "--json")
    assert json.loads(as_json.stdout)["last_exit"] is None
    assert "not valid JSON" in json.loads(as_json.stdout)["last_exit_error"]
    every = status(processes, folder.path)
    assert every.stdout.startswith("web: not running; last exit unknown: the record ")
    for result in (shown, as_json, every):
        assert "Traceback" not in result.stdout + result.stderr


# -- real watches ------------------------------------------------------------


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A listener that accepts (in the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def status(processes: Processes, state: Path, *args: str):  # type: ignore[no-untyped-def]
    return processes.run([*command("ismon"), "status", *args, "--state-dir", str(state)])


def start(processes: Processes, state: Path, port: int, *timing: str) -> WatchProcess:
    argv = [*command("clp_httpmon"), "web", "-s", LOOPBACK, "-n", str(port)]
    argv += [*(timing or ("-i", "1", "-r", "1")), "--state-dir", str(state)]
    watch = processes.start([*argv, "--syslog-socket", "none"], name="web")
    watch.wait_for(re.escape(message(1, "clp_httpmon", "web")) + "$", PATIENCE)
    return watch


@pytest.mark.integration
def test_a_stall_then_a_second_run_then_a_stop(
    nginx: Nginx, processes: Processes, tmp_path: Path, stalled_port: int
) -> None:
    state = tmp_path / "state"
    stalled = start(processes, state, stalled_port, "-i", "1", "-c", "1", "-r", "1")
    assert stalled.wait() == 1
    record_path = state / "web.last"
    assert stat.S_IMODE(record_path.stat().st_mode) == 0o600
    record = json.loads(record_path.read_text())
    text_74 = message(74, "clp_httpmon", "web", 110)
    assert (record["exit_code"], record["meaning"]) == (1, "the server failed")
    assert record["last_failure"] == text_74
    assert (record["probes"], record["failures"]) == (2, 2)
    assert record["pid"] == stalled.pid
    assert record["uptime"] > 0
    # Written after the last message: message 6 is in the log by then.
    assert message(6, "clp_httpmon", "web") in stalled.output()

    shown = status(processes, state, "web")
    assert shown.returncode == 1
    assert re.fullmatch(
        rf"web: not running; last exit 1 \(the server failed: {re.escape(text_74)}\)"
        rf" at {WHEN}\n",
        shown.stdout,
    ), shown.stdout
    as_json = status(processes, state, "web", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {
        "watch_id": "web",
        "state": "not running",
        "last_exit": record,
    }
    every = status(processes, state)
    assert every.returncode == 0
    assert every.stdout.startswith("web: not running; last exit 1 (the server failed: ")
    listed = json.loads(status(processes, state, "--json").stdout)
    assert listed == [{"watch_id": "web", "pid": None, "running": False, "last_exit": record}]
    # --disp stays as it was.
    disp = processes.run([*command("clp_httpmon"), "web", "--disp", "--state-dir", str(state)])
    assert (disp.returncode, disp.stdout) == (1, "")

    # A second run keeps the first run's record while it runs, inside the
    # placeholder its own record will replace ("running, pid N").
    second = start(processes, state, nginx.port)
    placeholder = json.loads(record_path.read_text())
    assert placeholder == {
        "watch_id": "web",
        "pid": second.pid,
        "running": True,
        "started": placeholder["started"],
        "previous": record,
    }
    running = status(processes, state, "web")
    assert running.returncode == 0 and running.stdout.startswith("web: watching ("), running
    # A start refused with message 14 never held the lock: it leaves the
    # record alone.
    refused = processes.run(
        [*command("clp_httpmon"), "web", "-n", str(nginx.port), "--state-dir", str(state)]
    )
    assert refused.returncode == 3
    assert json.loads(record_path.read_text()) == placeholder

    stopped = processes.run([*command("ismon"), "stop", "web", "--state-dir", str(state)])
    assert stopped.returncode == 0
    assert second.wait() == 0
    after = json.loads(record_path.read_text())
    assert (after["exit_code"], after["meaning"], after["pid"]) == (
        0,
        "stopped on request",
        second.pid,
    )
    shown = status(processes, state, "web")
    assert shown.returncode == 1
    assert re.fullmatch(
        rf"web: not running; last exit 0 \(stopped on request\) at {WHEN}\n", shown.stdout
    )

    deleted = processes.run([*command("ismon"), "del", "web", "--state-dir", str(state)])
    assert (deleted.returncode, deleted.stdout) == (0, f"removed {record_path}\n")
    gone = status(processes, state, "web")
    assert (gone.returncode, gone.stdout, gone.stderr) == (
        1,
        "",
        "ismon: watch web is not running\n",
    )
    assert status(processes, state).stdout == ""


@pytest.mark.integration
def test_a_sigkilled_watch_ends_without_a_record(
    nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = start(processes, state, nginx.port)
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    earlier = (state / "web.last").read_bytes()

    killed = start(processes, state, nginx.port)
    killed.signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    # The earlier run's record is still there, inside the killed run's
    # placeholder ("running, pid N"), which no record replaced.
    placeholder = json.loads((state / "web.last").read_bytes())
    assert (placeholder["running"], placeholder["pid"]) == (True, killed.pid)
    assert placeholder["previous"] == json.loads(earlier)
    shown = status(processes, state, "web")
    assert (shown.returncode, shown.stdout) == (
        1,
        "web: not running; ended without a record (killed?)\n",
    )
    as_json = json.loads(status(processes, state, "web", "--json").stdout)
    assert as_json == {
        "watch_id": "web",
        "state": "not running",
        "last_exit": None,
        "ended_without_record": True,
    }
    assert status(processes, state).stdout == "web: not running; ended without a record (killed?)\n"

    # --del clears the leftovers and the record; a new run starts afresh.
    deleted = processes.run([*command("ismon"), "del", "web", "--state-dir", str(state)])
    assert deleted.returncode == 0
    assert f"removed {state / 'web.last'}\n" in deleted.stdout
    assert os.listdir(state) == []


# A real watch whose event loop blocks for good 2 s after start (its grace
# keeps it from probing): only the loop watchdog's thread can end it, and
# that thread writes the record (README "Timing").
_BLOCKED_WATCH = r"""
import sys, time
from twisted.internet import reactor

reactor.callLater(2, time.sleep, 600)
sys.argv = ["clp_httpmon"] + sys.argv[1:]
from ismon.entry import clp_httpmon
clp_httpmon()
"""


@pytest.mark.integration
def test_the_loop_watchdog_records_its_exit(processes: Processes, tmp_path: Path) -> None:
    # A short folder: the control socket's path must fit in sun_path.
    with tempfile.TemporaryDirectory(prefix="lx", dir="/tmp") as short:
        state = Path(short) / "s"
        argv = [sys.executable, "-c", _BLOCKED_WATCH, "web", "-s", LOOPBACK, "-n", "9"]
        argv += ["-i", "1", "-c", "1", "-r", "1", "--grace", "600"]
        watch = processes.start(
            [*argv, "--state-dir", str(state), "--syslog-socket", "none"], name="web"
        )
        # -i 1 -c 1 -r 1: bound 3 s, so the watchdog's limit is the 30 s floor.
        assert watch.wait(30 + PATIENCE) == 4, watch.output()
        record = json.loads((state / "web.last").read_text())
        assert (record["exit_code"], record["meaning"]) == (4, "the event loop stalled")
        assert record["last_failure"].startswith(
            "The clp_httpmon has detected that its own event loop stalled for "
        )
        assert record["last_failure"].endswith(" seconds. [ID:web]")
        shown = status(processes, state, "web")
        assert shown.stdout.startswith("web: not running; last exit 4 (the event loop stalled: ")
