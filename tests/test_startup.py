"""
What each way of starting loads (L{ismon.cmdline.startup},
docs/architecture.md "The fast path"): every control command only the
modules of L{CONTROL_MODULES} and nothing of Twisted, attrs or typing; a
plain watch its own protocol's probe and no TLS stack; a TLS watch the TLS
stack.  Each is a real process, its imports recorded by an audit hook as
they happen (the control commands leave with C{os._exit}), and for the
watches, the TLS libraries by what the process has mapped: an import the
watch blocks is still an attempt the hook sees.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import pytest

from ismon.cmdline.options import OPTIONS
from ismon.cmdline.startup import CONTROL_MODULES, TLS_MODULES, leave_out_tls_stack
from tests.servers import free_port
from tests.watchproc import LOOPBACK, PATIENCE, Processes, message

_WRAPPER = """
import os, sys
record = os.open(os.environ["ISMON_TEST_MODULES"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
def hook(event, args):
    if event == "import":
        os.write(record, (args[0] + "\\n").encode())
sys.addaudithook(hook)
program = sys.argv[1]
sys.argv = [program, *sys.argv[2:]]
from ismon import entry
if program == "ismon":
    entry.main()
else:
    entry.clp(program)
"""

#: The ismon modules a plain HTTP watch loads, and no others: its own
#: protocol's probe, no other protocol's, no TLS, no metrics, no fast
#: control commands.  A new import on this path is a deliberate change.
PLAIN_HTTP_WATCH = {
    "ismon",
    "ismon.cmdline",
    "ismon.cmdline.auth_file",
    "ismon.cmdline.cli",
    "ismon.cmdline.manual",
    "ismon.cmdline.options",
    "ismon.cmdline.pages",
    "ismon.cmdline.process",
    "ismon.cmdline.room",
    "ismon.cmdline.startup",
    "ismon.control",
    "ismon.control.amp",
    "ismon.control.client",
    "ismon.control.request",
    "ismon.core",
    "ismon.core.catalogue",
    "ismon.core.config",
    "ismon.core.exit_status",
    "ismon.core.protocols",
    "ismon.core.requests",
    "ismon.core.resources",
    "ismon.core.result",
    "ismon.core.status",
    "ismon.core.text",
    "ismon.core.timing",
    "ismon.entry",
    "ismon.probes",
    "ismon.probes.conversation",
    "ismon.probes.http",
    "ismon.probes.probe",
    "ismon.probes.resolve",
    "ismon.probes.table",
    "ismon.state",
    "ismon.state.files",
    "ismon.state.folder",
    "ismon.state.lock",
    "ismon.state.record",
    "ismon.watch",
    "ismon.watch.health",
    "ismon.watch.log_routing",
    "ismon.watch.notify",
    "ismon.watch.records",
    "ismon.watch.report",
    "ismon.watch.schedule",
    "ismon.watch.service",
    "ismon.wire",
    "ismon.wire.ampbox",
    "ismon.wire.errors",
    "ismon.wire.http",
}

#: What no control command may load.
_HEAVY = ("twisted", "zope", "attr", "attrs", "typing", "automat", "OpenSSL", "ssl")


class Recorder:
    """Runs ismon's entry points, recording the modules each run imports."""

    def __init__(self, processes: Processes, directory: Path, state: Path) -> None:
        self.processes = processes
        self.directory = directory
        self.state = state
        self.runs = 0

    def _file(self) -> Path:
        self.runs += 1
        return self.directory / f"modules-{self.runs}.txt"

    def argv(self, program: str, *args: str) -> list[str]:
        return [sys.executable, "-c", _WRAPPER, program, *args, "--state-dir", str(self.state)]

    def run(self, program: str, *args: str) -> tuple[int, set[str]]:
        record = self._file()
        done = self.processes.run(
            self.argv(program, *args), env={"ISMON_TEST_MODULES": str(record)}
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, _modules(record)

    def start(self, program: str, *args: str) -> tuple[object, Path]:
        record = self._file()
        watch = self.processes.start(
            self.argv(program, *args), env={"ISMON_TEST_MODULES": str(record)}
        )
        return watch, record


def _modules(record: Path) -> set[str]:
    return set(record.read_text().split()) if record.exists() else set()


def _ismon(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "ismon" or m.startswith("ismon.")}


def _tls_libraries(pid: int) -> list[str]:
    """The TLS libraries process C{pid} has mapped: libssl, _ssl, cryptography's bindings."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({name for name in ("libssl", "_ssl.cpython", "cryptography") if name in maps})


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in _HEAVY)


@pytest.mark.integration
def test_what_each_way_loads(processes: Processes, tmp_path: Path) -> None:
    state = tmp_path / "state"
    recorder = Recorder(processes, tmp_path, state)
    closed = free_port()
    plain = ["-s", LOOPBACK, "-n", str(closed), "-i", "60", "-c", "100", "-r", "1"]
    plain += ["--syslog-socket", "none"]
    watch, watch_record = recorder.start("ismon", "http", "web", *plain)
    watch.wait_for(re.escape(message(1, "clp_httpmon", "web")) + "$", PATIENCE)  # type: ignore[attr-defined]
    assert _tls_libraries(watch.pid) == []  # type: ignore[attr-defined]

    # Every control command, against the running watch and one that is not.
    for program, args in (
        ("ismon", ["status", "web"]),
        ("ismon", ["status", "web", "--json"]),
        ("ismon", ["status"]),
        ("ismon", ["disp", "web"]),
        ("ismon", ["pause", "web", "--for", "10m", "--reason", "kernel update"]),
        ("ismon", ["continue", "web"]),
        ("clp_httpmon", ["web", "--pause"]),
        ("clp_httpmon", ["web", "--continue"]),
        ("clp_smtpmon", ["web", "--disp"]),
        ("clp_dnsmon", ["web", "--disp"]),
        ("clp_tcpmon", ["web", "--pause"]),
        ("clp_tcpmon", ["web", "--continue"]),
        ("ismon", ["status", "other"]),
        ("ismon", ["del", "other"]),
        ("ismon", ["metrics"]),
        ("ismon", ["metrics", "--openmetrics"]),
        ("ismon", ["stop", "other"]),
        # Any protocol's command stops any watch, the fast way.
        ("clp_dnsmon", ["web", "--stop", "-r", "20"]),
        ("clp_httpmon", ["web", "--del"]),
    ):
        code, modules = recorder.run(program, *args)
        assert code in (0, 1), (program, args, code)
        assert _heavy(modules) == [], (program, args)
        assert _ismon(modules) <= CONTROL_MODULES, (
            program,
            args,
            _ismon(modules) - CONTROL_MODULES,
        )

    assert watch.wait(PATIENCE) == 0  # type: ignore[attr-defined]
    loaded = _modules(watch_record)
    assert _ismon(loaded) == PLAIN_HTTP_WATCH, (
        f"new: {sorted(_ismon(loaded) - PLAIN_HTTP_WATCH)}; "
        f"gone: {sorted(PLAIN_HTTP_WATCH - _ismon(loaded))}"
    )
    assert "http.cookiejar" not in loaded
    assert not any(m.startswith("twisted.web") for m in loaded)


@pytest.mark.integration
def test_a_tls_watch_loads_the_tls_stack(processes: Processes, tmp_path: Path) -> None:
    recorder = Recorder(processes, tmp_path, tmp_path / "state")
    closed = free_port()
    watch, record = recorder.start(
        "clp_smtpmon", "mail", "-s", LOOPBACK, "-n", str(closed), "--starttls",
        "-i", "60", "-c", "100", "-r", "1", "--syslog-socket", "none",
    )  # fmt: skip
    watch.wait_for(re.escape(message(1, "clp_smtpmon", "mail")) + "$", PATIENCE)  # type: ignore[attr-defined]
    assert _tls_libraries(watch.pid) != []  # type: ignore[attr-defined]
    watch.signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert watch.wait(PATIENCE) == 0  # type: ignore[attr-defined]
    loaded = _modules(record)
    assert {"OpenSSL", "ismon.probes.tls", "ismon.probes.smtp"} <= loaded
    assert "ismon.probes.http" not in loaded


# Every way a watch comes to speak TLS, per protocol: the stack stays.
_TLS_LINES = [
    (name, [*flag, *extra])
    for name, options in sorted(OPTIONS.items())
    for flag in (["--tls"], *([["--starttls"]] if "starttls" in options().synonyms else []))
    for extra in ([], ["--insecure"], ["--servername", "example.org"], ["--cert-warn-days", "3"])
]


@pytest.mark.parametrize(("name", "args"), _TLS_LINES)
def test_every_tls_option_keeps_the_tls_stack(name: str, args: list[str]) -> None:
    options = OPTIONS[name]()
    options.parseOptions(["w1", *args, *options.example_arguments])
    assert options.config is not None and options.config.request.tls is not None
    # A TLS configuration is never given the stand-ins (nothing changes here).
    before = {m: sys.modules.get(m) for m in TLS_MODULES}
    assert leave_out_tls_stack(options.config) is False
    assert {m: sys.modules.get(m) for m in TLS_MODULES} == before


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_a_plain_watch_leaves_the_tls_stack_out(name: str, processes: Processes) -> None:
    code = (
        "import json, sys\n"
        "from ismon.cmdline.startup import defer_cookiejar, leave_out_tls_stack, TLS_MODULES\n"
        "defer_cookiejar()  # as ismon.entry does first\n"
        "from ismon.cmdline.options import OPTIONS\n"
        f"options = OPTIONS[{name!r}]()\n"
        "options.parseOptions(['w1', '--cert-warn-days', '3', *options.example_arguments])\n"
        "left_out = leave_out_tls_stack(options.config)\n"
        "import twisted.internet.tcp\n"
        "print(json.dumps([left_out, sorted(m for m in TLS_MODULES if sys.modules.get(m))]))\n"
    )
    done = processes.run([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, []]
