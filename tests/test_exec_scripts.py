"""
The EXEC resource templates (scripts/exec/*/start.sh, stop.sh) run as
CLUSTERPRO / EXPRESSCLUSTER runs them: with CLP_EVENT, CLP_DISK and
CLP_SERVER set, against a real nginx (and aiosmtpd) started and stopped
through an init script, and a real watch.

The monitor's start script is what the cluster's PID monitor watches: it
must run the watch in the foreground as that very process, and end when
the daemon stalls (SIGSTOP).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import installed_nginx as nginx_binary
from tests.conftest import installed_script as console_script
from tests.procs import alive as _alive
from tests.procs import signal_pid as _kill
from tests.procs import wait_until
from tests.servers import descendants, free_port, nginx_conf, wait_for_port
from tests.watchproc import PATIENCE

ROOT = Path(__file__).resolve().parent.parent
EXEC = ROOT / "scripts" / "exec"
SCRIPTS = sorted(EXEC.glob("*/*.sh"))
STAMP = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}$", re.MULTILINE)

pytestmark = pytest.mark.integration


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def head_status(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("HEAD", "/")
        return conn.getresponse().status
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Daemons the way a cluster node has them: started by an init script.

_NGINX_HTTP = """\
    access_log {dir}/access.log;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
"""

# An /etc/init.d-style script for a daemon that writes a pidfile.
_INIT_SCRIPT = """\
#!/bin/sh
# Test init script: {name} ({description}).
PIDFILE={pidfile}
running() {{
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}}
case "$1" in
start)
    if running; then echo "{name} already running"; exit 0; fi
    {start} || exit 1
    echo "{name} started"
    ;;
stop)
    if ! running; then rm -f "$PIDFILE"; echo "{name} not running"; exit 0; fi
    pid=$(cat "$PIDFILE")
    kill -{stop_signal} "$pid"
    n=0
    while kill -0 "$pid" 2>/dev/null; do
        n=$((n + 1))
        if [ $n -gt 100 ]; then kill -KILL "$pid"; break; fi
        sleep 0.1
    done
    rm -f "$PIDFILE"
    echo "{name} stopped"
    ;;
status)
    running
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
"""


class InitDaemon:
    """A daemon behind an init script, in a private folder, on a free port."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.port = free_port()
        self.pidfile = directory / f"{name}.pid"
        self.init_script = directory / f"init-{name}"

    def write_init_script(self, description: str, start: str, stop_signal: str) -> None:
        self.init_script.write_text(
            _INIT_SCRIPT.format(
                name=self.name,
                description=description,
                pidfile=self.pidfile,
                start=start,
                stop_signal=stop_signal,
            )
        )
        self.init_script.chmod(0o755)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def pids(self) -> list[int]:
        pid = self.pid()
        return [] if pid is None else [pid, *descendants(pid)]

    def stall(self) -> list[int]:
        pids = self.pids()
        assert pids, f"{self.name} is not running"
        for pid in pids:
            _kill(pid, signal.SIGSTOP)
        return pids

    def resume(self, pids: list[int]) -> None:
        for pid in pids:
            _kill(pid, signal.SIGCONT)

    def cleanup(self) -> None:
        """Whatever the test did: nothing of this daemon stays behind."""
        pids = self.pids()
        for pid in pids:
            _kill(pid, signal.SIGCONT)
            _kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(AssertionError):
                wait_until(lambda p=pid: not _alive(p), 30, f"{self.name} PID {pid} to end")


def make_nginx(directory: Path) -> InitDaemon:
    binary = nginx_binary()
    daemon = InitDaemon(directory, "nginx")
    conf = directory / "nginx.conf"
    conf.write_text(
        nginx_conf(
            directory,
            _NGINX_HTTP.format(dir=directory, port=daemon.port),
            daemon=True,
            worker_connections=64,
        )
    )
    daemon.write_init_script(
        "nginx in daemon mode",
        f'{binary} -p "{directory}/" -c "{conf}" -e "{directory}/error.log"',
        "QUIT",
    )
    return daemon


