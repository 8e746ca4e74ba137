"""
Failover across two nodes with Pacemaker: a group [VIP (ocf:heartbeat:IPaddr2),
nginx (ocf:heartbeat:nginx), watch (ocf:<test provider>:ismon)] runs on
node 1; nginx is stopped with SIGSTOP; the watch exits, the agent's monitor
fails, and with C{migration-threshold=1} Pacemaker moves the group to node 2,
which then answers on the VIP (docs/cluster.md, "Two nodes with Pacemaker").

Each node is a network namespace on the L{tests.netns.NetLan} bridge, and
corosync + pacemakerd run there in their own mount, PID and UTS namespaces
(C{unshare}): private C{/run}, C{/dev/shm}, C{/var/lib/pacemaker} and
C{/var/lib/corosync} (bound from the test's folder), host name C{node1} /
C{node2}.  corosync links the two over knet on the bridge (C{two_node}).  The
machine's own cluster files are not touched; only the test's OCF provider is
installed into /usr/lib/ocf and removed again.

Slow (about a minute and a half).  Needs root, iproute2, nginx, corosync,
pacemaker, resource-agents; skips saying why, fails instead under
C{ISMON_REQUIRE_SERVERS=1}.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import installed_nginx, installed_script
from tests.netns import CLIENT_SCRIPT, NetLan, Netns, client_answers, netns_unavailable
from tests.procs import alive, end_process, wait_until
from tests.servers import descendants, nginx_conf
from tests.watchproc import Processes, WatchProcess

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
OCF_ROOT = Path("/usr/lib/ocf")
PROVIDER = "ismonfailover"
PORT = 8080
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("corosync", "pacemakerd", "crm_mon", "cibadmin", "crm_attribute", "unshare", "nsenter")
#: The client: a GET of the VIP every 50 ms, 0.3 s timeout (as for keepalived).
PERIOD = 0.05
REQUEST_TIMEOUT = 0.3
#: Stall -> first answer from node 2 (docs/cluster.md, "Two nodes with
#: Pacemaker"): the watch's bound (4 s) + the agent's monitor interval (1 s)
#: + ocf:heartbeat:nginx stopping a stalled nginx (SIGTERM every second for
#: 10 s, then SIGTERM, SIGHUP, SIGKILL a second apart: 13 s) + stopping the
#: watch and the VIP, starting all three on node 2 (the watch's start waits
#: for its first probe) and a transition each: 5 s; + 7 s of margin for a
#: loaded 2-core machine.
FAILOVER_LIMIT = 4 + 1 + 13 + 5 + 7
#: nginx's files, in each node's private /run.
WEB_DIR = Path("/run/ismonweb")

_COROSYNC_CONF = """\
totem {{
    version: 2
    cluster_name: ismonfailover
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
    two_node: 1
}}
nodelist {{
    node {{
        name: node1
        nodeid: 1
        ring0_addr: {addr1}
    }}
    node {{
        name: node2
        nodeid: 2
        ring0_addr: {addr2}
    }}
}}
"""

# Runs as PID 1 of the node's PID namespace: its own /run, /dev/shm and
# Pacemaker/corosync state, then corosync, then pacemakerd.  bash stays PID 1
# as the namespace's init: it reaps the orphans (nginx's master daemonizes),
# which pacemakerd would leave as zombies -- and the nginx agent's stop waits
# 10 s for a zombie to go.
_BOOT = """\
set -e
mount --make-rprivate /
hostname {name}
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mount --bind {dir}/pacemaker /var/lib/pacemaker
mount --bind {dir}/corosync /var/lib/corosync
mkdir -p {web_dir}
corosync -f -c {dir}/corosync.conf >{dir}/corosync.out 2>&1 &
until grep -q "ready to provide service" {dir}/corosync.log 2>/dev/null; do sleep 0.1; done
pacemakerd -f >{dir}/pacemakerd.out 2>&1 &
while ! wait $!; do :; done
"""

_NGINX_HTTP = """\
    access_log off;
    server {
        listen 0.0.0.0:%d;
        location = / { default_type text/plain; return 200 "$hostname\\n"; }
    }
