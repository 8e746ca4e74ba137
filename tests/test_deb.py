"""
The Debian package on a real systemd (README "Install on a node"): built
once per session by C{scripts/build-deb.sh}, installed with apt into a
Debian 12 booted in systemd-nspawn (L{tests.container}), then:

  - lintian finds no error and no warning (the kept ones are overridden
    with their reasons, in debian/ismon.lintian-overrides);
  - apt installs it pulling Debian's packages only, and its maintainer
    scripts need no network (the install runs in an empty network
    namespace once apt has downloaded);
  - every command answers --help;
  - ismon-http@ID becomes active only after the first probe; StatusText
    names the last probe;
  - journald holds the catalogue lines with SYSLOG_IDENTIFIER clp_httpmon;
  - a TLS watch verifies its server inside the unit's sandbox;
  - the watch runs as ismon, root's `ismon status|pause|continue` answer
    for it (its PID is MainPID), and another user is refused;
  - a SIGSTOPped nginx fails the unit with exit status 1 within the bound;
  - a SIGSTOPped watch is killed by systemd's watchdog and started again;
  - a watch that exits 4 (no room: LimitNOFILE=16) is started again 3
    times, then the unit fails (start limit), its reason in the journal;
  - `systemctl stop` ends a unit cleanly, and the other units' records stay;
  - the EXEC templates and the OCF agent, run as root by the cluster, run
    the watch as ismon, and root's commands find it;
  - an upgrade to a higher version keeps the running watch: same PID, and
    it still detects a stall and exits 1 (the new version's modules refuse
    to load into an old process, so a late import would show);
  - purge stops the watches and leaves none of the package's files.

The tests share one container and run in this order.  Root only; they
skip without systemd-nspawn or debootstrap (fail under
ISMON_REQUIRE_SERVERS=1, as scripts/test.sh sets as root).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ismon import __version__
from tests.certs import TestCerts
from tests.container import Container, ContainerUnavailable, base_root, host_mirror
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
UPGRADE_VERSION = f"{__version__}+upgrade1"
COMMANDS = ("ismon", "clp_httpmon", "clp_smtpmon", "clp_pop3mon", "clp_imapmon", "clp_ftpmon")
# -i 1 -c 2 -r 1: a stall is detected within 4 s.
FAST = "-s 127.0.0.1 -n {port} -i 1 -c 2 -r 1"
BOUND = 4.0
# For a loaded 2-core machine: the watch's process ending, systemd noticing,
# and this test's polling, on top of the printed bound.
MARGIN = 6.0

TIMINGS: dict[str, float] = {}


def _unavailable(why: str) -> None:
    if os.environ.get("ISMON_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{why} (ISMON_REQUIRE_SERVERS=1)")
    pytest.skip(why)


def _timed(name: str, started: float) -> None:
    TIMINGS[name] = round(time.monotonic() - started, 1)
    print(f"[test_deb] {name}: {TIMINGS[name]} s")


@pytest.fixture(scope="session")
def deb_package() -> Path:
    """
    dist/ismon_<version>_<arch>.deb, built once per session (or the one
    ISMON_TEST_DEB names: a quicker rerun while working on the tests).
    """
    if os.environ.get("ISMON_TEST_DEB"):
        return Path(os.environ["ISMON_TEST_DEB"])
    if os.geteuid() != 0 or not Path("/usr/bin/dpkg").exists():
        _unavailable("building the .deb needs root on Debian")
    started = time.monotonic()
    built = subprocess.run(
        ["bash", "scripts/build-deb.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1200,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    debs = sorted((ROOT / "dist").glob("ismon_*.deb"))
    assert [p.name for p in debs] == [f"ismon_{__version__}_{_arch()}.deb"], debs
    _timed("build the .deb", started)
    TIMINGS["package size (KiB)"] = debs[0].stat().st_size // 1024
    return debs[0]


def _arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


# Appended to each Python module of the upgrade: it refuses to load into a
# process whose ismon is another version (a running watch of the old one).
_GUARD = """

