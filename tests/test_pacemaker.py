"""
A real single-node Pacemaker cluster (corosync -f, pacemakerd -f) runs a
group [nginx (ocf:heartbeat:nginx), ismon watch (ocf:<test provider>:ismon)].
nginx is stalled with SIGSTOP: its own agent still sees a live process, the
ismon resource fails, Pacemaker records the failure (fail-count) and
recovers the resource; then the group is stopped, the daemons end, the CIB
is wiped and the test agent uninstalled.

Slow (about a minute: Pacemaker waits ~20 s to elect itself DC).  Needs
root and `apt-get install --no-install-recommends pacemaker corosync
pacemaker-cli-utils resource-agents nginx-light`; skips, saying why, when
this machine cannot run it (or already runs a cluster, which it leaves
alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import installed_nginx as nginx_binary
from tests.conftest import installed_script as console_script
from tests.procs import alive as _alive
from tests.procs import signal_pid as _kill
from tests.procs import wait_until
from tests.servers import descendants, free_port, nginx_conf

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
OCF_ROOT = Path("/usr/lib/ocf")
NGINX_AGENT = OCF_ROOT / "resource.d" / "heartbeat" / "nginx"
SHELLFUNCS = OCF_ROOT / "lib" / "heartbeat" / "ocf-shellfuncs"
PROVIDER = "ismontest"
CLUSTER_NAME = "ismontest"
NODE = "ismonnode"
PCMK_DIRS = [Path("/var/lib/pacemaker", d) for d in ("cib", "pengine", "blackbox", "cores")]
OTHER_DIRS = [Path("/var/lib/corosync"), Path("/dev/shm")]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("corosync", "pacemakerd", "crm_mon", "cibadmin", "crm_attribute", "crm_resource")

_COROSYNC_CONF = """\
totem {{
    version: 2
    cluster_name: {cluster}
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}}
logging {{
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: {log}
    timestamp: on
}}
quorum {{
    provider: corosync_votequorum
}}
nodelist {{
    node {{
        name: {node}
        nodeid: 1
        ring0_addr: 127.0.0.1
    }}
}}
"""

_NGINX_HTTP = """\
    access_log {dir}/access.log;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
"""

_GROUP = """\
<group id="webgroup">
  <primitive id="web" class="ocf" provider="heartbeat" type="nginx">
    <instance_attributes id="web-ia">
      <nvpair id="web-configfile" name="configfile" value="{conf}"/>
      <nvpair id="web-httpd" name="httpd" value="{nginx}"/>
      <nvpair id="web-status10url" name="status10url" value="http://127.0.0.1:{port}/"/>
    </instance_attributes>
    <operations>
      <op id="web-monitor" name="monitor" interval="3s" timeout="20s"/>
      <op id="web-start" name="start" interval="0s" timeout="30s"/>
      <op id="web-stop" name="stop" interval="0s" timeout="30s"/>
    </operations>
  </primitive>
  <primitive id="webwatch" class="ocf" provider="{provider}" type="ismon">
    <instance_attributes id="webwatch-ia">
      <nvpair id="webwatch-protocol" name="protocol" value="http"/>
      <nvpair id="webwatch-watch_id" name="watch_id" value="pcmkweb"/>
      <nvpair id="webwatch-server" name="server" value="127.0.0.1"/>
      <nvpair id="webwatch-port" name="port" value="{port}"/>
      <nvpair id="webwatch-interval" name="interval" value="1"/>
      <nvpair id="webwatch-retries" name="retries" value="1"/>
      <nvpair id="webwatch-timeout" name="timeout" value="1"/>
      <nvpair id="webwatch-state_dir" name="state_dir" value="{state_dir}"/>
      <nvpair id="webwatch-syslog_socket" name="syslog_socket" value="none"/>
      <nvpair id="webwatch-binary" name="binary" value="{ismon}"/>
    </instance_attributes>
    <operations>
      <op id="webwatch-monitor" name="monitor" interval="2s" timeout="20s"/>
      <op id="webwatch-start" name="start" interval="0s" timeout="30s"/>
      <op id="webwatch-stop" name="stop" interval="0s" timeout="30s"/>
    </operations>
  </primitive>