"""

_GROUP = """\
<group id="webgroup">
  <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
    <instance_attributes id="vip-ia">
      <nvpair id="vip-ip" name="ip" value="{vip}"/>
      <nvpair id="vip-cidr" name="cidr_netmask" value="24"/>
      <nvpair id="vip-nic" name="nic" value="{nic}"/>
    </instance_attributes>
    <operations>
      <op id="vip-monitor" name="monitor" interval="5s" timeout="20s"/>
    </operations>
  </primitive>
  <primitive id="web" class="ocf" provider="heartbeat" type="nginx">
    <instance_attributes id="web-ia">
      <nvpair id="web-configfile" name="configfile" value="{conf}"/>
      <nvpair id="web-httpd" name="httpd" value="{nginx}"/>
    </instance_attributes>
    <operations>
      <op id="web-monitor" name="monitor" interval="5s" timeout="20s"/>
      <op id="web-start" name="start" interval="0s" timeout="30s"/>
      <op id="web-stop" name="stop" interval="0s" timeout="30s"/>
    </operations>
  </primitive>
  <primitive id="webwatch" class="ocf" provider="{provider}" type="ismon">
    <instance_attributes id="webwatch-ia">
      <nvpair id="webwatch-protocol" name="protocol" value="http"/>
      <nvpair id="webwatch-watch_id" name="watch_id" value="web"/>
      <nvpair id="webwatch-server" name="server" value="127.0.0.1"/>
      <nvpair id="webwatch-port" name="port" value="{port}"/>
      <nvpair id="webwatch-interval" name="interval" value="1"/>
      <nvpair id="webwatch-retries" name="retries" value="2"/>
      <nvpair id="webwatch-timeout" name="timeout" value="1"/>
      <nvpair id="webwatch-syslog_socket" name="syslog_socket" value="none"/>
      <nvpair id="webwatch-binary" name="binary" value="{ismon}"/>
    </instance_attributes>
    <meta_attributes id="webwatch-meta">
      <nvpair id="webwatch-migration-threshold" name="migration-threshold" value="1"/>
    </meta_attributes>
    <operations>
      <op id="webwatch-monitor" name="monitor" interval="1s" timeout="20s"/>
      <op id="webwatch-start" name="start" interval="0s" timeout="30s"/>
      <op id="webwatch-stop" name="stop" interval="0s" timeout="30s"/>
    </operations>
  </primitive>