import sys as _upgrade_sys  # noqa: E402
if getattr(_upgrade_sys.modules.get("ismon"), "__version__", "{new}") != "{new}":
    raise ImportError("ismon {new}: a module of the new version loaded into a running old one")
"""


def repack_upgrade(deb: Path, out: Path, version: str = UPGRADE_VERSION) -> Path:
    """
    C{deb} with a higher version: its control file, ismon.__version__ and
    every module of the venv's ismon and twisted with the guard above.
    """
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True, timeout=120)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control.read_text()))
    site = next((tree / "usr" / "lib" / "ismon" / "lib").glob("python3*/site-packages"))
    init = site / "ismon" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{__version__}"', f'"{version}"'))
    for package in ("ismon", "twisted"):
        for module in (site / package).rglob("*.py"):
            if module != init:
                with open(module, "a") as f:
                    f.write(_GUARD.format(new=version))
    sums = []
    for path in sorted(tree.rglob("*")):
        relative = path.relative_to(tree)
        if path.is_file() and not path.is_symlink() and relative.parts[0] != "DEBIAN":
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            sums.append(f"{digest}  {relative}\n")
    (tree / "DEBIAN" / "md5sums").write_text("".join(sums))
    target = out / f"ismon_{version}_{_arch()}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", str(tree), str(target)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


@pytest.fixture(scope="module")
def node(
    deb_package: Path, tmp_path_factory: pytest.TempPathFactory, certs: TestCerts
) -> Iterator[Container]:
    """
    A booted Debian 12 with nginx (unit testweb) on a free port, and over
    TLS on C{node.tls_port} (certificate for localhost, CA in
    /etc/ismon/ca.pem); the package not yet in.
    """
    started = time.monotonic()
    try:
        base = base_root()
    except ContainerUnavailable as e:
        _unavailable(str(e))
    _timed("base root (cached, or debootstrap)", started)
    container = Container(base, tmp_path_factory.mktemp("node"))
    try:
        container.start()
    except ContainerUnavailable as e:
        container.stop()
        _unavailable(str(e))
    TIMINGS["container copy (overlay)"] = round(container.timings["copy"], 1)
    TIMINGS["container boot"] = round(container.timings["boot"], 1)
    print(f"[test_deb] container boot: {TIMINGS['container boot']} s")
    try:
        port, tls_port = free_port(), free_port()
        container.port = port
        container.tls_port = tls_port
        container.write("/etc/ismon-test/cert.pem", certs.valid.cert.read_text())
        container.write("/etc/ismon-test/key.pem", certs.valid.key.read_text())
        container.write("/etc/ismon/ca.pem", certs.ca.read_text())
        answer = 'location / { return 200 "ok\\n"; }'
        container.write(
            "/etc/ismon-test/nginx.conf",
            "daemon off;\nworker_processes 1;\npid /run/ismon-test-nginx.pid;\n"
            "error_log stderr;\nevents { worker_connections 64; }\n"
            f"http {{ access_log off; server {{ listen 127.0.0.1:{port}; {answer} }}\n"
            f"server {{ listen 127.0.0.1:{tls_port} ssl;"
            " ssl_certificate /etc/ismon-test/cert.pem;"
            f" ssl_certificate_key /etc/ismon-test/key.pem; {answer} }} }}\n",
        )
        container.run("systemd-run", "--unit=testweb", "nginx", "-c", "/etc/ismon-test/nginx.conf")
        yield container
    finally:
        container.stop()


def _env(node: Container, watch_id: str, extra: str = "") -> None:
    port = node.port
    node.write(f"/etc/ismon/{watch_id}.env", f'ISMON_ARGS="{FAST.format(port=port)}{extra}"\n')


def _apt(node: Container, *argv: str, offline: bool = False) -> str:
    """apt-get ARGV -y -q inside (non-interactive); its output."""
    prefix = ["unshare", "--net"] if offline else []
    command = ["env", "DEBIAN_FRONTEND=noninteractive", *prefix, "apt-get", *argv, "-y", "-q"]
    return node.run(*command, timeout=600).stdout


def _status(node: Container, watch_id: str) -> dict[str, object]:
    done = node.run("ismon", "status", watch_id, "--json")
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _signal_nginx(node: Container, name: str) -> None:
    """SIGSTOP or SIGCONT to the test's nginx, master and worker, by PID."""
    node.run(
        "sh",
        "-c",
        'master=$(cat /run/ismon-test-nginx.pid) && kill -s "$1" "$master" $(pgrep -P "$master")',
        "-",
        name,
    )