</group>
"""


def _tool(name: str) -> str | None:
    return shutil.which(name, path=PATH)


def _running(names: tuple[str, ...]) -> list[str]:
    """Processes with one of these names (read from /proc; never signalled)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if comm in names or comm.startswith("pacemaker-"):
            found.append(f"{comm}[{entry}]")
    return found


def _listing(directory: Path) -> set[str]:
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()


def _cib_is_ours(cib_dir: Path) -> bool:
    try:
        text = (cib_dir / "cib.xml").read_text(errors="replace")
    except OSError:
        return False
    return f'value="{CLUSTER_NAME}"' in text and f'uname="{NODE}"' in text


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "Pacemaker needs root"
    missing = [t for t in TOOLS if _tool(t) is None]
    if missing:
        return (
            f"not installed: {', '.join(missing)} (apt-get install --no-install-recommends "
            "pacemaker corosync pacemaker-cli-utils)"
        )
    if not SHELLFUNCS.exists() or not NGINX_AGENT.exists():
        return "resource-agents is not installed (ocf-shellfuncs, ocf:heartbeat:nginx)"
    running = _running(("corosync", "pacemakerd"))
    if running:
        return f"a cluster stack already runs here ({', '.join(running)}); not touching it"
    cib = PCMK_DIRS[0]
    if _listing(cib) and not _cib_is_ours(cib):
        return f"{cib} holds a CIB that is not this test's; not wiping it"
    return None


