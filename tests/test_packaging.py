"""
What the lock, the build and the Debian package's sources promise, checked
without building the package (that is C{tests/test_deb.py}):

  - uv.lock agrees with pyproject.toml (C{scripts/locked.py check});
  - the version has one source, C{ismon.__version__}: the wheel's metadata
    and debian/changelog follow it;
  - C{python -m build} makes a wheel and an sdist that pass C{twine check};
  - every protocol of the table has its systemd unit, made from the one
    template (C{scripts/systemd/units.py --check});
  - the package's maintainer scripts and helpers pass shellcheck.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ismon import __version__
from ismon.core.protocols import PROTOCOLS

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def test_the_lock_agrees_with_pyproject() -> None:
    done = _run(sys.executable, "scripts/locked.py", "check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_lock_that_disagrees_is_found(tmp_path: Path) -> None:
    """A dependency added to pyproject.toml but not locked fails the check."""
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "locked.py", tmp_path / "scripts" / "locked.py")
    text = (tmp_path / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(
        text.replace('"attrs>=23.1",', '"attrs>=23.1",\n    "no-such-package-for-ismon>=1",')
    )
    done = _run(sys.executable, "scripts/locked.py", "check", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "uv.lock does not match pyproject.toml" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_lock_pins_every_package_with_hashes() -> None:
    with open(ROOT / "uv.lock", "rb") as f:
        packages = tomllib.load(f)["package"]
    for package in packages:
        if package["name"] == "ismon":
            continue
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files and all(f.get("hash", "").startswith("sha256:") for f in files), package
    names = {p["name"] for p in packages}
    assert {"twisted", "uv", "setuptools", "pytest"} <= names


def test_the_version_has_one_source() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ismon.__version__"}
    top = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
    match = re.match(r"ismon \(([^)]+)\) ", top)
    assert match, top
    assert match.group(1) == __version__, "add a debian/changelog entry for the new version"


@pytest.mark.slow
def test_build_makes_a_wheel_and_an_sdist_that_twine_accepts(tmp_path: Path) -> None:
    source = tmp_path / "src"
    listed = _run("git", "ls-files", "-z")
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    source.mkdir()
    for name in listed.stdout.split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "dist"
    # --no-isolation: setuptools and wheel come from the lock (group "build").
    built = _run(sys.executable, "-m", "build", "--no-isolation", "-o", str(out), str(source))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "deprecated" not in built.stdout + built.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"ismon-{__version__}-py3-none-any.whl", f"ismon-{__version__}.tar.gz"]
    checked = _run(sys.executable, "-m", "twine", "check", "--strict", *map(str, out.iterdir()))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_protocol_has_its_unit() -> None:
    done = _run(sys.executable, "scripts/systemd/units.py", "--check")
    assert done.returncode == 0, done.stderr
    for protocol in PROTOCOLS.values():
        unit = (ROOT / "scripts" / "systemd" / f"ismon-{protocol.name}@.service").read_text()
        assert f"ExecStart=/usr/bin/ismon {protocol.name} %i $ISMON_ARGS" in unit
        assert f"(stall monitor, {protocol.command})" in unit
        assert "\nUser=ismon\n" in unit


def test_the_package_installs_every_unit() -> None:
    install = (ROOT / "debian" / "ismon.install").read_text()
    assert "scripts/systemd/ismon-*@.service lib/systemd/system/" in install
    links = (ROOT / "debian" / "ismon.links").read_text()
    completion = (ROOT / "scripts" / "completion" / "ismon").read_text()
    verbs = re.search(r'verbs="([^"]*)"', completion)
    completes = re.search(r"(?m)^complete -F _ismon (.*)$", completion)
    assert verbs and completes
    for protocol in PROTOCOLS.values():
        assert f"usr/lib/ismon/bin/{protocol.command} usr/bin/{protocol.command}" in links
        assert f"completions/{protocol.command}\n" in links
        assert protocol.name in verbs.group(1).split()
        assert protocol.command in completes.group(1).split()


def test_shell_scripts_of_the_package_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    scripts = [
        "debian/finish-venv",
        "debian/ismon.postinst",
        "debian/ismon.prerm",
        "debian/ismon.postrm",
        "scripts/build-deb.sh",
    ]
    done = _run(shellcheck, *scripts)
    assert done.returncode == 0, done.stdout
    done = _run(shellcheck, "-s", "bash", "scripts/completion/ismon")
    assert done.returncode == 0, done.stdout