@pytest.fixture
def web_resumed(node: Container) -> Iterator[None]:
    """nginx runs again after the test, whatever it stopped."""
    yield
    _signal_nginx(node, "CONT")


# -- the package ----------------------------------------------------------------


def test_lintian_finds_no_error_and_no_warning(deb_package: Path) -> None:
    if shutil.which("lintian") is None:
        _unavailable("lintian is not installed")
    started = time.monotonic()
    done = subprocess.run(
        ["lintian", "--fail-on", "error,warning", str(deb_package)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    _timed("lintian", started)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not re.search(r"(?m)^[EW]: ", done.stdout), done.stdout


def test_apt_installs_it_from_debian_alone_and_offline(node: Container, deb_package: Path) -> None:
    started = time.monotonic()
    inside = node.put(deb_package)
    sources = node.run(
        "sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; true"
    )
    # Debian's archive alone, as debootstrap left it.
    assert re.findall(r"(?m)^deb (\S+)", sources.stdout) == [host_mirror()]
    _apt(node, "install", "--download-only", inside)
    # The maintainer scripts run without any network.
    done = _apt(node, "install", inside, offline=True)
    assert "Setting up ismon" in done, done
    _timed("apt-get install", started)
    assert node.run("dpkg-query", "-W", "-f=${Status}", "ismon").stdout == "install ok installed"
    assert node.run("id", "-un", "ismon").stdout.strip() == "ismon"
    assert node.run("stat", "-c", "%U %a", "/run/ismon").stdout.split() == ["ismon", "700"]


def test_every_command_answers_help(node: Container) -> None:
    for command in (*COMMANDS, "/usr/lib/ismon/bin/twistd"):
        done = node.run(command, "--help", check=False)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip(), command
    plugins = node.run("/usr/lib/ismon/bin/twistd", "--help", user="ismon").stdout
    assert "ismon-http" in plugins and "ismon-ftp" in plugins
    assert node.run("man", "-w", "clp_httpmon", check=False).returncode in (0, 16, 127)
    for page in COMMANDS:
        assert (
            node.run("test", "-f", f"/usr/share/man/man8/{page}.8.gz", check=False).returncode == 0
        )
    agent = node.run("test", "-x", "/usr/lib/ocf/resource.d/ismon/ismon", check=False)
    assert agent.returncode == 0
    completion = "/usr/share/bash-completion/completions/clp_ftpmon"
    assert node.run("test", "-e", completion, check=False).returncode == 0
    completed = node.run(
        "bash",
        "-c",
        "source /usr/share/bash-completion/completions/ismon;"
        " COMP_WORDS=(ismon sta); COMP_CWORD=1; _ismon; echo ${COMPREPLY[*]};"
        " COMP_WORDS=(clp_httpmon web1 --ins); COMP_CWORD=2; _ismon; echo ${COMPREPLY[*]}",
    )
    assert completed.stdout.split() == ["status", "--insecure"], completed


# -- a unit ---------------------------------------------------------------------


def test_the_unit_is_active_only_after_the_first_probe(node: Container) -> None:
    _env(node, "web1", " --grace 3")
    node.run("systemctl", "start", "--no-block", "ismon-http@web1")
    started = time.monotonic()
    seen_activating = False
    while True:
        state = node.show("ismon-http@web1", "ActiveState", "StatusText")
        if state["ActiveState"] == "activating":
            seen_activating = True
        elif state["ActiveState"] == "active":
            # Read after the state, and probes only grow: active => probed.
            assert int(str(_status(node, "web1")["probes"])) >= 1
            break
        assert time.monotonic() - started < 30, state
        time.sleep(0.1)
    assert seen_activating
    assert time.monotonic() - started >= 2.5  # --grace 3: no probe, no READY
    status = _status(node, "web1")
    assert int(str(status["probes"])) >= 1
    text = node.show("ismon-http@web1", "StatusText")["StatusText"]
    assert text.startswith("last probe ok in "), text
    assert "HTTP/1.1 200" in text
    _timed("unit active (grace 3 s)", started)


def test_journald_holds_the_catalogue_lines(node: Container) -> None:
    deadline = time.monotonic() + 30
    while True:
        lines = node.run(
            "journalctl", "-u", "ismon-http@web1", "-o", "json", "--no-pager"
        ).stdout.splitlines()
        entries = [json.loads(line) for line in lines]
        ours = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "clp_httpmon"]
        texts = [e["MESSAGE"] for e in ours]
        if any("has started watching HTTP. [ID:web1]" in t for t in texts):
            break
        assert time.monotonic() < deadline, entries
        time.sleep(0.2)
    assert "The clp_httpmon is going to watch HTTP daemon. [ID:web1]" in texts
    assert all(e.get("SYSLOG_FACILITY") == "3" for e in ours)  # daemon
    # Once: syslog only, no copy of the same line from stdout.
    assert texts.count("The clp_httpmon has started watching HTTP. [ID:web1]") == 1


def test_the_watch_runs_as_ismon_and_root_controls_it(node: Container) -> None:
    main = int(node.show("ismon-http@web1", "MainPID")["MainPID"])
    assert main > 0
    user = node.run("ps", "-o", "user=", "-p", str(main)).stdout.strip()
    assert user == "ismon"
    assert _status(node, "web1")["pid"] == main
    shown = node.run("ismon", "status", "web1").stdout
    assert shown.startswith(f"web1: watching (http://127.0.0.1:{node.port}/ HTTP/1.1), pid {main}")
    assert "going to stop monitoring" in node.run("ismon", "pause", "web1").stdout
    assert _status(node, "web1")["state"] == "paused"
    assert "going to monitor" in node.run("ismon", "continue", "web1").stdout
    assert node.run("clp_httpmon", "web1", "--disp").stdout.strip() == str(main)
    listed = json.loads(node.run("ismon", "status", "--json").stdout)
    assert {"watch_id": "web1", "pid": main, "running": True} in listed
    refused = node.run(
        "ismon", "status", "web1", "--state-dir", "/run/ismon", user="65534", check=False
    )
    assert refused.returncode == 4, refused
    security = node.run("systemd-analyze", "security", "ismon-http@web1.service", "--no-pager")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert match, security.stdout
    TIMINGS["systemd-analyze security exposure"] = float(match.group(1))
    print(f"[test_deb] systemd-analyze security: {match.group(1)}")
    assert float(match.group(1)) <= 3.0


def test_a_tls_watch_verifies_its_server_under_the_units_hardening(node: Container) -> None:
    """pyOpenSSL's verify callback works in the sandbox (README "Install on a node")."""
    tls = node.tls_port
    node.write(
        "/etc/ismon/tls1.env",
        f'ISMON_ARGS="-s localhost -n {tls} -i 1 -c 2 -r 2 --tls --ca-file /etc/ismon/ca.pem"\n',
    )
    node.run("systemctl", "start", "ismon-http@tls1", timeout=60)
    text = node.show("ismon-http@tls1", "StatusText")["StatusText"]
    assert text.startswith("last probe ok in "), text
    node.run("systemctl", "stop", "ismon-http@tls1")


def test_a_stalled_nginx_fails_the_unit_within_the_bound(
    node: Container, web_resumed: None
) -> None:
    _env(node, "web2")
    node.run("systemctl", "start", "ismon-http@web2")
    assert node.run("ismon", "status", "web2").returncode == 0
    started = time.monotonic()
    _signal_nginx(node, "STOP")
    elapsed = node.wait_for("ismon-http@web2", ["failed", "inactive"], BOUND + MARGIN)
    TIMINGS["stall to unit failed (bound 4 s)"] = round(elapsed, 2)
    print(f"[test_deb] stall -> failed: {elapsed:.2f} s")
    shown = node.show("ismon-http@web2", "ActiveState", "Result", "ExecMainStatus")
    assert shown == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "1"}
    assert time.monotonic() - started <= BOUND + MARGIN
    record = node.run("ismon", "status", "web2", check=False)
    assert record.returncode == 1
    assert (
        "last exit 1 (the server failed: The clp_httpmon has detected network error"
        in record.stdout
    )


