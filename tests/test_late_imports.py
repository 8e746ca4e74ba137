"""
A running watch imports nothing once it has started (README "Install on a
node", "Upgrades"): a package upgrade replaces the files of ismon, Twisted
and the other libraries under a running watch, and a module imported
after that would be the new version's, mixed into the old one's.

Each watch here runs under an audit hook (PEP 578, event "import": raised
only when a module is really loaded, not when it is found in
C{sys.modules}) that writes every import to a file.  Once each watch has
probed successfully twice, the test marks the files, then drives every
path a long-lived watch takes late in its life: status, pause (with and
without expiry), continue, metrics, a stalled server (timeouts, retries,
the exit), a refused connection, TLS, SMTP, a stop by command and by
SIGTERM.  No watch may import anything after the mark.

The same under a real package upgrade: C{tests/test_deb.py}.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.certs import TestCerts
from tests.conftest import FreshServers
from tests.netns import wait_for_good_probes
from tests.watchproc import PATIENCE, Processes, command

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Logs each import (event "import": module name) with the seconds since start.
_RUNNER = """
import os, sys, time
log = open(os.environ["ISMON_IMPORT_LOG"], "w", buffering=1)
start = time.monotonic()
def audit(event, args):
    if event == "import":
        log.write(f"{time.monotonic() - start:.3f} {args[0]}\\n")
sys.addaudithook(audit)
command = sys.argv[1]
sys.argv = sys.argv[1:]
from ismon.entry import clp
clp(command)
"""

FAST = ["-i", "1", "-c", "1", "-r", "1", "--syslog-socket", "none"]


class AuditedWatch:
    def __init__(self, processes: Processes, state: Path, name: str, *argv: str) -> None:
        self.name = name
        self.state = state
        self.log = processes.directory / f"imports-{name}.log"
        self.process = processes.start(
            [_python(), "-c", _RUNNER, *argv],
            env={"ISMON_IMPORT_LOG": str(self.log)},
            name=name,
        )
        self.mark = 0

    def imports(self) -> list[str]:
        return self.log.read_text().splitlines()

    def probed_twice(self) -> None:
        self.process.detection_bound()  # it has started
        wait_for_good_probes(self.name, self.state, 2)
        self.mark = len(self.imports())
        assert self.mark > 100, "the audit hook saw no start-up"

    def late(self) -> list[str]:
        return self.imports()[self.mark :]


def _python() -> str:
    """This test environment's python, beside its ismon script."""
    return str(Path(command("ismon")[0]).with_name("python"))


@pytest.mark.skipif(
    not Path(command("ismon")[0]).with_name("python").exists(),
    reason="ismon's console script is not installed beside a python",
)
def test_a_running_watch_imports_nothing_after_start(
    fresh_servers: FreshServers, processes: Processes, tmp_path: Path, certs: TestCerts
) -> None:
    web = fresh_servers.nginx()
    closing = fresh_servers.nginx(tls=False)
    mail = fresh_servers.aiosmtpd()
    state = tmp_path / "state"
    at = str(web.host)
    watches = {
        "plain": ("clp_httpmon", "-s", at, "-n", str(web.port)),
        "tls": (
            "clp_httpmon",
            "-s",
            "localhost",
            "-n",
            str(web.https_ports["valid"]),
            "--tls",
            "--ca-file",
            str(certs.ca),
        ),
        "refused": ("clp_httpmon", "-s", at, "-n", str(closing.port)),
        "mail": ("clp_smtpmon", "-s", at, "-n", str(mail.port)),
        "stopped": ("clp_httpmon", "-s", at, "-n", str(web.port)),
        "termed": ("clp_httpmon", "-s", at, "-n", str(web.port)),
    }
    running = {
        name: AuditedWatch(
            processes, state, name, cmd, name, *argv, *FAST, "--state-dir", str(state)
        )
        for name, (cmd, *argv) in watches.items()
    }
    for watch in running.values():
        watch.probed_twice()

    def ismon(*argv: str) -> None:
        done = processes.run([*command("ismon"), *argv, "--state-dir", str(state)])
        assert done.returncode == 0, done

    for name in ("plain", "mail"):
        ismon("status", name)
        ismon("status", name, "--json")
        ismon("pause", name)
        ismon("continue", name)
        ismon("pause", name, "--for", "1m", "--reason", "maintenance")
        ismon("continue", name)
    ismon("status")
    ismon("metrics")
    ismon("stop", "stopped")
    running["termed"].process.signal(signal.SIGTERM)
    assert running["stopped"].process.wait() == 0
    assert running["termed"].process.wait() == 0

    closing.stop()
    assert running["refused"].process.wait() == 1
    deadline = time.monotonic() + PATIENCE
    with web.stalled(), mail.stalled():
        for name in ("plain", "tls", "mail"):
            code = running[name].process.wait(max(1.0, deadline - time.monotonic()))
            assert code == 1, running[name].process.output()

    late = {name: watch.late() for name, watch in running.items() if watch.late()}
    assert late == {}, f"imported after start: {late}"
    assert os.path.getsize(running["plain"].log) > 0
