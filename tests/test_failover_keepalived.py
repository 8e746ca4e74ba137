"""
Failover across two nodes with keepalived: a stalled daemon ends its watch,
keepalived moves the virtual IP, and the other node answers
(docs/cluster.md, "4. keepalived").

The test bed (L{tests.netns.NetLan}): a hub namespace holding a bridge and
the client, and two node namespaces on it.  In each node: nginx serving a
page that names the node, a watch on it (C{clp_httpmon web -i 1 -c 2 -r 1},
detected within 4 s), and Debian's keepalived with one VRRP instance
(unicast peers, the VIP on the node's veth) whose C{track_script} is
C{ismon status web}.  A client in the hub asks the VIP every 50 ms; a
sampler reads which node holds the VIP every 50 ms.  nginx of the master is
stopped with SIGSTOP; its watch exits with 1, keepalived puts the instance in
FAULT, and node 2 takes the VIP and answers.  Then node 1 is repaired (nginx
resumed, watch restarted): with C{nopreempt} the VIP stays where it is.

Slow (about 25 s).  Needs root, iproute2, nginx and keepalived
(C{apt-get install --no-install-recommends keepalived nginx-light}); skips
saying why when the machine cannot run it, fails instead under
C{ISMON_REQUIRE_SERVERS=1} (scripts/test.sh as root).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import installed_script
from tests.netns import (
    CLIENT_SCRIPT,
    TEARDOWN,
    NetLan,
    Netns,
    client_answers,
    netns_unavailable,
    start_nginx_at,
    started,
    wait_for_good_probes,
    watch_argv,
)
from tests.procs import alive, wait_until
from tests.servers import Nginx, ServerUnavailable
from tests.watchproc import PATIENCE, Processes, WatchProcess

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WATCH_ID = "web"
CMD = "clp_httpmon"
PORT = 8080
#: keepalived's timing (docs/cluster.md, "Choosing the intervals").
ADVERT_INT = 1
CHECK_INTERVAL = 1
FALL = 1
RISE = 2
#: Every 50 ms: the client's requests and the sampler's look at the VIP.
PERIOD = 0.05
#: A request that gets no answer within this is counted as an error.
REQUEST_TIMEOUT = 0.3
#: Beyond the sum of the bounds: the client's request timeout, the time
#: `ismon status` and `ip` take to start on a loaded 2-core machine, and
#: scheduling delays of keepalived and the client there.
MARGIN = 2.0

_KEEPALIVED_CONF = """\
global_defs {{
    router_id {name}
    # The track script runs as root; keepalived checks that no one else
    # can write it or a folder above it.
    enable_script_security
    script_user root
    # The defaults send a second burst of gratuitous ARPs 5 s after taking
    # the VIP; one burst is enough on one bridge.
    vrrp_garp_master_delay 0
}}

vrrp_script chk_web {{
    script "{ismon} status {watch_id} --state-dir {state}"
    interval {interval}
    timeout 2
    fall {fall}
    rise {rise}
}}