def test_a_stopped_watch_is_killed_by_the_watchdog(node: Container) -> None:
    _env(node, "web3")
    node.write(
        "/etc/systemd/system/ismon-http@web3.service.d/watchdog.conf", "[Service]\nWatchdogSec=3s\n"
    )
    node.run("systemctl", "daemon-reload")
    node.run("systemctl", "start", "ismon-http@web3")
    main = node.show("ismon-http@web3", "MainPID")["MainPID"]
    started = time.monotonic()
    node.run("kill", "-STOP", main)
    # Killed by the watchdog, then started again (Restart=on-failure): a
    # stalled loop is the monitor's failure, not the server's.
    elapsed = node.wait_for("ismon-http@web3", ["1"], 3 + MARGIN, prop="NRestarts")
    TIMINGS["SIGSTOP to watchdog kill (WatchdogSec 3 s)"] = round(elapsed, 2)
    print(f"[test_deb] watchdog: {elapsed:.2f} s")
    assert time.monotonic() - started <= 3 + MARGIN
    node.wait_for("ismon-http@web3", ["active"], 10 + MARGIN)
    again = node.show("ismon-http@web3", "MainPID", "NRestarts")
    assert again["MainPID"] not in ("0", main), again
    assert again["NRestarts"] == "1", again
    node.run("systemctl", "stop", "ismon-http@web3")