def make_aiosmtpd(directory: Path) -> InitDaemon:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        pytest.skip("aiosmtpd is not installed")
    daemon = InitDaemon(directory, "aiosmtpd")
    start = (
        f"{sys.executable} -m aiosmtpd -n -l 127.0.0.1:{daemon.port} "
        f'</dev/null >"{directory}/aiosmtpd.out" 2>&1 & echo $! >"$PIDFILE"; '
        # Like a real init script: return once the daemon answers.
        f"{sys.executable} -c 'from tests.servers import wait_for_port; "
        f"wait_for_port({daemon.port})'"
    )
    daemon.write_init_script("aiosmtpd in the background", f"( cd {ROOT} && {start} )", "TERM")
    return daemon


@pytest.fixture
def nginx_daemon(tmp_path: Path) -> Iterator[InitDaemon]:
    directory = tmp_path / "nginx"
    directory.mkdir()
    daemon = make_nginx(directory)
    yield daemon
    daemon.cleanup()


@pytest.fixture
def smtp_daemon(tmp_path: Path) -> Iterator[InitDaemon]:
    directory = tmp_path / "aiosmtpd"
    directory.mkdir()
    daemon = make_aiosmtpd(directory)
    yield daemon
    daemon.cleanup()


# --------------------------------------------------------------------------
# The cluster's side: run a script with the CLP_* variables.


