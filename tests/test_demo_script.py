"""
scripts/demo.sh and C{python -m ismon.demo} refusing what they cannot use.

The successful first contact (install into an empty HOME, run the demo,
run it again) needs the network and half a minute: that is the
"demo (as a newcomer)" step of scripts/test.sh, not a test here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "demo.sh"


def _demo_sh(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environment = {"PATH": os.environ["PATH"], "HOME": str(home), **env}
    return subprocess.run(
        ["bash", str(DEMO)],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_python_is_one_line(tmp_path: Path) -> None:
    done = _demo_sh(tmp_path, PYTHON=str(tmp_path / "no-such-python3"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"scripts/demo.sh: no {tmp_path / 'no-such-python3'} found: "
        "install Python 3.11 or newer, or set PYTHON=/path/to/python3"
    ]
    assert not (tmp_path / "home" / ".cache").exists()


def test_venv_folder_that_is_not_a_venv_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me\n")
    done = _demo_sh(tmp_path, PYTHON=sys.executable, ISMON_VENV=str(folder))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"scripts/demo.sh: {folder} exists and is not a venv; "
        "move it away or set ISMON_VENV to another folder"
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_demo_without_twisted_says_so_from_the_checkout_root(tmp_path: Path) -> None:
    # A venv without site-packages: from the checkout root "import ismon"
    # works and "import twisted" finds only the checkout's twisted/plugins.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
        check=True,
        timeout=120,
    )
    bare = tmp_path / "bare" / "bin" / "python"
    done = subprocess.run(
        [str(bare), "-m", "ismon.demo"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"ismon.demo: Twisted is not installed for {bare}; "
        "run bash scripts/demo.sh, which installs it"
    ]