vrrp_instance VI_web {{
    state BACKUP
    nopreempt
    interface {interface}
    virtual_router_id 51
    priority {priority}
    advert_int {advert}
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {vip}/24 dev {interface}
    }}
    track_script {{
        chk_web
    }}
}}
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("ISMON_REQUIRE_SERVERS") == "1" and os.geteuid() == 0:
        pytest.fail(f"{reason} (ISMON_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


def _keepalived() -> str:
    binary = shutil.which("keepalived") or (
        "/usr/sbin/keepalived" if os.path.exists("/usr/sbin/keepalived") else None
    )
    if binary is None:
        _unavailable("keepalived is not installed (apt-get install keepalived)")
        raise AssertionError("unreachable")
    return binary


@dataclass
class Node:
    """One node of the test bed and what runs in it."""

    name: str
    netns: Netns
    addr: str
    directory: Path
    nginx: Nginx | None = None
    watch: WatchProcess | None = None
    keepalived: WatchProcess | None = None

    @property
    def state(self) -> Path:
        return self.directory / "state"


@dataclass
class Sampler:
    """Which node holds the VIP, every PERIOD seconds, in a thread."""

    lan: NetLan
    vip: str
    samples: list[tuple[float, bool, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        first, second = self.lan.nodes
        while not self._stop.is_set():
            at = time.monotonic()
            # Node 2 (the one taking over) first, then node 1: a sample that
            # shows both then proves a real overlap, not a hand-over that
            # happened between the two reads.
            two = self.lan.holds(second, self.vip)
            one = self.lan.holds(first, self.vip)
            self.samples.append((at, one, two))
            self._stop.wait(max(0.0, at + PERIOD - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PATIENCE)


@contextlib.contextmanager
def _test_bed(tmp_path: Path, processes: Processes) -> Iterator[tuple[NetLan, list[Node], str]]:
    """The LAN, two nodes with nginx and a watch each; everything undone afterwards."""
    reason = netns_unavailable()
    if reason is not None:
        if os.geteuid() != 0:
            pytest.skip(reason)
        _unavailable(reason)
    _keepalived()  # skips (or fails) before anything is built
    installed_script("ismon")
    lan = NetLan.create(2)
    nodes = [
        Node(f"node{i + 1}", ns, addr, tmp_path / f"node{i + 1}")
        for i, (ns, addr) in enumerate(zip(lan.nodes, lan.node_addrs, strict=True))
    ]
    try:
        for node in nodes:
            node.state.mkdir(parents=True)
            try:
                node.nginx = start_nginx_at(
                    node.directory / "nginx", "0.0.0.0", PORT, netns=node.netns, page=node.name
                )
            except ServerUnavailable as e:
                _unavailable(f"server unavailable: {e}")
            node.watch = _start_watch(node, processes)
        yield lan, nodes, lan.address(100)
    finally:
        for node in nodes:
            for process in (node.keepalived, node.watch):
                if process is not None:
                    process.end()
            if node.nginx is not None:
                node.nginx.stop()
        lan.destroy()


def _start_watch(node: Node, processes: Processes) -> WatchProcess:
    argv = watch_argv(CMD, WATCH_ID, "127.0.0.1", PORT, node.state, netns=node.netns)
    watch = processes.start(argv, name=f"watch-{node.name}")
    started(watch, CMD, WATCH_ID)
    wait_for_good_probes(WATCH_ID, node.state, 1)
    return watch


def _start_keepalived(
    node: Node, peer: Node, priority: int, vip: str, processes: Processes
) -> WatchProcess:
    conf = node.directory / "keepalived.conf"
    conf.write_text(
        _KEEPALIVED_CONF.format(
            name=node.name,
            ismon=installed_script("ismon"),
            watch_id=WATCH_ID,
            state=node.state,
            interval=CHECK_INTERVAL,
            fall=FALL,
            rise=RISE,
            interface=NetLan.node_if,
            priority=priority,
            advert=ADVERT_INT,
            me=node.addr,
            peer=peer.addr,
            vip=vip,
        )
    )
    run = node.directory / "run"
    run.mkdir(exist_ok=True)
    # -n: no fork (the PID is keepalived's parent, which stops its children);
    # -l -D -G: detailed log on stdout, not syslog; -P: VRRP only; own pid
    # files, so that two instances (and a system keepalived) do not collide.
    argv = [
        _keepalived(),
        "-n",
        "-l",
        "-D",
        "-G",
        "-P",
        "-f",
        str(conf),
        "-p",
        str(run / "keepalived.pid"),
        "-r",
        str(run / "vrrp.pid"),
        "-c",
        str(run / "checkers.pid"),
    ]
    return processes.start(node.netns.argv(*argv), name=f"keepalived-{node.name}")


def test_stalled_master_fails_over_to_backup(tmp_path: Path, processes: Processes) -> None:
    with _test_bed(tmp_path, processes) as (lan, nodes, vip):
        one, two = nodes
        assert one.watch is not None and two.watch is not None and one.nginx is not None
        bound = one.watch.detection_bound()

        # Node 1 first: alone, it becomes master after 3 adverts' silence;
        # node 2, started then, hears it and stays backup.
        one.keepalived = _start_keepalived(one, two, 150, vip, processes)
        wait_until(lambda: lan.holds(one.netns, vip), PATIENCE, "node1 to hold the VIP")
        two.keepalived = _start_keepalived(two, one, 100, vip, processes)
        two.keepalived.wait_for(r"\(VI_web\) Entering BACKUP STATE")

        sampler = Sampler(lan, vip)
        sampler.start()
        client = processes.start(
            lan.hub.argv(
                sys.executable,
                "-c",
                CLIENT_SCRIPT,
                vip,
                str(PORT),
                str(PERIOD),
                str(REQUEST_TIMEOUT),
            ),
            name="client",
        )
        try:
            wait_until(
                lambda: sum(1 for _, a in client_answers(client) if a == "node1") >= 10,
                PATIENCE,
                "10 answers from node1",
            )
            stall_at = time.monotonic()
            one.nginx.stall()
            failed = one.watch
            code = failed.wait(bound + 10)
            exit_at = time.monotonic()
            first_two = wait_until(
                lambda: next((at for at, a in client_answers(client) if a == "node2"), None),
                PATIENCE,
                "an answer from node2",
            )
            assert first_two is not None
            # Two more seconds of answers: all from node2.
            time.sleep(2)
            dropped_at = next(at for at, held, _ in sampler.samples if at > stall_at and not held)
            moved_at = next(at for at, _, held in sampler.samples if at > stall_at and held)
            answers = client_answers(client)

            # Repair node 1: nginx goes on, a new watch starts; once its
            # track script has passed RISE times node 1 is a backup again,
            # and with nopreempt the VIP stays on node 2.
            seen = len(one.keepalived.output())
            one.nginx.resume()
            one.watch = _start_watch(one, processes)
            one.keepalived.wait_for(r"\(VI_web\) Entering BACKUP STATE", after=seen)
            time.sleep(2 * ADVERT_INT)
            after_repair = client_answers(client)[len(answers) :]
        finally:
            client.end()
            sampler.stop()

        assert code == 1, failed.output()
        detected = exit_at - stall_at
        assert detected <= bound + TEARDOWN, f"watch exit {detected:.2f}s, bound {bound}s"

        before = [a for at, a in answers if at < stall_at]
        assert before[-10:] == ["node1"] * 10, before
        after = [a for at, a in answers if at >= first_two]
        assert after and all(a == "node2" for a in after), after
        assert after_repair and all(a == "node2" for _, a in after_repair), after_repair

        both = [at for at, held_one, held_two in sampler.samples if held_one and held_two]
        assert not both, f"both nodes held the VIP at {both}"
        assert lan.holds(two.netns, vip) and not lan.holds(one.netns, vip)

        total = first_two - stall_at
        limit = bound + TEARDOWN + FALL * CHECK_INTERVAL + 3 * ADVERT_INT + MARGIN
        print(
            f"\nfailover: stall -> watch exit {detected:.2f}s (bound {bound:g}s), "
            f"-> VIP off node1 {dropped_at - stall_at:.2f}s, "
            f"-> VIP on node2 {moved_at - stall_at:.2f}s, "
            f"-> first answer from node2 {total:.2f}s (limit {limit:g}s); "
            f"{len(sampler.samples)} VIP samples, {len(answers)} requests"
        )
        assert total <= limit, f"first answer from node2 {total:.2f}s after the stall"

        pids = [p.pid for n in nodes for p in (n.keepalived, n.watch, n.nginx) if p is not None]
        pids.append(failed.pid)
        names = [ns.name for ns in (lan.hub, *lan.nodes)]

    # Nothing left behind: the processes, the namespaces.
    assert not [pid for pid in pids if alive(pid)]
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    assert not [name for name in names if re.search(rf"^{re.escape(name)}\b", listed, re.M)]
