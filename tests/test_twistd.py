"""
The same watch from an installed wheel, run by plain C{twistd}: build the
wheel, install it into a fresh venv, run C{twistd -n --pidfile PIDFILE
ismon-http ID ...} against nginx, and check that it behaves like
C{clp_httpmon} except where the README says twistd cannot:

  - it probes (C{ismon status}), C{ismon stop ID} ends it with 0 and
    twistd removes its pidfile;
  - a stalled nginx ends it with 1, within the printed bound;
  - a duplicate ID ends the second one with 3 (message 14);
  - SIGTERM ends it by that signal (143 in a shell): twistd re-raises it;
  - a bad parameter ends it with twistd's own status 1, not 2.

The venv has no pip and no packages of its own but the wheel: a C{.pth}
file puts this interpreter's site-packages (twisted, attrs, ...) behind it
as a plain path, so the C{.pth} files there -- among them the editable
install of the working tree -- are not processed, and C{ismon} as well as
C{twisted/plugins/ismon_plugins.py} can only come from the wheel.  The venv
gets a C{twistd} script of its own, like the one a twisted install writes.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from ismon.core.protocols import PROTOCOLS
from tests.conftest import FreshServers
from tests.servers import Nginx
from tests.test_manual import unformatted
from tests.watchproc import (
    LOOPBACK,
    PATIENCE,
    Processes,
    message,
    message_ids,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from (a copy: building writes build/ and *.egg-info).
SOURCES = ["pyproject.toml", "README.md", "ismon", "man", "twisted/plugins/ismon_plugins.py"]


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / "bin"
        self.python = self.bin / "python"
        self.twistd = self.bin / "twistd"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PYTHONPATH", "PYTHONHOME", "ISMON_STATE_DIR"):
            env.pop(name, None)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _build_wheel(work: Path) -> Path:
    source = work / "src"
    for name in SOURCES:
        origin = ROOT / name
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, target)
    wheels = work / "wheels"
    attempts = [
        # Offline first, when the build requirements are at hand ...
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"],
        # ... else the ordinary way (pip fetches setuptools and wheel).
        [sys.executable, "-m", "pip", "wheel", "--no-deps"],
    ]
    errors = []
    for argv in attempts:
        result = _run([*argv, "-w", str(wheels), str(source)], cwd=work)
        found = sorted(wheels.glob("ismon-*.whl"))
        if result.returncode == 0 and found:
            return found[0]
        errors.append(f"$ {' '.join(argv)}\n{result.stdout[-1500:]}{result.stderr[-1500:]}")
    pytest.fail("cannot build the wheel:\n" + "\n".join(errors))


def _make_venv(work: Path, wheel: Path) -> Venv:
    venv = Venv(work / "venv")
    result = _run([sys.executable, "-m", "venv", "--without-pip", str(venv.path)], cwd=work)
    assert result.returncode == 0, result.stderr
    purelib = _run(
        [str(venv.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=work,
        env=venv.env(),
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "zz_host_packages.pth").write_text("\n".join(sorted(ours)) + "\n")
    # pip of this interpreter, importable through that path, installs into the venv.
    result = _run(
        [
            *(str(venv.python), "-m", "pip", "install", "--no-deps", "--no-index"),
            *("--ignore-installed", "--no-compile", str(wheel)),
        ],
        cwd=work,
        env=venv.env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    venv.twistd.write_text(
        f"#!{venv.python}\nimport sys\nfrom twisted.scripts.twistd import run\nsys.exit(run())\n"
    )
    venv.twistd.chmod(0o755)
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    work = tmp_path_factory.mktemp("wheel")
    return _make_venv(work, _build_wheel(work))


def test_the_venv_runs_the_wheel_not_the_working_tree(venv: Venv, tmp_path: Path) -> None:
    code = (
        "import json, ismon, twisted.plugins.ismon_plugins as p\n"
        "from twisted.plugin import getPlugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "names = sorted(m.tapname for m in getPlugins(IServiceMaker) if 'ismon' in m.tapname)\n"
        "print(json.dumps([ismon.__file__, p.__file__, names]))\n"
    )
    result = _run([str(venv.python), "-c", code], cwd=tmp_path, env=venv.env())
    assert result.returncode == 0, result.stderr
    module, plugin, names = json.loads(result.stdout)
    assert Path(module).is_relative_to(venv.path), module
    assert Path(plugin).is_relative_to(venv.path), plugin
    assert names == sorted(["ismon-exporter", *(f"ismon-{name}" for name in PROTOCOLS)])
    for script in ("clp_httpmon", "clp_smtpmon", "ismon"):
        assert (venv.bin / script).read_text().startswith(f"#!{venv.python}")


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_man_finds_the_pages_of_the_installed_wheel(venv: Venv, tmp_path: Path) -> None:
    """
    README "Man pages": with only the venv's bin on PATH and no MANPATH,
    man-db looks in ../share/man beside it, where the wheel put the pages.
    """
    env = dict(venv.env(), PATH=f"{venv.bin}{os.pathsep}/usr/bin{os.pathsep}/bin", MANWIDTH="80")
    env.pop("MANPATH", None)
    for name in ("clp_httpmon", "clp_smtpmon", "ismon"):
        where = _run(["man", "-w", name], cwd=tmp_path, env=env, timeout=60)
        assert where.returncode == 0, where.stderr
        assert Path(where.stdout.strip()) == venv.path / "share" / "man" / "man8" / f"{name}.8"
        shown = _run(["man", name], cwd=tmp_path, env=env, timeout=60)
        assert shown.returncode == 0, shown.stderr
        text = unformatted(shown.stdout)
        assert text.startswith(f"{name.upper()}(8)"), text[:200]
        assert f"{name} - " in text


def twistd_argv(venv: Venv, pidfile: Path, watch_id: str, port: int, state: Path) -> list[str]:
    return [
        str(venv.twistd),
        "-n",
        "--pidfile",
        str(pidfile),
        "ismon-http",
        watch_id,
        "-s",
        LOOPBACK,
        "-n",
        str(port),
        "-i",
        "1",
        "-c",
        "2",
        "-r",
        "1",
        "--state-dir",
        str(state),
        "--syslog-socket",
        "none",
    ]


def ismon(venv: Venv, processes: Processes, *args: str) -> subprocess.CompletedProcess[str]:
    return processes.run([str(venv.bin / "ismon"), *args], env=venv.env())


def wait_for_probe(venv: Venv, processes: Processes, watch_id: str, state: Path) -> dict:
    deadline = time.monotonic() + PATIENCE
    while True:
        result = ismon(venv, processes, "status", watch_id, "--json", "--state-dir", str(state))
        if result.returncode == 0:
            current = json.loads(result.stdout)
            if (current.get("last_probe") or {}).get("ok"):
                return current
        assert time.monotonic() < deadline, result.stdout + result.stderr
        time.sleep(0.1)


def test_twistd_watch_stopped_with_ismon_stop_exits_0(
    venv: Venv, nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    pidfile, state = tmp_path / "twistd.pid", tmp_path / "state"
    # --debug: twistd's own lines too (README "Messages").
    watch = processes.start(
        [*twistd_argv(venv, pidfile, "tw1", nginx.port, state), "--debug"],
        env=venv.env(),
        name="twistd",
    )
    watch.wait_for(re.escape(message(1, "clp_httpmon", "tw1")) + "$")
    assert pidfile.read_text().strip() == str(watch.pid)
    current = wait_for_probe(venv, processes, "tw1", state)
    assert current["pid"] == watch.pid
    assert current["state"] == "watching"
    # It is the wheel that runs (twistd logs its interpreter, with --debug).
    assert str(venv.python) in watch.output()

    # A second start of the same ID, also under twistd: refused, exit 3.
    second = processes.run(
        twistd_argv(venv, tmp_path / "second.pid", "tw1", nginx.port, state), env=venv.env()
    )
    assert second.returncode == 3, second.stdout + second.stderr
    assert message(14, "clp_httpmon", "tw1") in second.stdout
    assert not (tmp_path / "second.pid").exists()

    stopped = ismon(venv, processes, "stop", "tw1", "--state-dir", str(state))
    assert stopped.returncode == 0, stopped.stderr
    assert watch.wait() == 0
    assert not pidfile.exists()
    output = watch.output()
    assert message_ids(output, "clp_httpmon", "tw1", [1, 2, 3, 6]) == [2, 1, 3, 6]
    assert "Traceback" not in output


def test_twistd_watch_of_a_stalled_server_exits_1(
    venv: Venv, fresh_servers: FreshServers, processes: Processes, tmp_path: Path
) -> None:
    nginx = fresh_servers.nginx(tls=False)
    pidfile, state = tmp_path / "twistd.pid", tmp_path / "state"
    watch = processes.start(
        twistd_argv(venv, pidfile, "tw2", nginx.port, state), env=venv.env(), name="twistd"
    )
    bound = watch.detection_bound()
    watch.wait_for(re.escape(message(1, "clp_httpmon", "tw2")) + "$")
    wait_for_probe(venv, processes, "tw2", state)
    with nginx.stalled():
        stalled_at = time.monotonic()  # once every nginx process is stopped
        code = watch.wait(bound + 10)
        elapsed = time.monotonic() - stalled_at
    output = watch.output()
    assert code == 1, output
    assert elapsed <= bound + 0.5, f"{elapsed:.2f}s, bound {bound}s"
    assert not pidfile.exists()
    ids = message_ids(output, "clp_httpmon", "tw2", [1, 2, 3, 6, 74])
    assert ids == [2, 1, 74, 74, 74, 6]
    # Without --debug, twistd's log is the message catalogue only.
    strays = [line for line in output.splitlines() if not line.endswith(" [ID:tw2]")]
    assert strays == [], output


def test_twistd_watch_stopped_by_sigterm_ends_by_that_signal(
    venv: Venv, nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """README: twistd re-raises the signal after its shutdown (143 in a shell)."""
    pidfile, state = tmp_path / "twistd.pid", tmp_path / "state"
    watch = processes.start(
        twistd_argv(venv, pidfile, "tw3", nginx.port, state), env=venv.env(), name="twistd"
    )
    watch.wait_for(re.escape(message(1, "clp_httpmon", "tw3")) + "$")
    # Message 1 is logged from startService, which twistd runs BEFORE the
    # reactor installs its signal handlers: a SIGTERM then would take the
    # default action (no shutdown, pidfile left).  An answered control
    # request proves the reactor is running.
    wait_for_probe(venv, processes, "tw3", state)
    watch.signal(signal.SIGTERM)
    assert watch.wait() == -signal.SIGTERM
    assert not pidfile.exists()
    # The watch itself went through its normal stop.
    assert message_ids(watch.output(), "clp_httpmon", "tw3", [1, 3, 6]) == [1, 3, 6]


def test_twistd_bad_parameter_ends_with_twistd_status_1(
    venv: Venv, processes: Processes, tmp_path: Path
) -> None:
    """README: twistd reports a bad command line with its own status 1, not 2."""
    pidfile, state = tmp_path / "twistd.pid", tmp_path / "state"
    argv = twistd_argv(venv, pidfile, "tw4", 80, state)
    argv[argv.index("-i") + 1] = "0"
    result = processes.run(argv, env=venv.env())
    assert result.returncode == 1
    both = result.stdout + result.stderr  # twistd prints its usage and the error to stdout
    assert '-i (interval) must be a whole number from 1 to 10000, not "0"' in both
    assert "Traceback" not in both
    assert not pidfile.exists()
    assert not state.exists()


def test_the_private_twistd_api_is_still_there() -> None:
    """
    ismon.cmdline.twistd.twistd_log_observer is the one use of twistd's
    private API (UnixAppLogger._getLogObserver).  When a Twisted release
    changes it, the adapter falls back to an unfiltered log; this test fails
    loudly instead, so that the change is seen here and not in a watch's log.
    """
    from twisted.logger import ILogObserver
    from twisted.scripts.twistd import ServerOptions

    from ismon.cmdline.twistd import twistd_log_observer

    options = ServerOptions()
    options.parseOptions(["-n", "--pidfile", "", "ismon-http", "web1"])
    observer = twistd_log_observer(options)
    assert observer is not None, "twisted.scripts._twistd_unix changed: see ismon.cmdline.twistd"
    assert ILogObserver.providedBy(observer)


def test_twistd_watch_without_room_is_refused_with_one_line_and_4(
    venv: Venv, tmp_path: Path
) -> None:
    """As the commands' watches (tests/test_resources.py): 12 descriptors leave no room."""
    pidfile, state = tmp_path / "twistd.pid", tmp_path / "state"
    result = subprocess.run(
        twistd_argv(venv, pidfile, "tw5", 80, state),
        env=venv.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (12, 12)),
    )
    both = result.stdout + result.stderr
    assert result.returncode == 4, both
    assert "The clp_httpmon has detected system error (nofile 24). [ID:tw5]" in both
    assert "Traceback" not in both
    assert not state.exists()
