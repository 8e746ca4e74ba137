#!/usr/bin/env python3
"""
Installs from, checks and refreshes the lock, uv.lock: every Python
package ismon, its tests and its build use, at exact versions, with the
hashes of their files (README "Install and test", "The lock").

    python3 scripts/locked.py refresh          # uv lock --upgrade: newest allowed versions
    python3 scripts/locked.py check            # exit 1 when pyproject.toml and uv.lock disagree
    python3 scripts/locked.py requirements [--extra test] [--group build] [-o FILE]
    VENV/bin/python scripts/locked.py install [--extra test] [--editable]

C{install} installs into the environment of the Python that runs it: first
uv (pinned and hashed in uv.lock itself, group "lock"), read here with
tomllib, so nothing unpinned is ever downloaded; then what C{uv export}
lists, with pip in hash-checking mode and C{--no-deps}; then ismon itself,
built without build isolation from the locked setuptools (group "build").
C{--editable} installs ismon in compat mode, the only editable mode twistd
sees twisted/plugins in.

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "uv.lock"
PIP = [sys.executable, "-m", "pip"]
QUIET_PIP = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore"}


class LockError(Exception):
    """The lock cannot be used; says why, on one line."""


def uv_requirement(lock: Path = LOCK) -> str:
    """The pip requirement line of the uv that the lock pins, with its hashes."""
    try:
        with open(lock, "rb") as f:
            packages = tomllib.load(f).get("package", [])
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise LockError(f"cannot read {lock}: {e}") from None
    for package in packages:
        if package.get("name") == "uv":
            hashes = [w["hash"] for w in package.get("wheels", []) if "hash" in w]
            sdist = package.get("sdist", {})
            if "hash" in sdist:
                hashes.append(sdist["hash"])
            if not hashes:
                break
            return f"uv=={package['version']} " + " ".join(f"--hash={h}" for h in hashes)
    raise LockError(f"{lock} pins no uv with hashes (dependency group 'lock' in pyproject.toml)")


def _run(command: list[str], **kwargs: object) -> None:
    try:
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    except subprocess.CalledProcessError as e:
        raise LockError(f"{' '.join(command[:4])} ... failed (exit {e.returncode})") from None
    except OSError as e:
        raise LockError(f"cannot run {command[0]}: {e.strerror}") from None


def _uv() -> list[str]:
    """uv in this environment, installed from the lock if needed."""
    wanted = uv_requirement().split()[0].split("==")[1]
    try:
        found = subprocess.run(
            [sys.executable, "-m", "uv", "--version"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        ).stdout.split()
    except OSError:
        found = []
    if found[1:2] != [wanted]:
        with tempfile.TemporaryDirectory(prefix="ismon-lock-") as tmp:
            requirement = Path(tmp) / "uv.txt"
            requirement.write_text(uv_requirement() + "\n")
            _run(
                [*PIP, "install", "-q", "--require-hashes", "--no-deps", "-r", str(requirement)],
                env=QUIET_PIP,
            )
    return [sys.executable, "-m", "uv"]


def requirements(extras: list[str], groups: list[str], only_groups: bool = False) -> str:
    """What uv export lists (hashes, no ismon itself) for these extras and groups."""
    command = [
        *_uv(),
        "export",
        "--frozen",
        "--no-emit-project",
        "--no-default-groups",
        "--no-header",
        "--format",
        "requirements-txt",
        "--project",
        str(ROOT),
    ]
    for extra in extras:
        command += ["--extra", extra]
    for group in groups:
        command += ["--only-group" if only_groups else "--group", group]
    try:
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise LockError(f"cannot run uv: {e.strerror}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise LockError(f"uv export failed (exit {done.returncode}): {last}")
    return done.stdout


def install(extras: list[str], editable: bool) -> None:
    """Everything the lock lists for these extras, then ismon, into this environment."""
    text = requirements(extras, ["build"])
    with tempfile.TemporaryDirectory(prefix="ismon-lock-") as tmp:
        listed = Path(tmp) / "requirements.txt"
        listed.write_text(text)
        _run(
            [*PIP, "install", "-q", "--require-hashes", "--no-deps", "-r", str(listed)],
            env=QUIET_PIP,
        )
    project = [*PIP, "install", "-q", "--no-deps", "--no-build-isolation"]
    if editable:
        project += ["-e", str(ROOT), "--config-settings", "editable_mode=compat"]
    else:
        project.append(str(ROOT))
    _run(project, env=QUIET_PIP)


def _refresh_python() -> str:
    """A Python whose environment may get uv: this venv, or a private one."""
    if sys.prefix != sys.base_prefix:
        return sys.executable
    venv = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ismon-lock-venv"
    if not (venv / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    return str(venv / "bin" / "python")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/locked.py", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    refresh = verbs.add_parser(
        "refresh", help="uv lock --upgrade (newest versions pyproject.toml allows)"
    )
    refresh.add_argument(
        "--no-upgrade", action="store_true", help="change only what pyproject.toml needs"
    )
    verbs.add_parser("check", help="exit 1 when pyproject.toml and uv.lock disagree")
    listing = verbs.add_parser("requirements", help="the locked requirements, with hashes")
    listing.add_argument("--extra", action="append", default=[])
    listing.add_argument("--group", action="append", default=[])
    listing.add_argument("--only-group", action="store_true", help="the groups alone")
    listing.add_argument("-o", "--output", type=Path)
    installing = verbs.add_parser(
        "install", help="install from the lock into this Python's environment"
    )
    installing.add_argument("--extra", action="append", default=[])
    installing.add_argument("--editable", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.verb == "refresh":
            python = _refresh_python()
            if python != sys.executable:
                return subprocess.call([python, __file__, *sys.argv[1:]], stdin=subprocess.DEVNULL)
            _run(
                [
                    *_uv(),
                    "lock",
                    "--project",
                    str(ROOT),
                    *([] if args.no_upgrade else ["--upgrade"]),
                ]
            )
        elif args.verb == "check":
            python = _refresh_python()
            if python != sys.executable:
                return subprocess.call([python, __file__, "check"], stdin=subprocess.DEVNULL)
            done = subprocess.run(
                [*_uv(), "lock", "--check", "--offline", "--project", str(ROOT)],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                print(
                    f"scripts/locked.py: uv.lock does not match pyproject.toml ({last});"
                    " run: python3 scripts/locked.py refresh",
                    file=sys.stderr,
                )
                return 1
        elif args.verb == "requirements":
            text = requirements(args.extra, args.group, args.only_group)
            if args.output:
                try:
                    args.output.write_text(text)
                except OSError as e:
                    raise LockError(f"cannot write {args.output}: {e.strerror}") from None
            else:
                sys.stdout.write(text)
        else:
            install(args.extra, args.editable)
    except LockError as e:
        print(f"scripts/locked.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