class Cluster:
    """Runs EXEC scripts as the cluster does, and remembers what to clean up."""

    def __init__(self, tmp_path: Path) -> None:
        self.state_dir = tmp_path / "state"
        self.bin_dir = console_script("clp_httpmon").parent
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CLP_", "ISMON_"))}
        self.env["PATH"] = f"{self.bin_dir}:{self.env.get('PATH', '/usr/bin:/bin')}"
        self.env.update(
            {
                "ISMON_STATE_DIR": str(self.state_dir),
                "ISMON_INIT": "sysv",
                "ISMON_HTTPMON": str(console_script("clp_httpmon")),
                "ISMON_SMTPMON": str(console_script("clp_smtpmon")),
                "ISMON_WATCHMON": str(console_script("clp_imapmon")),
                "CLP_GROUPNAME": "failover1",
            }
        )
        self._popens: list[subprocess.Popen[str]] = []

    def _env(
        self, event: str | None, disk: str, server: str, extra: dict[str, str]
    ) -> dict[str, str]:
        env = dict(self.env)
        if event is not None:
            env.update({"CLP_EVENT": event, "CLP_DISK": disk, "CLP_SERVER": server})
        env.update(extra)
        return env

    def run(
        self,
        script: str,
        event: str | None = "START",
        disk: str = "SUCCESS",
        server: str = "HOME",
        timeout: float = 60,
        **extra: str,
    ) -> subprocess.CompletedProcess[str]:
        """A synchronous script: run it to the end."""
        return subprocess.run(
            [str(EXEC / script)],
            env=self._env(event, disk, server, extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(
        self,
        script: str,
        event: str = "START",
        disk: str = "SUCCESS",
        server: str = "HOME",
        **extra: str,
    ) -> subprocess.Popen[str]:
        """An asynchronous script: started, not waited for (its PID is monitored)."""
        process = subprocess.Popen(
            [str(EXEC / script)],
            env=self._env(event, disk, server, extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._popens.append(process)
        return process

    def ismon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(console_script("ismon")), *args, "--state-dir", str(self.state_dir)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def status(self, watch_id: str) -> dict[str, object] | None:
        done = self.ismon("status", watch_id, "--json")
        return json.loads(done.stdout) if done.returncode == 0 else None

    def wait_probing(self, watch_id: str, process: subprocess.Popen[str], probes: int = 2) -> None:
        def probing() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"the monitor script ended early ({process.returncode}):\n{process.stdout.read()}"  # type: ignore[union-attr]
                )
            status = self.status(watch_id)
            return bool(
                status
                and int(status["probes"]) >= probes  # type: ignore[call-overload]
                and status["consecutive_failures"] == 0
            )

        wait_until(probing, 30, f"watch {watch_id} to probe", step=0.2)

    def cleanup(self) -> None:
        for process in self._popens:
            if process.poll() is None:
                for pid in [process.pid, *descendants(process.pid)]:
                    _kill(pid, signal.SIGCONT)
                    _kill(pid, signal.SIGKILL)
                process.wait(30)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.cleanup()


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.splitlines()


# --------------------------------------------------------------------------
# The scripts themselves


def test_the_templates_exist_and_are_executable() -> None:
    names = {str(p.relative_to(EXEC)) for p in SCRIPTS}
    assert names == {
        f"{kind}/{name}.sh"
        for kind in ("httpd", "httpmon", "smtpd", "smtpmon", "watchmon")
        for name in ("start", "stop")
    }
    for path in SCRIPTS:
        assert os.access(path, os.X_OK), path
        text = path.read_text()
        assert text.startswith("#!/bin/sh\n"), path
        assert "==== ADAPT HERE" in text, path
        for variable in ("CLP_EVENT", "CLP_DISK", "CLP_SERVER"):
            assert variable in text, (path, variable)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(EXEC)))
def test_posix_shell_syntax(path: Path) -> None:
    shells = [s for s in ("dash", "sh", "bash") if shutil.which(s)]
    for shell in shells:
        argv = [shell, "--posix", "-n", str(path)] if shell == "bash" else [shell, "-n", str(path)]
        subprocess.run(argv, check=True, timeout=10)


def test_the_monitor_templates_restart_alike() -> None:
    """
    Each monitor template is pasted into the cluster's configuration on its
    own, so each carries its own copy of watch_restarting (the restart after
    exit 4): the three copies must stay the same.
    """
    pattern = re.compile(r"^watch_restarting\(\) \{\n.*?^\}\n", re.S | re.M)
    copies = {
        name: pattern.search((EXEC / name / "start.sh").read_text())
        for name in ("httpmon", "smtpmon", "watchmon")
    }
    assert all(copies.values()), copies
    assert len({match.group(0) for match in copies.values() if match}) == 1


def test_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    paths = [*SCRIPTS, ROOT / "scripts" / "ocf" / "ismon", ROOT / "scripts" / "install-ocf.sh"]
    done = subprocess.run(
        ["shellcheck", "-s", "sh", *map(str, paths)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------
# Daemon resources


@pytest.mark.parametrize(
    ("event", "server", "expected"),
    [
        ("START", "HOME", ["NORMAL1", "NORMAL2"]),
        ("START", "OTHER", ["NORMAL1", "ON_OTHER1"]),
        ("FAILOVER", "HOME", ["FAILOVER1", "FAILOVER2"]),
        ("FAILOVER", "OTHER", ["FAILOVER1", "ON_OTHER2"]),
    ],
)
def test_httpd_start_and_stop(
    cluster: Cluster, nginx_daemon: InitDaemon, event: str, server: str, expected: list[str]
) -> None:
    env = {"ISMON_HTTPD_INITSCRIPT": str(nginx_daemon.init_script)}
    done = cluster.run("httpd/start.sh", event, "SUCCESS", server, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = lines(done)
    assert out[: len(expected)] == expected
    assert STAMP.search(done.stdout), done.stdout
    assert f"{nginx_daemon.init_script} start" in out
    assert out[-1] == "EXIT"
    assert head_status(nginx_daemon.port) == 200
    master = nginx_daemon.pid()
    assert master is not None

    done = cluster.run("httpd/stop.sh", event, "SUCCESS", server, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done)[: len(expected)] == expected
    assert STAMP.search(done.stdout)
    assert "nginx stopped" in done.stdout
    wait_until(lambda: not _alive(master), 30, "nginx to end")
    assert not accepts(nginx_daemon.port)


@pytest.mark.parametrize("event", ["START", "FAILOVER"])
def test_httpd_disk_failure_starts_nothing(
    cluster: Cluster, nginx_daemon: InitDaemon, event: str
) -> None:
    env = {"ISMON_HTTPD_INITSCRIPT": str(nginx_daemon.init_script)}
    done = cluster.run("httpd/start.sh", event, "FAILURE", "HOME", **env)
    assert done.returncode == 1
    assert f"ERROR_DISK from {event}" in lines(done)
    assert nginx_daemon.pid() is None
    assert not accepts(nginx_daemon.port)
    # The 2004 behaviour on request: report, start nothing, succeed.
    done = cluster.run("httpd/start.sh", event, "FAILURE", "HOME", ISMON_DISK_ERROR_EXIT="0", **env)
    assert done.returncode == 0
    assert nginx_daemon.pid() is None


def test_httpd_stop_after_disk_failure_still_stops(
    cluster: Cluster, nginx_daemon: InitDaemon
) -> None:
    env = {"ISMON_HTTPD_INITSCRIPT": str(nginx_daemon.init_script)}
    assert cluster.run("httpd/start.sh", **env).returncode == 0
    master = nginx_daemon.pid()
    assert master is not None
    done = cluster.run("httpd/stop.sh", "FAILOVER", "FAILURE", "OTHER", **env)
    assert done.returncode == 0, done.stdout
    assert "ERROR_DISK from FAILOVER (stopping anyway)" in lines(done)
    wait_until(lambda: not _alive(master), 30, "nginx to end")
    # Stopping a stopped daemon succeeds.
    assert cluster.run("httpd/stop.sh", **env).returncode == 0


def test_not_run_by_the_cluster(cluster: Cluster, nginx_daemon: InitDaemon) -> None:
    env = {"ISMON_HTTPD_INITSCRIPT": str(nginx_daemon.init_script)}
    done = cluster.run("httpd/start.sh", None, **env)
    assert done.returncode == 1
    assert lines(done)[0] == "NO_CLP"
    assert nginx_daemon.pid() is None
    done = cluster.run("httpmon/start.sh", None)
    assert done.returncode == 1
    assert lines(done)[0] == "NO_CLP"
    # Stop scripts stop anyway (nothing runs: success).
    done = cluster.run("httpd/stop.sh", None, **env)
    assert done.returncode == 0
    assert lines(done)[0] == "NO_CLP (stopping anyway)"
    assert cluster.run("httpmon/stop.sh", None).returncode == 0


def test_daemon_failure_fails_the_activation(cluster: Cluster, tmp_path: Path) -> None:
    broken = tmp_path / "init-broken"
    broken.write_text("#!/bin/sh\necho 'cannot bind'\nexit 3\n")
    broken.chmod(0o755)
    done = cluster.run("httpd/start.sh", ISMON_HTTPD_INITSCRIPT=str(broken))
    assert done.returncode == 3
    assert "the HTTP daemon did not start (exit status 3)" in done.stdout
    done = cluster.run("smtpd/stop.sh", ISMON_SMTPD_INITSCRIPT=str(broken))
    assert done.returncode == 3


def test_systemctl_is_used_under_systemd(cluster: Cluster, tmp_path: Path) -> None:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    record = tmp_path / "systemctl.calls"
    (fake / "systemctl").write_text(f'#!/bin/sh\necho "$*" >>"{record}"\nexit ${{FAKE_RC:-0}}\n')
    (fake / "systemctl").chmod(0o755)
    path = f"{fake}:{cluster.env['PATH']}"
    for script in ("httpd/start.sh", "httpd/stop.sh", "smtpd/start.sh", "smtpd/stop.sh"):
        done = cluster.run(script, ISMON_INIT="systemd", PATH=path)
        assert done.returncode == 0, done.stdout
    assert record.read_text().splitlines() == [
        "start nginx.service",
        "stop nginx.service",
        "start postfix.service",
        "stop postfix.service",
    ]
    done = cluster.run(
        "httpd/start.sh", ISMON_INIT="systemd", PATH=path, ISMON_HTTPD_UNIT="apache2", FAKE_RC="1"
    )
    assert done.returncode == 1
    assert "systemctl start apache2" in done.stdout


def test_auto_picks_the_init_script_without_systemd(cluster: Cluster, tmp_path: Path) -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs this machine")
    init = tmp_path / "init-fake"
    init.write_text('#!/bin/sh\necho "fake $1"\n')
    init.chmod(0o755)
    done = cluster.run("httpd/start.sh", ISMON_INIT="auto", ISMON_HTTPD_INITSCRIPT=str(init))
    assert done.returncode == 0
    assert "fake start" in lines(done)


# --------------------------------------------------------------------------
# Monitor resources: the watch in the foreground, watched by its PID


def _watch_opts(port: int) -> str:
    return f"-s 127.0.0.1 -n {port} -i 1 -c 1 -r 1 --syslog-socket none"


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("clp_pop3mon", ""),
        ("clp_imapmon", ""),
        ("clp_ftpmon", ""),
        # Over UDP: the kernel's ICMP refusal is 72 with 111 as well.
        ("clp_dnsmon", " --query www.example.com --expect 192.0.2.1"),
        ("clp_tcpmon", " --send PING\\r\\n --expect \\+PONG"),
    ],
)
def test_watchmon_runs_the_command_it_is_given(cluster: Cluster, command: str, extra: str) -> None:
    """
    The one template of the POP3, IMAP4, FTP, DNS and TCP watches runs the
    command it is given, as the PID the cluster watches: nothing listens, so
    the watch exits 1 with its own protocol's messages.
    """
    port = free_port()
    monitor = cluster.spawn(
        "watchmon/start.sh",
        ISMON_WATCH_ID="mailwatch",
        ISMON_WATCHMON=str(console_script(command)),
        ISMON_WATCH_OPTS=_watch_opts(port) + extra,
    )
    code = monitor.wait(PATIENCE)
    output = monitor.stdout.read()  # type: ignore[union-attr]
    assert code == 1, output
    assert output.splitlines()[:2] == ["NORMAL1", "NORMAL2"]
    assert f"The {command} has detected network error(connect error[111]). [ID:mailwatch]" in output
    done = cluster.run("watchmon/stop.sh", ISMON_WATCH_ID="mailwatch")
    assert done.returncode == 0, done.stdout + done.stderr


def _daemon_and_monitor(
    cluster: Cluster, nginx_daemon: InitDaemon, **extra: str
) -> tuple[dict[str, str], subprocess.Popen[str]]:
    """The httpd pair started: the daemon's environment, and the monitor's script probing."""
    daemon_env = {"ISMON_HTTPD_INITSCRIPT": str(nginx_daemon.init_script)}
    assert cluster.run("httpd/start.sh", **daemon_env).returncode == 0
    monitor = cluster.spawn(
        "httpmon/start.sh",
        ISMON_WATCH_ID="httpwatch",
        ISMON_WATCH_OPTS=_watch_opts(nginx_daemon.port),
        **extra,
    )
    cluster.wait_probing("httpwatch", monitor)
    return daemon_env, monitor


def test_httpmon_ends_when_nginx_stalls(cluster: Cluster, nginx_daemon: InitDaemon) -> None:
    daemon_env, monitor = _daemon_and_monitor(cluster, nginx_daemon)
    # The PID the cluster monitors is the script that waits for the watch:
    # the script ends with the watch's status.
    disp = cluster.ismon("disp", "httpwatch")
    assert disp.returncode == 0
    assert _parent(int(disp.stdout)) == monitor.pid
    assert monitor.poll() is None

    stalled = nginx_daemon.stall()
    started = time.monotonic()
    try:
        code = monitor.wait(30)
        took = time.monotonic() - started
    finally:
        nginx_daemon.resume(stalled)
    output = monitor.stdout.read()  # type: ignore[union-attr]
    assert code == 1, output
    # -i 1 -c 1 -r 1: a timed-out probe, one retry; well within the detection bound.
    assert took < 10, took
    assert output.splitlines()[:2] == ["NORMAL1", "NORMAL2"]
    assert STAMP.search(output)
    # Message 74 with ETIMEDOUT: no answer within the timeout.
    assert "network error(select error[110])" in output, output
    assert cluster.ismon("disp", "httpwatch").returncode == 1

    # The group then stops: the monitor's stop script succeeds (nothing runs),
    # then the daemon's.
    done = cluster.run("httpmon/stop.sh", ISMON_WATCH_ID="httpwatch")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cluster.run("httpd/stop.sh", **daemon_env).returncode == 0
    assert nginx_daemon.pid() is None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize(
    ("event", "server", "restarts"), [("START", "OTHER", "3"), ("FAILOVER", "OTHER", "0")]
)
def test_httpmon_stop_script_stops_the_watch(
    cluster: Cluster, nginx_daemon: InitDaemon, event: str, server: str, restarts: str
) -> None:
    daemon_env = {"ISMON_HTTPD_INITSCRIPT": str(nginx_daemon.init_script)}
    assert cluster.run("httpd/start.sh", event, "SUCCESS", server, **daemon_env).returncode == 0
    monitor = cluster.spawn(
        "httpmon/start.sh",
        event,
        "SUCCESS",
        server,
        ISMON_WATCH_ID="web1",
        ISMON_WATCH_OPTS=_watch_opts(nginx_daemon.port),
        ISMON_RESTARTS=restarts,
    )
    cluster.wait_probing("web1", monitor)
    if restarts == "0":
        # The watch replaced the script (exec): the PID monitored is its own.
        assert cluster.ismon("disp", "web1").stdout == f"{monitor.pid}\n"
    done = cluster.run("httpmon/stop.sh", event, "SUCCESS", server, ISMON_WATCH_ID="web1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert STAMP.search(done.stdout)
    assert monitor.wait(30) == 0
    expected = ["ON_OTHER1"] if event == "START" else ["ON_OTHER2"]
    assert set(expected) <= set(monitor.stdout.read().splitlines())  # type: ignore[union-attr]
    assert cluster.ismon("disp", "web1").returncode == 1
    assert cluster.run("httpd/stop.sh", event, "SUCCESS", server, **daemon_env).returncode == 0


def test_httpmon_starts_again_a_watch_that_failed_by_itself(
    cluster: Cluster, nginx_daemon: InitDaemon
) -> None:
    """
    Exit 4, the monitor itself failed (here: out of descriptors), is no
    failed server: the script starts the watch again and the PID monitor
    sees nothing; too often (ISMON_RESTARTS within the window) and the
    script ends with 4.
    """
    daemon_env, monitor = _daemon_and_monitor(cluster, nginx_daemon, ISMON_RESTARTS="1")
    seen: list[int] = []
    for _ in range(2):
        pid = int(cluster.ismon("disp", "httpwatch").stdout)
        assert pid not in seen
        seen.append(pid)
        limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, limits[1]))
        wait_until(lambda p=pid: not _alive(p), 30, "the watch to end", step=0.2)  # type: ignore[misc]
        if len(seen) == 1:
            cluster.wait_probing("httpwatch", monitor)
            assert monitor.poll() is None
    code = monitor.wait(30)
    output = monitor.stdout.read()  # type: ignore[union-attr]
    assert code == 4, output
    assert (
        "RESTART (exit 4: the monitor itself failed, not the server; 1 of 1 within 600 s)" in output
    )
    assert "EXIT 4 (the monitor itself failed, not the server: 2 times within 600 s)" in output
    assert "has detected system error (socket 24)" in output
    assert "network error" not in output
    assert cluster.run("httpmon/stop.sh", ISMON_WATCH_ID="httpwatch").returncode == 0
    assert cluster.run("httpd/stop.sh", **daemon_env).returncode == 0


def test_httpmon_disk_failure_starts_no_watch(cluster: Cluster) -> None:
    monitor = cluster.spawn("httpmon/start.sh", "FAILOVER", "FAILURE", ISMON_WATCH_ID="httpwatch")
    assert monitor.wait(30) == 1
    assert "ERROR_DISK from FAILOVER" in monitor.stdout.read()  # type: ignore[union-attr]
    assert cluster.ismon("disp", "httpwatch").returncode == 1


@pytest.mark.parametrize("kind", ["httpmon", "smtpmon", "watchmon"])
def test_monitor_stop_succeeds_when_nothing_runs(cluster: Cluster, kind: str) -> None:
    # No state folder at all yet ...
    assert not cluster.state_dir.exists()
    done = cluster.run(f"{kind}/stop.sh")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done)[-1] == "EXIT"
    # ... and an empty one.
    cluster.state_dir.mkdir(mode=0o700)
    for event in ("START", "FAILOVER"):
        assert cluster.run(f"{kind}/stop.sh", event, "FAILURE").returncode == 0