</group>
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("ISMON_REQUIRE_SERVERS") == "1" and os.geteuid() == 0:
        pytest.fail(f"{reason} (ISMON_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "a two-node Pacemaker in namespaces needs root"
    missing = [t for t in TOOLS if shutil.which(t, path=PATH) is None]
    if missing:
        return (
            f"not installed: {', '.join(missing)} (apt-get install --no-install-recommends "
            "pacemaker corosync pacemaker-cli-utils util-linux)"
        )
    for agent in ("heartbeat/nginx", "heartbeat/IPaddr2"):
        if not (OCF_ROOT / "resource.d" / agent).exists():
            return f"resource-agents is not installed (ocf:{agent.replace('/', ':')})"
    return netns_unavailable()


class ClusterNode:
    """corosync + pacemakerd in one node namespace, in private mount/PID/UTS namespaces."""

    def __init__(self, name: str, netns: Netns, directory: Path) -> None:
        self.name = name
        self.netns = netns
        self.directory = directory
        self.boot: WatchProcess | None = None
        self.pacemakerd = 0

    def start(self, processes: Processes, corosync_conf: str) -> None:
        d = self.directory
        for sub in ("pacemaker/cib", "pacemaker/pengine", "pacemaker/blackbox", "corosync"):
            (d / sub).mkdir(parents=True)
        (d / "rsctmp").mkdir()
        # Pacemaker's daemons run as hacluster and write their CIB there.
        subprocess.run(["chown", "-R", "hacluster:haclient", str(d / "pacemaker")], check=True)
        (d / "corosync.conf").write_text(corosync_conf)
        (d / "boot.sh").write_text(_BOOT.format(name=self.name, dir=d, web_dir=WEB_DIR))
        env = {
            "PATH": PATH,
            "PCMK_logfile": str(d / "pacemaker.log"),
            "PCMK_logfacility": "none",
            "HA_RSCTMP": str(d / "rsctmp"),
        }
        argv = self.netns.argv(
            "unshare", "--mount", "--pid", "--uts", "--fork", "--mount-proc",
            "bash", str(d / "boot.sh"),
        )  # fmt: skip
        self.boot = processes.start(argv, env=env, name=f"boot-{self.name}")

    def find_pacemakerd(self) -> bool:
        assert self.boot is not None
        assert self.boot.running(), self.logs()
        for pid in descendants(self.boot.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "pacemakerd":
                    self.pacemakerd = pid
                    return True
        return False

    def cmd(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        """Run a Pacemaker command as seen from this node (nsenter into its namespaces)."""
        assert self.pacemakerd
        full = ["nsenter", "-t", str(self.pacemakerd), "-m", "-u", "-n", "-p", *argv]
        done = subprocess.run(
            full, env={"PATH": PATH}, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} on {self.name} failed: {done.stderr}")
        return done.stdout

    def status(self) -> ET.Element:
        return ET.fromstring(self.cmd("crm_mon", "-1", "--output-as", "xml"))

    def running_on(self, rid: str) -> str | None:
        """The node a resource is started on (and not failed), or None."""
        for element in self.status().iter("resource"):
            if element.get("id") == rid and element.get("role") == "Started":
                if element.get("failed") == "true":
                    return None
                node = element.find("node")
                return node.get("name") if node is not None else None
        return None

    def logs(self) -> str:
        text = ""
        for name in ("boot", "corosync.log", "pacemaker.log", "pacemakerd.out"):
            path = self.directory / name
            if name == "boot" and self.boot is not None:
                text += f"--- boot ---\n{self.boot.output()[-2000:]}\n"
                continue
            with contextlib.suppress(OSError):
                lines = path.read_text(errors="replace").splitlines()[-30:]
                text += f"--- {self.name} {name} ---\n" + "\n".join(lines) + "\n"
        return text

    def shutdown(self) -> None:
        """SIGTERM to pacemakerd (a clean stop of the node), then make sure all of it ended."""
        if self.pacemakerd and alive(self.pacemakerd):
            os.kill(self.pacemakerd, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while alive(self.pacemakerd) and time.monotonic() < deadline:
                time.sleep(0.2)
        if self.boot is not None:
            end_process(self.boot.process)


def _install_agent(ismon_env: dict[str, str], uninstall: bool = False) -> None:
    argv = ["sh", str(ROOT / "scripts" / "install-ocf.sh"), "--provider", PROVIDER]
    subprocess.run([*argv, "--uninstall"] if uninstall else argv, check=True, env=ismon_env)


@contextlib.contextmanager
def _cluster(tmp_path: Path, processes: Processes) -> Iterator[tuple[NetLan, list[ClusterNode]]]:
    reason = _skip_reason()
    if reason is not None:
        if os.geteuid() != 0:
            pytest.skip(reason)
        _unavailable(reason)
    lan = NetLan.create(2)
    nodes = [
        ClusterNode(f"node{i + 1}", ns, tmp_path / f"node{i + 1}") for i, ns in enumerate(lan.nodes)
    ]
    env = {"PATH": PATH}
    installed = False
    try:
        _install_agent(env)
        installed = True
        conf = _COROSYNC_CONF.format(log="{log}", addr1=lan.node_addrs[0], addr2=lan.node_addrs[1])
        for node in nodes:
            node.start(processes, conf.replace("{log}", str(node.directory / "corosync.log")))
        for node in nodes:
            wait_until(node.find_pacemakerd, 60, f"pacemakerd on {node.name}")

        def dc() -> bool:
            out = nodes[0].cmd("crm_mon", "-1", check=False)
            return "Current DC: node" in out and "2 nodes configured" in out

        try:
            wait_until(dc, 120, "a DC of both nodes", step=1)
        except AssertionError:
            raise AssertionError("no DC:\n" + "".join(n.logs() for n in nodes)) from None
        nodes[0].cmd("crm_attribute", "--type", "crm_config", "--name", "stonith-enabled",
                     "--update", "false")  # fmt: skip
        yield lan, nodes
    finally:
        for node in reversed(nodes):
            with contextlib.suppress(Exception):
                node.shutdown()
        lan.destroy()
        if installed:
            _install_agent(env, uninstall=True)


def test_stalled_nginx_moves_the_group_to_node2(tmp_path: Path, processes: Processes) -> None:
    nginx = installed_nginx()
    ismon = installed_script("ismon")
    with _cluster(tmp_path, processes) as (lan, nodes):
        one, two = nodes
        vip = lan.address(100)
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_conf(WEB_DIR, _NGINX_HTTP % PORT, daemon=True))
        group = _GROUP.format(
            vip=vip, nic=NetLan.node_if, conf=conf, nginx=nginx, provider=PROVIDER,
            port=PORT, ismon=ismon,
        )  # fmt: skip
        # Start on node 1: a location score of 100 prefers it; the watch's
        # failure (fail-count 1 = migration-threshold: -INFINITY there)
        # outweighs that.
        one.cmd("cibadmin", "--create", "-o", "resources", "--xml-text", group)
        one.cmd(
            "cibadmin", "--create", "-o", "constraints", "--xml-text",
            '<rsc_location id="prefer-node1" rsc="webgroup" node="node1" score="100"/>',
        )  # fmt: skip
        wait_until(
            lambda: one.running_on("webwatch") == "node1",
            120,
            "the group on node1",
            step=0.5,
        )

        client = processes.start(
            lan.hub.argv(sys.executable, "-c", CLIENT_SCRIPT, vip, str(PORT), str(PERIOD),
                         str(REQUEST_TIMEOUT)),
            name="client",
        )  # fmt: skip
        try:
            wait_until(
                lambda: sum(1 for _, a in client_answers(client) if a == "node1") >= 10,
                60,
                "10 answers from node1",
            )
            # nginx's master and worker: every nginx of node 1's own PID
            # namespace (the PIDs are those seen there).
            nginx_pids = one.cmd("pgrep", "-x", "nginx").split()
            assert nginx_pids
            stall_at = time.monotonic()
            # PIDs inside node 1's PID namespace: signal them from there.
            one.cmd("kill", "-STOP", *nginx_pids)
            first_two = wait_until(
                lambda: next((at for at, a in client_answers(client) if a == "node2"), None),
                120,
                "an answer from node2",
                step=0.2,
            )
            assert first_two is not None
            time.sleep(2)
            answers = client_answers(client)
        finally:
            client.end()
        status = two.status()
        assert two.running_on("webwatch") == "node2", ET.tostring(status, "unicode")
        assert two.running_on("vip") == "node2"
        assert lan.holds(two.netns, vip) and not lan.holds(one.netns, vip)
        after = [a for at, a in answers if at >= first_two]
        assert after and all(a == "node2" for a in after), after
        failures = [dict(f.attrib) for f in status.iter("failure")]
        assert any(f.get("op_key", "").startswith("webwatch_monitor") for f in failures), failures
        total = first_two - stall_at
        print(
            f"\npacemaker failover: stall -> first answer from node2 {total:.2f}s (limit {FAILOVER_LIMIT}s); "
            f"failures: {[(f.get('op_key'), f.get('node'), f.get('exitreason')) for f in failures]}"
        )
        assert total <= FAILOVER_LIMIT, f"first answer from node2 {total:.2f}s after the stall"
        # Stop the group before the nodes, so that nothing is left to recover.
        one.cmd("crm_resource", "--resource", "webgroup", "--meta", "--set-parameter",
                "target-role", "--parameter-value", "Stopped")  # fmt: skip
        wait_until(lambda: two.running_on("web") is None, 60, "the group to stop", step=0.5)
        names = [ns.name for ns in (lan.hub, *lan.nodes)]
        boots = [n.boot.pid for n in nodes if n.boot is not None]

    assert not [pid for pid in boots if alive(pid)]
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    assert not [n for n in names if re.search(rf"^{re.escape(n)}\b", listed, re.M)]
    assert not (OCF_ROOT / "resource.d" / PROVIDER).exists()