class Pacemaker:
    """The daemons, the commands, and everything to undo afterwards."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.corosync: subprocess.Popen[bytes] | None = None
        self.pacemakerd: subprocess.Popen[bytes] | None = None
        self.family: set[int] = set()
        self.rsctmp = directory / "rsctmp"
        self.rsctmp.mkdir()
        self.corosync_log = directory / "corosync.log"
        self.pacemaker_log = directory / "pacemaker.log"
        self.env = {**os.environ, "PATH": PATH}
        for key in list(self.env):
            if key.startswith(("OCF_", "PCMK_", "CIB_", "HA_", "ISMON_", "NOTIFY_SOCKET")):
                del self.env[key]
        self.before = {d: _listing(d) for d in [*PCMK_DIRS, *OTHER_DIRS]}
        self.run_crm_existed = Path("/run/crm").exists()
        self.agent_installed = False

    # -- commands -----------------------------------------------------------

    def cmd(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        done = subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def status(self) -> ET.Element:
        return ET.fromstring(self.cmd("crm_mon", "-1", "--output-as", "xml"))

    def resource(self, rid: str) -> dict[str, str]:
        for element in self.status().iter("resource"):
            if element.get("id") == rid:
                return dict(element.attrib)
        return {}

    def started(self, rid: str) -> bool:
        r = self.resource(rid)
        return (
            r.get("role") == "Started" and r.get("active") == "true" and r.get("failed") == "false"
        )

    def stopped(self, rid: str) -> bool:
        return self.resource(rid).get("role") == "Stopped"

    def fail_count(self, rid: str) -> int:
        for element in self.status().iter("resource_history"):
            if element.get("id") == rid:
                return int(element.get("fail-count", "0"))
        return 0

    def failures(self) -> list[dict[str, str]]:
        return [dict(f.attrib) for f in self.status().iter("failure")]

    def logs(self) -> str:
        text = ""
        for log in (self.corosync_log, self.pacemaker_log):
            try:
                lines = log.read_text(errors="replace").splitlines()[-40:]
            except OSError:
                continue
            text += f"--- {log.name} ---\n" + "\n".join(lines) + "\n"
        return text

    # -- bring-up -------------------------------------------------------------

    def _spawn(self, argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        with open(self.directory / f"{name}.out", "wb") as out:
            return subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        for d in PCMK_DIRS[:1]:
            # A leftover CIB of this test (an earlier run that died): wipe it.
            for name in _listing(d):
                (d / name).unlink()
        conf = self.directory / "corosync.conf"
        conf.write_text(
            _COROSYNC_CONF.format(cluster=CLUSTER_NAME, node=NODE, log=self.corosync_log)
        )
        self.corosync = self._spawn(
            [str(_tool("corosync")), "-f", "-c", str(conf)], self.env, "corosync"
        )
        corosync = self.corosync

        def corosync_ready() -> bool:
            if corosync.poll() is not None:
                return True
            try:
                return "ready to provide service" in self.corosync_log.read_text(errors="replace")
            except OSError:
                return False

        try:
            wait_until(corosync_ready, 60, "corosync")
        except AssertionError:
            pytest.skip(f"corosync did not come up here:\n{self.logs()}")
        if self.corosync.poll() is not None:
            pytest.skip(
                f"corosync cannot run here (exit {self.corosync.returncode}):\n{self.logs()}"
            )
        env = {
            **self.env,
            "PCMK_logfile": str(self.pacemaker_log),
            "PCMK_logfacility": "none",
            # The agents inherit it: keep their records in the test's folder.
            "HA_RSCTMP": str(self.rsctmp),
        }
        self.pacemakerd = self._spawn([str(_tool("pacemakerd")), "-f"], env, "pacemakerd")

        def dc() -> bool:
            if self.pacemakerd.poll() is not None:  # type: ignore[union-attr]
                return True
            done = subprocess.run(
                ["crm_mon", "-1"], env=self.env, capture_output=True, text=True, timeout=30
            )
            return f"Current DC: {NODE}" in done.stdout

        try:
            wait_until(dc, 120, "Pacemaker to elect a DC", step=1)
        except AssertionError:
            pytest.skip(f"Pacemaker elected no DC within 120 s here:\n{self.logs()}")
        if self.pacemakerd.poll() is not None:
            pytest.skip(
                f"pacemakerd cannot run here (exit {self.pacemakerd.returncode}):\n{self.logs()}"
            )
        self.remember_family()
        self.cmd(
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "stonith-enabled",
            "--update",
            "false",
        )
        self.cmd(
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "no-quorum-policy",
            "--update",
            "ignore",
        )
        self.cmd("sh", str(ROOT / "scripts" / "install-ocf.sh"), "--provider", PROVIDER)
        self.agent_installed = True

    def remember_family(self) -> None:
        for process in (self.corosync, self.pacemakerd):
            if process is not None and process.poll() is None:
                self.family.add(process.pid)
                self.family.update(descendants(process.pid))

    # -- tear-down ----------------------------------------------------------

    def stop_resources(self, timeout: float = 90) -> None:
        """Ask Pacemaker to stop the group (our agent's stop runs)."""
        self.cmd(
            "crm_resource", "--resource", "webgroup", "--meta", "--set-parameter",
            "target-role", "--parameter-value", "Stopped",
        )  # fmt: skip
        wait_until(
            lambda: self.stopped("web") and self.stopped("webwatch"),
            timeout,
            "the group to stop",
            step=0.5,
        )

    def shutdown(self) -> None:
        """Stop everything this object started; never raises."""
        with contextlib.suppress(Exception):
            self.remember_family()
        for process, wait in ((self.pacemakerd, 90.0), (self.corosync, 30.0)):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                family = [process.pid, *descendants(process.pid)]
                for pid in family:
                    _kill(pid, signal.SIGKILL)
                process.wait(10)
        # Children of pacemakerd that outlived it (killed parent, ...).
        for pid in self.family:
            if _alive(pid):
                _kill(pid, signal.SIGKILL)

    def wipe(self) -> None:
        """The CIB and what the daemons wrote outside the test's folder."""
        for d in PCMK_DIRS:
            for name in _listing(d):
                if d == PCMK_DIRS[0] or name not in self.before[d]:
                    with contextlib.suppress(OSError):
                        (d / name).unlink()
        for d in OTHER_DIRS:
            for name in _listing(d) - self.before[d]:
                if d.name == "shm" and not name.startswith("qb-"):
                    continue
                path = d / name
                with contextlib.suppress(OSError):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        if not self.run_crm_existed:
            shutil.rmtree("/run/crm", ignore_errors=True)
        if self.agent_installed:
            with contextlib.suppress(Exception):
                self.cmd("sh", str(ROOT / "scripts" / "install-ocf.sh"), "--provider", PROVIDER,
                         "--uninstall")  # fmt: skip


@pytest.fixture
def pacemaker(tmp_path: Path) -> Iterator[Pacemaker]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = Pacemaker(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.shutdown()
        cluster.wipe()


class WebSite:
    """nginx as Pacemaker's nginx agent runs it (daemon mode, its own pidfile)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir()
        self.port = free_port()
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            nginx_conf(
                directory,
                _NGINX_HTTP.format(dir=directory, port=self.port),
                daemon=True,
                user="user root;",
                worker_connections=64,
            )
        )
        self.pidfile = directory / "nginx.pid"
        self.state_dir = directory.parent / "state"
        self._stalled: list[int] = []

    def master(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def stall(self) -> None:
        master = self.master()
        assert master is not None, "nginx is not running"
        self._stalled = [master, *descendants(master)]
        for pid in self._stalled:
            _kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._stalled:
            _kill(pid, signal.SIGCONT)
        self._stalled = []

    def ismon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(console_script("ismon")), *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def watch_pid(self) -> int | None:
        done = self.ismon("disp", "pcmkweb")
        return int(done.stdout) if done.returncode == 0 else None

    def watch_healthy(self) -> bool:
        done = self.ismon("status", "pcmkweb", "--json")
        if done.returncode != 0:
            return False
        status = json.loads(done.stdout)
        return int(status["probes"]) >= 2 and status["consecutive_failures"] == 0

    def cleanup(self) -> None:
        self.resume()
        master = self.master()
        for pid in [] if master is None else [master, *descendants(master)]:
            _kill(pid, signal.SIGKILL)
        pid = self.watch_pid() if self.state_dir.exists() else None
        if pid is not None:
            _kill(pid, signal.SIGCONT)
            _kill(pid, signal.SIGKILL)


@pytest.fixture
def website(tmp_path: Path) -> Iterator[WebSite]:
    nginx_binary()
    site = WebSite(tmp_path / "www")
    yield site
    site.cleanup()


def test_pacemaker_recovers_when_nginx_stalls(pacemaker: Pacemaker, website: WebSite) -> None:
    ismon = console_script("ismon")
    pacemaker.cmd(
        "cibadmin", "--create", "-o", "resources", "--xml-text",
        _GROUP.format(
            conf=website.conf,
            nginx=nginx_binary(),
            port=website.port,
            provider=PROVIDER,
            state_dir=website.state_dir,
            ismon=ismon,
        ),
    )  # fmt: skip
    wait_until(
        lambda: pacemaker.started("web") and pacemaker.started("webwatch"),
        60,
        "the group to start",
        step=0.5,
    )
    pacemaker.remember_family()
    first = website.watch_pid()
    assert first is not None
    wait_until(website.watch_healthy, 60, "the watch to probe", step=0.5)
    assert pacemaker.fail_count("webwatch") == 0

    # nginx hangs: its process lives (its agent sees nothing), it never answers.
    website.stall()
    stalled_at = time.monotonic()
    try:
        wait_until(lambda: pacemaker.fail_count("webwatch") >= 1, 60, "the ismon failure", step=0.5)
        detected = time.monotonic() - stalled_at
    finally:
        website.resume()
    # interval 1 s, timeout 1 s, 1 retry; monitor every 2 s.
    assert detected < 20, detected
    failures = [
        f for f in pacemaker.failures() if f.get("op_key", "").startswith("webwatch_monitor")
    ]
    assert failures, pacemaker.failures()
    assert failures[0].get("exitcode") == "1"
    assert "the server failed" in failures[0].get("exitreason", "")

    # Recovery: Pacemaker restarts the watch (nginx answers again).
    wait_until(
        lambda: (
            pacemaker.started("webwatch")
            and (website.watch_pid() or first) != first
            and website.watch_healthy()
        ),
        60,
        "Pacemaker to restart the watch",
        step=0.5,
    )
    time.sleep(4)
    assert pacemaker.started("webwatch")
    assert pacemaker.started("web")
    assert pacemaker.fail_count("webwatch") == 1
    # nginx's own agent never noticed the stall: the gap ismon closes.
    assert pacemaker.fail_count("web") == 0

    # Stop the group through Pacemaker: the watch and nginx end.
    pacemaker.stop_resources()
    assert website.watch_pid() is None
    wait_until(lambda: website.master() is None, 60, "nginx to end")
    assert not [
        p for p in pacemaker.rsctmp.iterdir() if p.name.startswith("ismon-") and p.suffix == ".rc"
    ]