def test_monitor_stop_forces_a_stuck_watch(cluster: Cluster, nginx_daemon: InitDaemon) -> None:
    assert (
        cluster.run(
            "httpd/start.sh", ISMON_HTTPD_INITSCRIPT=str(nginx_daemon.init_script)
        ).returncode
        == 0
    )
    monitor = cluster.spawn(
        "httpmon/start.sh", ISMON_WATCH_ID="stuck", ISMON_WATCH_OPTS=_watch_opts(nginx_daemon.port)
    )
    cluster.wait_probing("stuck", monitor)
    # A watch that does not answer --stop (frozen): the stop script must
    # still get rid of it.
    pid = int(cluster.ismon("disp", "stuck").stdout)
    _kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    done = cluster.run(
        "httpmon/stop.sh", ISMON_WATCH_ID="stuck", ISMON_STOP_WAIT="1", ISMON_KILL_AFTER="2"
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    # The script leaves the escalation to --kill-after (PID-reuse safe).
    assert [line for line in lines(done) if line.endswith(" stuck --stop -r 1 --kill-after 2")]
    assert done.stderr == (
        f"clp_httpmon: watch stuck (PID {pid}) did not end within 1 s: SIGTERM\n"
        f"clp_httpmon: watch stuck (PID {pid}) did not end within 2 s of SIGTERM: SIGKILL\n"
        f"clp_httpmon: watch stuck (PID {pid}) ended after SIGKILL\n"
    )
    # The script ends with the watch's status: killed by SIGKILL.
    assert monitor.wait(30) == 128 + signal.SIGKILL
    assert took < 20
    assert cluster.ismon("disp", "stuck").returncode == 1
    assert (
        cluster.run(
            "httpd/stop.sh", ISMON_HTTPD_INITSCRIPT=str(nginx_daemon.init_script)
        ).returncode
        == 0
    )


def test_monitor_stop_without_force_leaves_a_stuck_watch(
    cluster: Cluster, nginx_daemon: InitDaemon
) -> None:
    daemon_env = {"ISMON_HTTPD_INITSCRIPT": str(nginx_daemon.init_script)}
    assert cluster.run("httpd/start.sh", **daemon_env).returncode == 0
    monitor = cluster.spawn(
        "httpmon/start.sh", ISMON_WATCH_ID="stuck", ISMON_WATCH_OPTS=_watch_opts(nginx_daemon.port)
    )
    cluster.wait_probing("stuck", monitor)
    pid = int(cluster.ismon("disp", "stuck").stdout)
    _kill(pid, signal.SIGSTOP)
    done = cluster.run(
        "httpmon/stop.sh", ISMON_WATCH_ID="stuck", ISMON_STOP_WAIT="1", ISMON_FORCE="no"
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert [line for line in lines(done) if line.endswith(" stuck --stop -r 1")]
    assert done.stderr == "The clp_httpmon has not performed end processing. [ID:stuck]\n"
    assert _alive(pid) and monitor.poll() is None
    _kill(pid, signal.SIGCONT)
    assert cluster.run("httpmon/stop.sh", ISMON_WATCH_ID="stuck").returncode == 0
    assert monitor.wait(10) == 0
    assert cluster.run("httpd/stop.sh", **daemon_env).returncode == 0


def test_smtp_pair(cluster: Cluster, smtp_daemon: InitDaemon) -> None:
    """SMTP daemon and monitor: start, stall (SIGSTOP) -> the monitor ends, stop."""
    daemon_env = {"ISMON_SMTPD_INITSCRIPT": str(smtp_daemon.init_script)}
    done = cluster.run("smtpd/start.sh", "FAILOVER", "SUCCESS", "OTHER", **daemon_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done)[:2] == ["FAILOVER1", "ON_OTHER2"]
    wait_for_port(smtp_daemon.port)

    monitor = cluster.spawn(
        "smtpmon/start.sh",
        "FAILOVER",
        "SUCCESS",
        "OTHER",
        ISMON_WATCH_ID="smtpwatch",
        ISMON_WATCH_OPTS=_watch_opts(smtp_daemon.port),
    )
    cluster.wait_probing("smtpwatch", monitor)
    assert _parent(int(cluster.ismon("disp", "smtpwatch").stdout)) == monitor.pid
    stalled = smtp_daemon.stall()
    try:
        code = monitor.wait(30)
    finally:
        smtp_daemon.resume(stalled)
    output = monitor.stdout.read()  # type: ignore[union-attr]
    assert code == 1, output
    assert "clp_smtpmon" in output

    assert cluster.run("smtpmon/stop.sh", "FAILOVER", ISMON_WATCH_ID="smtpwatch").returncode == 0
    done = cluster.run("smtpd/stop.sh", "FAILOVER", **daemon_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert smtp_daemon.pid() is None


def test_smtp_monitor_stop_script(cluster: Cluster, smtp_daemon: InitDaemon) -> None:
    daemon_env = {"ISMON_SMTPD_INITSCRIPT": str(smtp_daemon.init_script)}
    assert cluster.run("smtpd/start.sh", **daemon_env).returncode == 0
    monitor = cluster.spawn(
        "smtpmon/start.sh",
        ISMON_WATCH_ID="mail",
        ISMON_SMTPMON=f"{console_script('ismon')} smtp",  # the other spelling
        ISMON_WATCH_OPTS=_watch_opts(smtp_daemon.port),
    )
    cluster.wait_probing("mail", monitor)
    done = cluster.run(
        "smtpmon/stop.sh", ISMON_WATCH_ID="mail", ISMON_SMTPMON=f"{console_script('ismon')} smtp"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert monitor.wait(30) == 0
    assert cluster.run("smtpd/stop.sh", **daemon_env).returncode == 0


def test_httpmon_checks_with_spaces_are_one_argument_each(cluster: Cluster, tmp_path: Path) -> None:
    """
    ISMON_EXPECT_HEADER (one per line), ISMON_EXPECT_BODY and
    ISMON_AUTH_FILE reach the watch as one argument each, spaces kept:
    clp_httpmon --check takes them, and refuses a bad regex by its text.
    """
    auth = tmp_path / "auth"
    auth.write_text("user:pass word\n")
    auth.chmod(0o600)
    checks = {
        "ISMON_WATCH_OPTS": "-s 127.0.0.1 -n 80 --method GET --check",
        "ISMON_EXPECT_HEADER": "Server: nginx\nContent-Type: text/html; charset=.*\n",
        "ISMON_EXPECT_BODY": "<title>It works</title>",
        "ISMON_AUTH_FILE": str(auth),
    }
    done = cluster.run("httpmon/start.sh", **checks)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--expect-header Server: nginx --expect-header Content-Type" in done.stdout
    done = cluster.run("httpmon/start.sh", **{**checks, "ISMON_EXPECT_HEADER": "X-A: a b [c"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert '--expect-header "X-A: a b [c" is not a regular expression' in done.stderr
