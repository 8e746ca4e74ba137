"""
C{ismon metrics} against real watches (README "Metrics", docs/metrics.md):
clp_httpmon over TLS on a real nginx, clp_httpmon on a page that is missing
(404: it retries), clp_smtpmon on aiosmtpd, and a watch that ended with exit
1 and left its record.  Both formats are checked (promtool for the
classic one, the strict OpenMetrics parser for the other) and show the
expected values; a stuck (SIGSTOPped) watch costs one timeout; the
textfile appears atomically, mode 0644; a wrong command line is refused
on one line with exit 2.  Every C{ismon metrics} here runs as its console
script does, and must import neither Twisted nor attrs (the control
commands' fast path).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from ismon.metrics.command import metrics
from ismon.metrics.snapshots import METRICS_WATCH_TIMEOUT, metric_snapshots
from ismon.state.folder import StateDir
from ismon.state.lock import WatchLock
from ismon.state.record import write_last_exit
from tests.procs import wait_for_port
from tests.servers import Aiosmtpd, Nginx, free_port
from tests.test_control_commands import Runner
from tests.test_metrics import promtool_check, samples, value
from tests.watchproc import (
    LOOPBACK,
    PATIENCE,
    Processes,
    WatchProcess,
    command,
    message,
    watch_argv,
)

pytestmark = pytest.mark.integration


def wait_until(check: Callable[[], str | None], what: str, timeout: float = PATIENCE) -> str:
    """Poll C{check} until it gives a text; fail after C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


class Watches:
    """The watches of the test, each in the same state folder."""

    def __init__(self, processes: Processes, tmp_path: Path) -> None:
        self.processes = processes
        self.state = tmp_path / "state"
        self.run = Runner(processes, tmp_path, self.state)

    def start(
        self, cmd: str, watch_id: str, port: int, *extra: str, timing: list[str]
    ) -> WatchProcess:
        watch = self.processes.start(
            watch_argv(cmd, watch_id, LOOPBACK, port, self.state, *extra, timing=timing)
        )
        watch.wait_for(re.escape(message(1, cmd, watch_id)) + "$")
        return watch

    def metrics(self, *args: str) -> str:
        done = self.run("ismon", "metrics", *args)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        return done.stdout


def probed(text: str, *watch_ids: str) -> str | None:
    """C{text} once every watch in C{watch_ids} has probed at least once."""
    done = all(value(text, "ismon_probe_success", w) is not None for w in watch_ids)
    return text if done else None


