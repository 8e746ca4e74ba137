"""
The OCF resource agent scripts/ocf/ismon, run the way Pacemaker's executor
runs it (OCF_ROOT, OCF_RESKEY_* in the environment, the action as $1),
against real servers; and ocf-tester from Debian's resource-agents.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ismon.cmdline.options import OPTIONS
from tests.conftest import FreshDnsTcpServers, FreshServers
from tests.conftest import installed_script as console_script
from tests.procs import alive as _alive
from tests.procs import signal_pid as _kill
from tests.procs import wait_until
from tests.servers import Aiosmtpd, Nginx, free_port

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "scripts" / "ocf" / "ismon"
OCF_ROOT = Path("/usr/lib/ocf")
SHELLFUNCS = OCF_ROOT / "lib" / "heartbeat" / "ocf-shellfuncs"
DTD = Path("/usr/share/resource-agents/ra-api-1.dtd")

OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7

pytestmark = pytest.mark.integration

needs_resource_agents = pytest.mark.skipif(
    not SHELLFUNCS.exists(), reason="resource-agents is not installed (no ocf-shellfuncs)"
)


class Agent:
    """Runs the agent with a resource's parameters, as pacemaker-execd does."""

    def __init__(self, tmp_path: Path, resource: str, **params: str) -> None:
        self.state_dir = tmp_path / "state"
        self.rsctmp = tmp_path / "rsctmp"
        self.rsctmp.mkdir(exist_ok=True)
        self.resource = resource
        self.params = {
            "state_dir": str(self.state_dir),
            "syslog_socket": "none",
            "binary": str(console_script("ismon")),
            **params,
        }
        self.ismon = console_script("ismon")

    def env(self, check_level: str | None = None, **meta: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OCF_", "ISMON_", "NOTIFY_SOCKET", "HA_"))
        }
        env.update(
            {
                "OCF_ROOT": str(OCF_ROOT),
                "OCF_RESOURCE_INSTANCE": self.resource,
                "OCF_RESOURCE_TYPE": "ismon",
                "OCF_RESOURCE_PROVIDER": "ismon",
                "OCF_RA_VERSION_MAJOR": "1",
                "OCF_RA_VERSION_MINOR": "0",
                "HA_RSCTMP": str(self.rsctmp),
                # Pacemaker's executor: a plain PATH, no pip bin dir.
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                # Keep ocf_log off the test's syslog.
                "HA_LOGFACILITY": "none",
                "HA_LOGFILE": str(self.rsctmp / "agent.log"),
            }
        )
        env.update({f"OCF_RESKEY_{k}": v for k, v in self.params.items()})
        env.update({f"OCF_RESKEY_CRM_meta_{k}": v for k, v in meta.items()})
        if check_level is not None:
            env["OCF_CHECK_LEVEL"] = check_level
        return env

    def __call__(
        self, action: str, *, check_level: str | None = None, run_timeout: float = 90, **meta: str
    ) -> subprocess.CompletedProcess[str]:
        """Run C{action}; C{meta} become OCF_RESKEY_CRM_meta_* (timeout in ms, interval)."""
        meta.setdefault("timeout", "30000")
        meta.setdefault("interval", "0" if action != "monitor" else "10000")
        return subprocess.run(
            [str(AGENT), action],
            env=self.env(check_level, **meta),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=run_timeout,
        )

    def rc(self, action: str, **meta: str) -> int:
        return self(action, **meta).returncode

    def watch_id(self) -> str:
        return self.params.get("watch_id") or re.sub("[^A-Za-z0-9]", "", self.resource)

    def watch_pid(self) -> int | None:
        done = subprocess.run(
            [str(self.ismon), "disp", self.watch_id(), "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return int(done.stdout) if done.returncode == 0 else None

    def status(self) -> str:
        done = subprocess.run(
            [str(self.ismon), "status", self.watch_id(), "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout

    def cleanup(self) -> None:
        pid = self.watch_pid() if self.state_dir.exists() else None
        if pid is not None:
            _kill(pid, signal.SIGCONT)
            self("stop", timeout="20000")
            if _alive(pid):
                _kill(pid, signal.SIGKILL)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[Agent]]:
    """Agents made in a test; whatever they started is stopped afterwards."""
    made: list[Agent] = []
    yield made
    for agent in made:
        agent.cleanup()


def make(agents: list[Agent], tmp_path: Path, resource: str, **params: str) -> Agent:
    agent = Agent(tmp_path, resource, **params)
    agents.append(agent)
    return agent


def http_params(server: Nginx) -> dict[str, str]:
    return {
        "protocol": "http",
        "server": "127.0.0.1",
        "port": str(server.port),
        "interval": "1",
        "retries": "1",
        "timeout": "1",
    }


# --------------------------------------------------------------------------
# meta-data


def _metadata() -> str:
    done = subprocess.run(
        [str(AGENT), "meta-data"],
        env={**os.environ, "OCF_ROOT": str(OCF_ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_resource_agents
def test_metadata_is_valid_against_ra_api_dtd(tmp_path: Path) -> None:
    xml = _metadata()
    root = ET.fromstring(xml)
    assert root.tag == "resource-agent"
    assert root.get("name") == "ismon"
    if shutil.which("xmllint") is None:
        pytest.skip(
            "xmllint is not installed (apt-get install libxml2-utils): checked well-formed only"
        )
    if not DTD.exists():
        pytest.skip(f"{DTD} is missing: checked well-formed only")
    (tmp_path / "meta.xml").write_text(xml)
    done = subprocess.run(
        ["xmllint", "--noout", "--dtdvalid", str(DTD), str(tmp_path / "meta.xml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def _cli_options() -> set[str]:
    """Every option of a watch (every protocol), as agent parameter names."""
    # Actions and options of the control commands, not of a watch.
    not_watch_options = {
        *("stop", "pause", "continue", "disp", "del", "check", "kill-after"),
        *("help", "version"),
    }
    names: set[str] = set()
    for options in OPTIONS.values():
        for flag in options.optFlags:
            names.add(str(flag[0]))
        for parameter in options.optParameters:
            names.add(str(parameter[0]))
        # Repeatable options are opt_* methods (--expect-header, --expect).
        names |= {n[4:].replace("_", "-") for n in vars(options) if n.startswith("opt_")}
    return {n.replace("-", "_") for n in names - not_watch_options}


@needs_resource_agents
def test_metadata_has_a_parameter_for_every_watch_option() -> None:
    root = ET.fromstring(_metadata())
    parameters = {p.get("name"): p for p in root.iter("parameter")}
    # The CLI's long names, with the agent's spelling for the two renamed ones.
    wanted = _cli_options()
    assert wanted <= set(parameters), wanted - set(parameters)
    assert {"protocol", "watch_id", "binary"} <= set(parameters)
    for name in (
        "protocol",
        "watch_id",
        "server",
        "port",
        "interval",
        "retries",
        "timeout",
        "http_version",
        "uri",
        "retry_interval",
        "grace",
        "tls",
        "starttls",
        "ca_file",
        "servername",
        "insecure",
        "expect_status",
        "state_dir",
        "binary",
    ):
        assert name in parameters, name
        content = parameters[name].find("content")
        assert content is not None
    booleans = {
        name
        for name, p in parameters.items()
        if p.find("content").get("type") == "boolean"  # type: ignore[union-attr]
    }
    assert booleans == {"tls", "starttls", "insecure", "debug", "tcp"}
    actions = {a.get("name"): a for a in root.iter("action")}
    assert {"start", "stop", "monitor", "meta-data", "validate-all"} <= set(actions)


# --------------------------------------------------------------------------
# ocf-tester


@needs_resource_agents
def test_ocf_tester_passes(nginx: Nginx, tmp_path: Path) -> None:
    tester = shutil.which("ocf-tester") or "/usr/sbin/ocf-tester"
    if not os.path.exists(tester):
        pytest.skip("ocf-tester is not installed (apt-get install resource-agents)")
    if shutil.which("xmllint") is None:
        pytest.skip("ocf-tester needs xmllint (apt-get install libxml2-utils)")
    # ocf-tester runs "meta-data" as nobody: give it a copy it can reach.
    public = Path(tempfile.mkdtemp(prefix="ismon-ocf-"))
    try:
        public.chmod(0o755)
        agent = public / "ismon"
        shutil.copy2(AGENT, agent)
        agent.chmod(0o755)
        state_dir = tmp_path / "state"
        rsctmp = tmp_path / "rsctmp"
        rsctmp.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OCF_", "ISMON_"))}
        env.update({"HA_RSCTMP": str(rsctmp), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        argv = [tester, "-n", "ismontest"]
        for key, value in {
            "protocol": "http",
            "watch_id": "ocftester",
            "server": "127.0.0.1",
            "port": str(nginx.port),
            "interval": "1",
            "state_dir": str(state_dir),
            "syslog_socket": "none",
            "binary": str(console_script("ismon")),
        }.items():
            argv += ["-o", f"{key}={value}"]
        done = subprocess.run(
            [*argv, str(agent)], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "passed all tests" in done.stdout
        # Nothing left running, no failure record left behind.
        assert not [p for p in rsctmp.iterdir() if p.suffix in (".rc", ".wrapper")]
    finally:
        shutil.rmtree(public, ignore_errors=True)


# --------------------------------------------------------------------------
# Actions, one by one


@needs_resource_agents
def test_lifecycle_and_server_failure(
    agents: list[Agent], tmp_path: Path, fresh_servers: FreshServers
) -> None:
    server = fresh_servers.nginx(tls=False)
    agent = make(agents, tmp_path, "webwatch", watch_id="web", **http_params(server))
    assert agent.rc("validate-all") == OCF_SUCCESS
    assert agent.rc("monitor", interval="0") == OCF_NOT_RUNNING  # probe
    started = time.monotonic()
    done = agent("start")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert time.monotonic() - started < 60  # within the start action's default timeout
    # start returned only once the watch probes.
    assert "probes 0," not in agent.status()
    pid = agent.watch_pid()
    assert pid is not None
    assert agent.rc("monitor") == OCF_SUCCESS
    assert agent.rc("monitor", interval="0") == OCF_SUCCESS
    assert agent("monitor", check_level="10").returncode == OCF_SUCCESS
    # A second start of a running resource succeeds, same watch.
    assert agent.rc("start") == OCF_SUCCESS
    assert agent.watch_pid() == pid

    # The server stalls: the watch exits (server failed) and monitor says so.
    with server.stalled():
        wait_until(lambda: agent.watch_pid() is None, 30, "the watch to give up")
        done = agent("monitor")
    assert done.returncode == OCF_ERR_GENERIC, done.stderr
    assert "server failed" in done.stderr
    assert "ocf-exit-reason:" in done.stderr
    # ... and keeps saying so until Pacemaker stops the resource.
    assert agent.rc("monitor") == OCF_ERR_GENERIC
    assert agent.rc("stop") == OCF_SUCCESS
    assert agent.rc("monitor") == OCF_NOT_RUNNING
    assert agent.rc("stop") == OCF_SUCCESS

    # Recovery: start again, now the server answers.
    assert agent.rc("start") == OCF_SUCCESS
    assert agent.rc("monitor") == OCF_SUCCESS
    assert agent.rc("stop") == OCF_SUCCESS
    assert agent.watch_pid() is None
    assert agent.rc("monitor") == OCF_NOT_RUNNING


@needs_resource_agents
def test_clean_stop_outside_pacemaker_is_not_running(
    agents: list[Agent], tmp_path: Path, nginx: Nginx
) -> None:
    agent = make(agents, tmp_path, "web-watch:0", **http_params(nginx))
    assert agent.watch_id() == "webwatch0"  # derived from the resource name
    assert agent.rc("start") == OCF_SUCCESS
    assert agent.watch_pid() is not None
    subprocess.run(
        [str(agent.ismon), "stop", "webwatch0", "--state-dir", str(agent.state_dir)],
        check=True,
        timeout=30,
    )
    assert agent.rc("monitor") == OCF_NOT_RUNNING
    assert agent.rc("stop") == OCF_SUCCESS


@needs_resource_agents
def test_stop_escalates_to_kill_within_the_timeout(
    agents: list[Agent], tmp_path: Path, nginx: Nginx
) -> None:
    agent = make(agents, tmp_path, "frozen", **http_params(nginx))
    assert agent.rc("start") == OCF_SUCCESS
    pid = agent.watch_pid()
    assert pid is not None
    # A watch that cannot answer its control socket.
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    done = agent("stop", timeout="12000")
    took = time.monotonic() - started
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert took < 12, took
    assert not _alive(pid)
    assert agent.rc("monitor") == OCF_NOT_RUNNING
    # The stop went through `ismon stop --kill-after` (4 s, then 2 s of
    # SIGTERM for a 12 s timeout), whose lines reach the log.
    log = (agent.rsctmp / "agent.log").read_text()
    for line in (
        f"ismon: watch frozen (PID {pid}) did not end within 4 s: SIGTERM",
        f"ismon: watch frozen (PID {pid}) did not end within 2 s of SIGTERM: SIGKILL",
        f"ismon: watch frozen (PID {pid}) ended after SIGKILL",
    ):
        assert line in log, log


@needs_resource_agents
def test_a_watch_id_ismon_refuses_is_a_configuration_error(tmp_path: Path) -> None:
    agent = Agent(tmp_path, "bad", watch_id="bad-id")
    for action in ("monitor", "stop"):
        done = agent(action)
        assert done.returncode == OCF_ERR_CONFIGURED, (action, done.stderr)
        assert "ocf-exit-reason:Invalid parameter in the ismon. [ID:?]" in done.stderr


@needs_resource_agents
def test_start_refused_by_the_watch_is_a_configuration_error(
    agents: list[Agent], tmp_path: Path, nginx: Nginx
) -> None:
    # Refused by ismon's parser (--check, exit 2): validate-all and start
    # say so with ismon's own line, and nothing is started.
    agent = make(agents, tmp_path, "refused", expect_status="600-700", **http_params(nginx))
    refusal = (
        "ocf-exit-reason:Invalid parameter in the clp_httpmon. [ID:refused] --expect-status"
        " must be status codes or ranges within 100-599 such as 200-399,401, not"
        ' "600-700" (see --help)'
    )
    for action in ("validate-all", "start"):
        done = agent(action)
        assert done.returncode == OCF_ERR_CONFIGURED, done.stderr
        assert refusal in done.stderr.splitlines(), done.stderr
    assert not agent.state_dir.exists()
    assert agent.rc("monitor") == OCF_NOT_RUNNING
    assert agent.rc("stop") == OCF_SUCCESS


@needs_resource_agents
def test_a_watch_started_by_hand_with_the_same_id_counts_as_running(
    agents: list[Agent], tmp_path: Path, nginx: Nginx
) -> None:
    agent = make(agents, tmp_path, "byhand", watch_id="byhand", **http_params(nginx))
    agent.state_dir.mkdir(mode=0o700)
    by_hand = subprocess.Popen(
        [
            str(agent.ismon),
            "http",
            "byhand",
            "-s",
            "127.0.0.1",
            "-n",
            str(nginx.port),
            "--state-dir",
            str(agent.state_dir),
            "--syslog-socket",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: agent.watch_pid() == by_hand.pid, 30, "the watch by hand")
        assert agent.rc("monitor") == OCF_SUCCESS
        assert agent.rc("start") == OCF_SUCCESS  # already running
        assert agent.rc("stop") == OCF_SUCCESS
        assert by_hand.wait(30) == 0
    finally:
        if by_hand.poll() is None:
            by_hand.kill()
            by_hand.wait()


@needs_resource_agents
def test_start_of_a_watch_that_cannot_run(
    agents: list[Agent], tmp_path: Path, nginx: Nginx
) -> None:
    # A state folder that is unusable (a file): the watch exits 4 at once.
    bad = tmp_path / "not-a-folder"
    bad.write_text("")
    agent = make(agents, tmp_path, "broken", **http_params(nginx))
    agent.params["state_dir"] = str(bad)
    done = agent("start")
    assert done.returncode == OCF_ERR_GENERIC, done.stderr
    assert "did not start" in done.stderr
    assert agent.rc("stop") == OCF_SUCCESS


def _run_out_of_descriptors(pid: int) -> None:
    """The watch can open no descriptor more: it exits 4 (the monitor's own failure)."""
    import resource

    resource.prlimit(
        pid, resource.RLIMIT_NOFILE, (3, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1])
    )


@needs_resource_agents
def test_the_monitors_own_failure_restarts_the_watch_not_the_group(
    agents: list[Agent], tmp_path: Path, nginx: Nginx
) -> None:
    """
    Exit 4 says the monitor failed, not the server: monitor starts the watch
    again and succeeds (no failover of a healthy service), up to
    watch_restarts times within the window; then it fails, saying why.
    """
    agent = make(agents, tmp_path, "ownfail", watch_restarts="1", **http_params(nginx))
    assert agent.rc("start") == OCF_SUCCESS
    first = agent.watch_pid()
    assert first is not None
    _run_out_of_descriptors(first)
    wait_until(lambda: not _alive(first), 30, "the watch to end with exit 4")
    done = agent("monitor")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert "the monitor itself failed" in (agent.rsctmp / "agent.log").read_text()
    second = wait_until(lambda: agent.watch_pid(), 30, "the watch to be started again")
    assert second != first
    assert agent.rc("monitor") == OCF_SUCCESS
    assert (agent.rsctmp / "ismon-ownfail.restarts").exists()
    # Once more within the window: too often, the cluster must hear of it.
    _run_out_of_descriptors(second)
    wait_until(lambda: not _alive(second), 30, "the watch to end with exit 4 again")
    done = agent("monitor")
    assert done.returncode == OCF_ERR_GENERIC, done.stderr
    assert (
        "the monitor itself failed (system error), not the server (exit status 4), 2 times"
        in done.stderr
    )
    assert agent.rc("stop") == OCF_SUCCESS
    assert agent.rc("monitor") == OCF_NOT_RUNNING
    assert not (agent.rsctmp / "ismon-ownfail.restarts").exists()


@needs_resource_agents
def test_start_waits_for_the_first_probe_and_gives_up_at_the_timeout(
    agents: list[Agent], tmp_path: Path, nginx: Nginx
) -> None:
    agent = make(agents, tmp_path, "slow", grace="3", **http_params(nginx))
    started = time.monotonic()
    assert agent.rc("start") == OCF_SUCCESS
    assert time.monotonic() - started >= 2.5
    assert agent.rc("stop") == OCF_SUCCESS
    # A grace beyond the start timeout: start returns before it (a warning).
    agent.params["grace"] = "60"
    started = time.monotonic()
    done = agent("start", timeout="8000")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert time.monotonic() - started < 8
    assert agent.rc("monitor") == OCF_SUCCESS
    assert agent.rc("stop") == OCF_SUCCESS


@needs_resource_agents
def test_smtp(agents: list[Agent], tmp_path: Path, fresh_servers: FreshServers) -> None:
    server: Aiosmtpd = fresh_servers.aiosmtpd()
    agent = make(
        agents,
        tmp_path,
        "mailwatch",
        protocol="smtp",
        server="127.0.0.1",
        port=str(server.port),
        interval="1",
        retries="1",
        timeout="1",
        helo="node1.example",
    )
    fails_when_stalled(agent, server, "SMTP")


def fails_when_stalled(agent: Agent, server: Any, what: str) -> None:
    """
    The agent validates, starts and monitors the watch; once C{server} is
    stopped (SIGSTOP) the watch gives up, monitor fails, stop succeeds and
    the resource is not running.
    """
    assert agent.rc("validate-all") == OCF_SUCCESS
    assert agent.rc("start") == OCF_SUCCESS
    assert agent.rc("monitor") == OCF_SUCCESS
    with server.stalled():
        wait_until(lambda: agent.watch_pid() is None, 30, f"the {what} watch to give up")
    assert agent.rc("monitor") == OCF_ERR_GENERIC
    assert agent.rc("stop") == OCF_SUCCESS
    assert agent.rc("monitor") == OCF_NOT_RUNNING


@needs_resource_agents
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"protocol": "gopher"}, OCF_ERR_CONFIGURED),
        ({"protocol": "ftp", "helo": "x"}, OCF_ERR_CONFIGURED),
        ({"protocol": "imap", "starttls": "true", "port": "143"}, OCF_SUCCESS),
        ({"watch_id": "bad-id"}, OCF_ERR_CONFIGURED),
        ({"port": "70000"}, OCF_ERR_CONFIGURED),
        ({"port": "x"}, OCF_ERR_CONFIGURED),
        ({"interval": "0"}, OCF_ERR_CONFIGURED),
        ({"retries": "10001"}, OCF_ERR_CONFIGURED),
        ({"timeout": ""}, OCF_ERR_CONFIGURED),
        ({"grace": "-1"}, OCF_ERR_CONFIGURED),
        ({"retry_interval": "abc"}, OCF_ERR_CONFIGURED),
        ({"http_version": "2"}, OCF_ERR_CONFIGURED),
        ({"uri": "/a b"}, OCF_ERR_CONFIGURED),
        ({"tls": "maybe"}, OCF_ERR_CONFIGURED),
        ({"starttls": "true"}, OCF_ERR_CONFIGURED),  # http
        ({"protocol": "smtp", "tls": "true", "starttls": "true"}, OCF_ERR_CONFIGURED),
        ({"protocol": "smtp", "expect_status": "200"}, OCF_ERR_CONFIGURED),
        ({"helo": "x"}, OCF_ERR_CONFIGURED),  # http
        ({"insecure": "true"}, OCF_ERR_CONFIGURED),  # without tls
        ({"tls": "true", "ca_file": "/nonexistent/ca.pem"}, OCF_ERR_INSTALLED),
        ({"state_dir": "relative"}, OCF_ERR_CONFIGURED),
        ({"binary": "/nonexistent/ismon"}, OCF_ERR_INSTALLED),
        ({"tls": "true", "servername": "www.example", "port": "443"}, OCF_SUCCESS),
        ({"protocol": "smtp", "starttls": "yes", "helo": "me"}, OCF_SUCCESS),
        ({"expect_status": "200-399,401", "uri": "/health", "http_version": "1.0"}, OCF_SUCCESS),
        ({"retry_interval": "0", "grace": "5", "cert_warn_days": "30"}, OCF_SUCCESS),
        ({"method": "POST"}, OCF_ERR_CONFIGURED),
        ({"method": "GET", "expect_body": "(x"}, OCF_ERR_CONFIGURED),
        ({"expect_header": "Server: nginx\nX-A: [a"}, OCF_ERR_CONFIGURED),
        ({"protocol": "smtp", "method": "GET"}, OCF_ERR_CONFIGURED),
        ({"protocol": "dns"}, OCF_ERR_CONFIGURED),  # no query
        ({"protocol": "dns", "query": "www.example.com", "type": "MX"}, OCF_SUCCESS),
        (
            {"protocol": "dns", "query": "example.com", "expect": "192.0.2.1\n192.0.2.2\n"},
            OCF_SUCCESS,
        ),
        ({"protocol": "dns", "query": "x", "expect": "not-an-address"}, OCF_ERR_CONFIGURED),
        ({"protocol": "dns", "query": "x", "tcp": "yes", "tls": "true"}, OCF_SUCCESS),
        ({"protocol": "dns", "query": "x", "tcp": "perhaps"}, OCF_ERR_CONFIGURED),
        ({"protocol": "http", "query": "x"}, OCF_ERR_CONFIGURED),
        ({"protocol": "tcp", "send": "PING\\r\\n", "expect": "\\+PONG"}, OCF_SUCCESS),
        ({"protocol": "tcp", "expect": "a\nb"}, OCF_ERR_CONFIGURED),  # one regex
        ({"protocol": "tcp", "expect": "(?=x)"}, OCF_ERR_CONFIGURED),
        ({"protocol": "tcp", "send": "x\\t"}, OCF_ERR_CONFIGURED),
        (
            {
                "method": "GET",
                "max_body": "1000",
                "expect_header": "Server: nginx\nX-A: ^1$\n",
                "expect_body": "ok",
                "host_header": "www.example.com",
            },
            OCF_SUCCESS,
        ),
    ],
)
def test_validate_all(tmp_path: Path, params: dict[str, str], expected: int) -> None:
    agent = Agent(tmp_path, "v", watch_id="v1", server="127.0.0.1", port=str(free_port()))
    agent.params.update(params)
    done = agent("validate-all")
    assert done.returncode == expected, done.stderr
    if expected != OCF_SUCCESS:
        assert "ocf-exit-reason:" in done.stderr


@needs_resource_agents
def test_a_tcp_watch_needs_its_port(tmp_path: Path) -> None:
    agent = Agent(tmp_path, "t", watch_id="t1", protocol="tcp", server="127.0.0.1")
    done = agent("validate-all")
    assert done.returncode == OCF_ERR_CONFIGURED, done.stderr
    assert "-n (port) must be given: TCP has no standard port" in done.stderr


@needs_resource_agents
def test_dns(
    agents: list[Agent], tmp_path: Path, fresh_dns_tcp_servers: FreshDnsTcpServers
) -> None:
    """protocol=dns on unbound: start, monitor, and a failure once unbound is stopped."""
    server = fresh_dns_tcp_servers.unbound()
    agent = make(
        agents,
        tmp_path,
        "dnswatch",
        protocol="dns",
        server="127.0.0.1",
        port=str(server.port),
        query="www.ismon.test",
        expect="127.0.0.2\n192.0.2.99",
        interval="1",
        retries="1",
        timeout="1",
    )
    fails_when_stalled(agent, server, "DNS")


@needs_resource_agents
def test_missing_binary_probe_and_stop(tmp_path: Path) -> None:
    agent = Agent(tmp_path, "nobin", binary="/nonexistent/ismon")
    assert agent.rc("monitor", interval="0") == OCF_NOT_RUNNING  # probe on a node without it
    assert agent.rc("monitor") == OCF_ERR_INSTALLED
    assert agent.rc("stop") == OCF_SUCCESS
    assert agent.rc("start") == OCF_ERR_INSTALLED


@needs_resource_agents
def test_unknown_actions_are_unimplemented(tmp_path: Path) -> None:
    agent = Agent(tmp_path, "x")
    for action in ("promote", "demote", "notify", "migrate_to", "reload", "bogus"):
        assert agent.rc(action) == OCF_ERR_UNIMPLEMENTED, action
    assert agent.rc("usage") == OCF_SUCCESS


@needs_resource_agents
def test_install_script(tmp_path: Path) -> None:
    root = tmp_path / "ocf"
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install-ocf.sh"), "--ocf-root", str(root)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    installed = root / "resource.d" / "ismon" / "ismon"
    assert installed.read_bytes() == AGENT.read_bytes()
    assert installed.stat().st_mode & 0o777 == 0o755
    assert "ocf:ismon:ismon" in done.stdout
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install-ocf.sh"), "--ocf-root", str(root), "--uninstall"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0
    assert not (root / "resource.d" / "ismon").exists()
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install-ocf.sh"), "--provider", "../x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