def test_a_watch_without_room_is_restarted_then_the_unit_fails(node: Container) -> None:
    """
    Exit 4 (the monitor itself failed: here a descriptor limit that leaves
    no room to watch) starts the watch again, 3 times within the start
    limit; then the unit fails, and the journal says why.
    """
    _env(node, "web8")
    node.write(
        "/etc/systemd/system/ismon-http@web8.service.d/nofile.conf",
        "[Service]\nLimitNOFILE=16\n",
    )
    node.run("systemctl", "daemon-reload")
    node.run("systemctl", "start", "ismon-http@web8", check=False)
    # Started 4 times (3 restarts); the 4th restart is refused by the start
    # limit ("Start request repeated too quickly"; systemd 252 counts it in
    # NRestarts and keeps Result=exit-code) and the unit stays failed.
    node.wait_for("ismon-http@web8", ["4"], 15 + MARGIN, prop="NRestarts")
    node.wait_for("ismon-http@web8", ["failed"], 5 + MARGIN)
    shown = node.show("ismon-http@web8", "SubState", "ExecMainStatus")
    assert shown == {"SubState": "failed", "ExecMainStatus": "4"}, shown
    journal = node.run("journalctl", "-u", "ismon-http@web8", "--no-pager").stdout
    refusal = "The clp_httpmon has detected system error (nofile 24). [ID:web8]"
    assert journal.count(refusal) == 4, journal
    assert "Start request repeated too quickly" in journal, journal
    assert "Traceback" not in journal


def test_systemctl_stop_ends_the_unit_cleanly(node: Container) -> None:
    for watch_id in ("web4", "web6"):
        _env(node, watch_id)
        node.run("systemctl", "start", f"ismon-http@{watch_id}")
    started = time.monotonic()
    node.run("systemctl", "stop", "ismon-http@web4")
    _timed("systemctl stop", started)
    shown = node.show("ismon-http@web4", "ActiveState", "Result", "ExecMainStatus")
    assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    assert (
        "last exit 0 (stopped on request)"
        in node.run("ismon", "status", "web4", check=False).stdout
    )
    # Another unit's records survive this one's stop (RuntimeDirectoryPreserve).
    files = node.run("ls", "/run/ismon").stdout.split()
    assert {"web6.lock", "web6.pid", "web6.sock"} <= set(files), files
    assert _status(node, "web6")["state"] == "watching"