def test_metrics_of_real_watches(
    nginx: Nginx, aiosmtpd: Aiosmtpd, processes: Processes, tmp_path: Path
) -> None:
    watches = Watches(processes, tmp_path)
    slow = ["-i", "1", "-c", "1000", "-r", "5"]
    tls = ["--tls", "--ca-file", str(nginx.ca), "--servername", "localhost"]
    web = watches.start("clp_httpmon", "web", nginx.https_ports["valid"], *tls, timing=slow)
    watches.start("clp_httpmon", "missing", nginx.port, "-h", "/missing", timing=slow)
    mail = watches.start("clp_smtpmon", "mail", aiosmtpd.port, timing=slow)
    # Nothing listens there: the watch fails at once and ends with exit 1.
    closed = free_port()
    gone = processes.start(
        watch_argv(
            "clp_httpmon",
            "gone",
            LOOPBACK,
            closed,
            watches.state,
            timing=["-i", "1", "-c", "1", "-r", "1", "--retry-interval", "0"],
        )
    )
    assert gone.wait() == 1

    # The missing page fails until its second probe at least: it retries.
    def ready() -> str | None:
        text = watches.metrics()
        failing = (value(text, "ismon_consecutive_failures", "missing") or 0) >= 2
        return probed(text, "web", "missing", "mail") if failing else None

    text = wait_until(ready, "every watch probed, the missing page failed twice")
    checked = promtool_check(text)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")

    web_target = f"https://{LOOPBACK}:{nginx.https_ports['valid']}/ HTTP/1.1"
    assert value(text, "ismon_up", "web", protocol="http", target=web_target) == 1
    for watch_id in ("web", "missing", "mail"):
        assert value(text, "ismon_up", watch_id) == 1
        assert value(text, "ismon_detection_bound_seconds", watch_id) is not None
    assert value(text, "ismon_up", "gone") == 0

    assert value(text, "ismon_probe_success", "web") == 1
    assert value(text, "ismon_probe_http_status_code", "web") == 200
    assert value(text, "ismon_watch_state", "web", ismon_watch_state="watching") == 1
    assert 0 < (value(text, "ismon_probe_duration_seconds", "web") or 0) < 5
    not_after = x509.load_pem_x509_certificate(
        nginx.certs.valid.cert.read_bytes()  # type: ignore[union-attr]
    ).not_valid_after_utc.timestamp()
    assert value(text, "ismon_tls_cert_expiry_timestamp_seconds", "web") == not_after

    assert value(text, "ismon_probe_success", "missing") == 0
    assert value(text, "ismon_probe_http_status_code", "missing") == 404
    assert value(text, "ismon_watch_state", "missing", ismon_watch_state="retrying") == 1
    failures = value(text, "ismon_probe_failures_total", "missing", message="83")
    assert failures is not None and failures >= 2
    # Every probe of the missing page failed (83, or another message on a slow day).
    every_failure = sum(
        number
        for (name, labels), number in samples(text).items()
        if name == "ismon_probe_failures_total" and ("watch", "missing") in labels
    )
    assert value(text, "ismon_probes_total", "missing") == every_failure

    assert value(text, "ismon_probe_success", "mail", protocol="smtp") == 1
    assert 'ismon_probe_http_status_code{watch="mail"' not in text
    assert 'ismon_tls_cert_expiry_timestamp_seconds{watch="mail"' not in text

    gone_target = f"http://{LOOPBACK}:{closed}/ HTTP/1.1"
    assert value(text, "ismon_last_exit_code", "gone", protocol="http", target=gone_target) == 1
    assert abs((value(text, "ismon_last_exit_timestamp_seconds", "gone") or 0) - time.time()) < 600
    assert value(text, "ismon_last_exit_code", "web") is None

    # Paused for 15 minutes: the end shows, and the state.
    paused = watches.run("ismon", "pause", "web", "--for", "15m")
    assert paused.returncode == 0, paused.stderr
    text = watches.metrics()
    until = value(text, "ismon_paused_until_timestamp_seconds", "web")
    assert until is not None and abs(until - (time.time() + 900)) < PATIENCE
    assert value(text, "ismon_watch_state", "web", ismon_watch_state="paused") == 1

    # OpenMetrics, read by the strict parser.
    om = watches.metrics("--openmetrics")
    assert om.endswith("# EOF\n")
    families = {family.name: family for family in parse_om(om)}
    assert families["ismon_watch_state"].type == "stateset"
    assert {s.labels["watch"] for s in families["ismon_up"].samples} == {
        "web",
        "missing",
        "mail",
        "gone",
    }
    assert families["ismon_probes"].type == "counter"

    # A stuck watch costs one timeout; the others are still there.
    mail.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        text = watches.metrics()
        took = time.monotonic() - started
    finally:
        mail.signal(signal.SIGCONT)
    assert METRICS_WATCH_TIMEOUT <= took < METRICS_WATCH_TIMEOUT + PATIENCE
    assert value(text, "ismon_up", "mail") == 0
    assert value(text, "ismon_up", "web") == 1
    assert web.running()


def test_textfile_appears_atomically(processes: Processes, tmp_path: Path) -> None:
    """
    --textfile replaces DIR/ismon.prom by a rename: a reader polling it
    meanwhile sees the old file or a whole new one, never a part; no other
    *.prom file shows, none is left behind, and the file is 0644 whatever
    the umask.
    """
    state = tmp_path / "state"
    folder = StateDir.open(state)
    for number in range(40):
        record = {
            "watch_id": f"w{number}",
            "command": "clp_httpmon",
            "protocol": "http",
            "pid": 1,
            "target": f"http://127.0.0.1:{8000 + number}/ HTTP/1.1",
            "exit_code": number % 2,
            "time": time.time(),
        }
        write_last_exit(folder, f"w{number}", record)
    out = tmp_path / "textfile"
    out.mkdir()
    path = out / "ismon.prom"
    path.write_text("old\n")
    old_inode = path.stat().st_ino
    run = Runner(processes, tmp_path, state)

    seen: list[str] = []
    stray: list[list[str]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(path.read_text())
            names = [n for n in os.listdir(out) if n.endswith(".prom")]
            if names != ["ismon.prom"]:
                stray.append(names)

    reader = threading.Thread(target=read)
    reader.start()
    umask = os.umask(0o077)  # inherited by the commands
    try:
        for _ in range(5):
            done = run("ismon", "metrics", "--textfile", str(out))
            assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    finally:
        os.umask(umask)
        stop.set()
        reader.join()

    whole = path.read_text()
    assert whole.count("ismon_up{") == 40
    assert whole.count("ismon_last_exit_code{") == 40
    assert {text for text in seen} <= {"old\n", whole}
    assert seen.count(whole) > 0
    assert stray == []
    assert os.listdir(out) == ["ismon.prom"]
    assert path.stat().st_ino != old_inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    checked = promtool_check(whole)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bogus"], 'unknown option "--bogus"'),
        (["--openmetric"], 'unknown option "--openmetric"'),
        (["web"], 'unexpected argument "web": metrics takes no watch ID'),
        (["--", "web"], 'unexpected argument "web": metrics takes no watch ID'),
        (["--openmetrics=1"], "--openmetrics takes no value"),
        (["--textfile="], '--textfile needs a folder, not ""'),
        (["--textfile", "/no/such/folder"], '--textfile "/no/such/folder" is not a folder'),
        (["--textfile", "/tmp", "--openmetrics"], "--textfile writes the classic format"),
        (["--x\ny"], 'unknown option "--x\\ny"'),
    ],
)
def test_wrong_command_line(
    processes: Processes, tmp_path: Path, args: list[str], says: str
) -> None:
    done = Runner(processes, tmp_path, tmp_path / "state")("ismon", "metrics", *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"ismon metrics: {says}")
    assert done.stderr.endswith(" (see ismon --help)\n")
    assert done.stderr.count("\n") == 1


