"""
A watch's log is the message catalogue (issue 9; README "Messages"): a real
watch against a real server, started, probing, and stopped with C{--stop},
writes nothing but catalogue lines to stdout, C{--logfile}, syslog and the
JSON log -- no C{ControlFactory starting on ...}, no C{(UNIX Port ...
Closed)}, no C{Main loop terminated.}.  With C{--debug} those Twisted lines
are there too.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.servers import Nginx, Rsyslog, ServerProcess
from tests.watchproc import LOOPBACK, Processes, command, message_ids

pytestmark = pytest.mark.integration

# Lines of Twisted itself that a watch's log used to carry.
TWISTED_LINES = ("ControlFactory starting on", "(UNIX Port", "Main loop terminated.")


def _catalogue_line(cmd: str, watch_id: str) -> re.Pattern[str]:
    """A log line of Twisted's text format that carries one catalogue message."""
    return re.compile(
        rf"^\S+ \[{cmd}#(info|warn|error)\] "
        rf"(The {cmd} .*|The specified monitor id .*) \[ID:{watch_id}\]$"
    )


def _run_and_stop(
    processes: Processes,
    cmd: str,
    port: int,
    folder: Path,
    syslog: str,
    *extra: str,
) -> tuple[str, str, list[dict[str, object]]]:
    """Start a watch, let it probe, stop it with --stop; its stdout, logfile, JSON log."""
    state, logfile, json_log = folder / "state", folder / "watch.log", folder / "watch.jsonl"
    watch = processes.start(
        [
            *command(cmd),
            "log1",
            *("-s", LOOPBACK, "-n", str(port), "-i", "1", "-c", "2", "-r", "1"),
            *("--state-dir", str(state), "--syslog-socket", syslog),
            *("--logfile", str(logfile), "--json-log", str(json_log)),
            *extra,
        ],
        name=cmd,
    )
    watch.wait_for(r"has started watching", 20)
    deadline = time.monotonic() + 15
    while True:
        shown = processes.run(
            [*command("ismon"), "status", "log1", "--json", "--state-dir", str(state)]
        )
        if shown.returncode == 0 and (json.loads(shown.stdout).get("last_probe") or {}).get("ok"):
            break
        assert time.monotonic() < deadline, shown.stdout + shown.stderr + watch.output()
        time.sleep(0.1)
    stopped = processes.run([*command(cmd), "log1", "--stop", "--state-dir", str(state)])
    assert stopped.returncode == 0, stopped.stderr
    assert watch.wait(10) == 0, watch.output()
    records = [json.loads(line) for line in json_log.read_text().splitlines()]
    return watch.output(), logfile.read_text(), records


def _server_port(cmd: str, nginx: Nginx, aiosmtpd: ServerProcess) -> int:
    return nginx.port if cmd == "clp_httpmon" else aiosmtpd.port


@pytest.mark.parametrize("cmd", ["clp_httpmon", "clp_smtpmon"])
def test_the_log_holds_only_catalogue_lines(
    cmd: str,
    nginx: Nginx,
    aiosmtpd: ServerProcess,
    rsyslog: Rsyslog,
    processes: Processes,
    tmp_path: Path,
) -> None:
    output, logfile, records = _run_and_stop(
        processes, cmd, _server_port(cmd, nginx, aiosmtpd), tmp_path, str(rsyslog.socket)
    )
    catalogue = _catalogue_line(cmd, "log1")
    for name, text in (("stdout", output), ("--logfile", logfile)):
        lines = text.splitlines()
        assert lines, name
        strays = [line for line in lines if not catalogue.match(line)]
        assert strays == [], f"{name} holds lines that are not catalogue messages:\n{text}"
        # Watching (2), started (1), stopping (3), terminating (6): in order.
        assert message_ids(text, cmd, "log1", [1, 2, 3, 6]) == [2, 1, 3, 6], text
    assert records and all(isinstance(r["id"], int) for r in records), records
    assert all(str(r["text"]).endswith(" [ID:log1]") for r in records), records
    rsyslog.wait_for(rf"^daemon\.info {cmd}\[\d+\]: The {cmd} will terminate\. \[ID:log1\]$")
    ours = [line for line in rsyslog.lines() if f" {cmd}[" in line]
    assert ours and all(line.endswith(" [ID:log1]") for line in ours), ours


@pytest.mark.parametrize("cmd", ["clp_httpmon", "clp_smtpmon"])
def test_debug_adds_twisteds_own_lines(
    cmd: str,
    nginx: Nginx,
    aiosmtpd: ServerProcess,
    processes: Processes,
    tmp_path: Path,
) -> None:
    output, logfile, records = _run_and_stop(
        processes, cmd, _server_port(cmd, nginx, aiosmtpd), tmp_path, "none", "--debug"
    )
    for name, text in (("stdout", output), ("--logfile", logfile)):
        for twisted_line in TWISTED_LINES:
            assert twisted_line in text, f"{name} lacks {twisted_line!r}:\n{text}"
        # The probe lines, and still every catalogue message.
        assert re.search(r"#debug\] probe ", text), text
        assert message_ids(text, cmd, "log1", [1, 2, 3, 6]) == [2, 1, 3, 6], text
    texts = [str(r["text"]) for r in records if r["id"] is None]
    assert any(t.startswith("ControlFactory starting on") for t in texts), records