def test_the_exec_templates_run_the_watch_as_ismon(node: Container) -> None:
    """
    /usr/share/ismon/exec/httpmon as CLUSTERPRO runs it (as root, the start
    script asynchronous): the watch runs as the script's child, as the user
    ismon; root's control commands find it, and the stop script ends it.
    """
    env = [
        "CLP_EVENT=START",
        "CLP_DISK=SUCCESS",
        "CLP_SERVER=HOME",
        "ISMON_WATCH_ID=execweb",
        f"ISMON_WATCH_OPTS={FAST.format(port=node.port)}",
    ]
    node.run(
        "systemd-run",
        "--unit=clp-httpmon",
        *(f"--setenv={e}" for e in env),
        "/usr/share/ismon/exec/httpmon/start.sh",
    )
    deadline = time.monotonic() + 30
    while node.run("ismon", "status", "execweb", check=False).returncode != 0:
        assert time.monotonic() < deadline, node.run("journalctl", "-u", "clp-httpmon").stdout
        time.sleep(0.2)
    main = int(node.show("clp-httpmon", "MainPID")["MainPID"])
    pid = _status(node, "execweb")["pid"]
    # The watch is the start script's child, so that the script can start
    # it again after an exit 4 (ISMON_RESTARTS); setpriv execs it.
    assert int(node.run("ps", "-o", "ppid=", "-p", str(pid)).stdout) == main
    assert node.run("ps", "-o", "user=", "-p", str(pid)).stdout.strip() == "ismon"
    stopped = node.run(
        "env", *env[:3], "ISMON_WATCH_ID=execweb", "/usr/share/ismon/exec/httpmon/stop.sh"
    )
    assert "EXIT" in stopped.stdout
    node.wait_for("clp-httpmon", ["inactive", "failed"], 30)
    assert node.show("clp-httpmon", "ExecMainStatus")["ExecMainStatus"] == "0"


def test_the_ocf_agent_runs_the_watch_as_ismon(node: Container) -> None:
    """ocf:ismon:ismon as Pacemaker runs it (root): start, monitor, stop."""
    started = time.monotonic()
    _apt(node, "install", "--no-install-recommends", "resource-agents")
    _timed("apt-get install resource-agents", started)
    agent = "/usr/lib/ocf/resource.d/ismon/ismon"
    env = [
        "env",
        "OCF_ROOT=/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE=webwatch",
        "OCF_RESKEY_protocol=http",
        "OCF_RESKEY_watch_id=ocfweb",
        "OCF_RESKEY_server=127.0.0.1",
        f"OCF_RESKEY_port={node.port}",
        "OCF_RESKEY_interval=1",
        "OCF_RESKEY_retries=2",
        "OCF_RESKEY_timeout=1",
    ]
    for action, code in (("validate-all", 0), ("monitor", 7), ("start", 0), ("monitor", 0)):
        done = node.run(*env, agent, action, check=False)
        assert done.returncode == code, (action, done)
    status = _status(node, "ocfweb")
    assert node.run("ps", "-o", "user=", "-p", str(status["pid"])).stdout.strip() == "ismon"
    assert node.run(*env, agent, "stop", check=False).returncode == 0
    assert node.run(*env, agent, "monitor", check=False).returncode == 7


# -- upgrade and purge ----------------------------------------------------------