def test_option_without_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    """In-process: the command line of the others ends with --state-dir STATE."""
    assert metrics(["--textfile"]) == 2
    assert capsys.readouterr() == (
        "",
        "ismon metrics: --textfile needs a folder (see ismon --help)\n",
    )


def test_state_folder_that_is_no_folder(processes: Processes, tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    done = Runner(processes, tmp_path, tmp_path / "state")("ismon", "metrics")
    assert (done.returncode, done.stdout) == (4, "")
    assert done.stderr.count("\n") == 1 and "is not a directory" in done.stderr


def test_textfile_that_cannot_be_written(processes: Processes, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "ismon.prom").mkdir(parents=True)  # a folder where the file goes
    done = Runner(processes, tmp_path, tmp_path / "state")(
        "ismon", "metrics", "--textfile", str(out)
    )
    assert (done.returncode, done.stdout) == (4, "")
    assert done.stderr.count("\n") == 1 and f"{out}/ismon.prom: " in done.stderr
    assert sorted(os.listdir(out)) == ["ismon.prom"]  # no temporary file left


def test_help(processes: Processes, tmp_path: Path) -> None:
    # The page is the manual's, rendered the long way (ismon.cmdline.startup).
    done = processes.run([*command("ismon"), "metrics", "--help"])
    assert done.returncode == 0
    assert "metrics [--openmetrics] [--textfile dir]" in done.stdout


def test_node_exporter_reads_the_textfile(processes: Processes, tmp_path: Path) -> None:
    """The textfile collector setup of docs/metrics.md, with Debian's node_exporter."""
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        reason = "prometheus-node-exporter is not installed"
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(f"{reason}; CI runs as root and must have it")
        pytest.skip(reason)
    state = tmp_path / "state"
    record = {"command": "clp_smtpmon", "target": "smtp://127.0.0.1:25", "exit_code": 1}
    write_last_exit(StateDir.open(state), "mail", {**record, "time": time.time()})
    out = tmp_path / "textfile"
    out.mkdir()
    done = Runner(processes, tmp_path, state)("ismon", "metrics", "--textfile", str(out))
    assert done.returncode == 0, done.stderr
    port = free_port()
    exporter = processes.start(
        [
            binary,
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={out}",
            f"--web.listen-address={LOOPBACK}:{port}",
        ],
        name="node-exporter",
    )
    wait_for_port(port, timeout=PATIENCE, process=exporter.process)
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=PATIENCE) as answer:
        text = answer.read().decode()
    assert 'ismon_last_exit_code{protocol="smtp",target="smtp://127.0.0.1:25",watch="mail"} 1' in (
        text.splitlines()
    )
    assert "node_textfile_scrape_error 0" in text.splitlines()


def test_stuck_watches_cost_one_timeout_together(tmp_path: Path) -> None:
    """
    Five watch IDs whose lock is held and whose socket accepts but never
    answers (held here, in-process: no process start in the timing): asked
    side by side, they cost about one deadline, not five.
    """
    folder = StateDir.open(tmp_path / "s")
    with contextlib.ExitStack() as held:
        for number in range(5):
            lock = WatchLock.acquire(folder, f"w{number}")
            held.callback(lock.release)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.callback(listener.close)
            listener.bind(str(folder.socket_path(f"w{number}")))
            listener.listen(8)
        started = time.monotonic()
        found = metric_snapshots(folder, timeout=2.0)
        took = time.monotonic() - started
    assert [(s.watch_id, s.status, s.last_exit) for s in found] == [
        (f"w{number}", None, None) for number in range(5)
    ]
    assert 2.0 <= took < 2.0 * 5 - 2.0