def test_an_upgrade_keeps_the_running_watch(
    node: Container, deb_package: Path, tmp_path: Path, web_resumed: None
) -> None:
    for watch_id in ("web5", "web6"):  # web6 may run already: start is then a no-op
        _env(node, watch_id)
        node.run("systemctl", "start", f"ismon-http@{watch_id}")
    before = {w: node.show(f"ismon-http@{w}", "MainPID")["MainPID"] for w in ("web6", "web5")}
    started = time.monotonic()
    upgrade = node.put(repack_upgrade(deb_package, tmp_path))
    done = _apt(node, "install", upgrade)
    _timed("upgrade (repack + apt-get install)", started)
    assert f"Unpacking ismon ({UPGRADE_VERSION}) over ({__version__})" in done, done
    assert node.run("dpkg-query", "-W", "-f=${Version}", "ismon").stdout == UPGRADE_VERSION
    after = {w: node.show(f"ismon-http@{w}", "MainPID")["MainPID"] for w in ("web6", "web5")}
    assert after == before
    for watch_id in before:
        assert node.show(f"ismon-http@{watch_id}", "ActiveState")["ActiveState"] == "active"
    # The new commands talk to the old watch...
    assert _status(node, "web5")["pid"] == int(before["web5"])
    assert node.run("ismon", "--version").stdout.strip() == f"ismon {UPGRADE_VERSION}"
    # The guard works: a module of the new version refuses an old ismon.
    mixed = node.run(
        "/usr/lib/ismon/bin/python",
        "-c",
        "import sys, types; old = types.ModuleType('ismon'); old.__version__ = 'old';"
        " sys.modules['ismon'] = old; import twisted.internet.tcp",
        check=False,
    )
    assert "a module of the new version loaded into a running old one" in mixed.stderr, mixed
    # ... which still detects a stall and exits 1, loading nothing new.
    _signal_nginx(node, "STOP")
    node.wait_for("ismon-http@web5", ["failed", "inactive"], BOUND + MARGIN)
    shown = node.show("ismon-http@web5", "Result", "ExecMainStatus", "ExecMainPID")
    assert shown == {"Result": "exit-code", "ExecMainStatus": "1", "ExecMainPID": before["web5"]}
    journal = node.run("journalctl", "-u", "ismon-http@web5", "--no-pager").stdout
    assert "has detected network error(select error[110]). [ID:web5]" in journal
    assert "ImportError" not in journal and "Traceback" not in journal


def test_purge_leaves_none_of_the_packages_files(node: Container) -> None:
    listed = node.run("dpkg", "-L", "ismon").stdout.split("\n")
    shared = {"/", "/etc", "/lib", "/lib/systemd", "/lib/systemd/system", "/usr", "/usr/bin",
              "/usr/lib", "/usr/share", "/usr/share/doc", "/usr/share/man", "/usr/share/man/man8",
              "/usr/lib/tmpfiles.d", "/usr/share/bash-completion",
              "/usr/share/bash-completion/completions", "/usr/lib/ocf", "/usr/lib/ocf/resource.d",
              "/usr/share/lintian", "/usr/share/lintian/overrides", "/etc/ismon"}  # fmt: skip
    ours = [p for p in listed if p and p != "/." and p not in shared]
    assert "/usr/lib/ismon/bin/ismon" in ours
    _env(node, "web7")
    node.run("systemctl", "start", "ismon-http@web7")
    assert node.run("pgrep", "-u", "ismon").stdout.strip()
    started = time.monotonic()
    _apt(node, "purge", "ismon")
    _timed("apt-get purge", started)
    left = node.run(
        "sh",
        "-c",
        'for p in "$@"; do [ -e "$p" ] || [ -L "$p" ] && echo "$p"; done; true',
        "-",
        *ours,
        "/run/ismon",
        "/var/log/ismon",
    )
    assert left.stdout.split() == []
    assert node.run("pgrep", "-u", "ismon", check=False).stdout == ""
    active = node.run(
        "systemctl", "list-units", "--plain", "--no-legend", "--state=active", "ismon-*"
    ).stdout
    assert active.strip() == ""
    # What stays: the admin's files (env files, a CA), and the user (Debian
    # keeps system users).
    kept = node.run("ls", "/etc/ismon").stdout.split()
    assert kept and all(name.endswith(".env") or name == "ca.pem" for name in kept), kept
    assert node.run("id", "-u", "ismon", check=False).returncode == 0
    print(f"[test_deb] timings: {json.dumps(TIMINGS)}")
