"""
A Debian 12 with a real systemd 252, booted in C{systemd-nspawn}, for the
tests of the Debian package (C{tests/test_deb.py}).

One base root per machine is kept in C{/var/cache/ismon-tests}
(C{ISMON_TEST_CACHE}), made by C{debootstrap --variant=minbase} when
missing (about a minute; under a lock, so two runs at once make it once).
Each L{Container} boots a private copy: an overlay on the base (a copy
when overlayfs is not available), removed at L{Container.stop}.

The container shares the machine's network (no C{--private-network}), so
its servers listen on free loopback ports, and apt inside it reaches
Debian.  Commands run inside through C{nsenter -t PID -a}, PID being the
container's systemd.  Stopping sends SIGTERM to the systemd-nspawn
process, which powers the container off; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["BASE_PACKAGES", "Container", "ContainerUnavailable", "base_root", "host_mirror"]

SUITE = "bookworm"


def host_mirror() -> str:
    """
    The Debian mirror this machine's apt uses for its own suite (the first
    C{URIs:} of a C{.sources} file, or C{deb} line, whose suites include
    C{bookworm}): the base root and the container get their packages from
    where the machine does.
    """
    import glob
    import re

    for name in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        try:
            text = Path(name).read_text()
        except OSError:
            continue
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"(?m)^URIs:\s*(\S+)", stanza)
                suites = re.search(r"(?m)^Suites:(.*)$", stanza)
                if uris and suites and SUITE in suites.group(1).split():
                    return uris.group(1)
        elif name.endswith(".list"):
            for line in text.splitlines():
                match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                if match and match.group(2) == SUITE:
                    return match.group(1)
    raise ContainerUnavailable(f"no Debian {SUITE} mirror in this machine's apt sources")


#: What the base root holds besides minbase: a booting systemd, the
#: interpreter the package's venv links to, ps, and nginx to watch (its
#: own service masked: the tests run theirs on a free port).
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "procps", "nginx-light")
CACHE = Path(os.environ.get("ISMON_TEST_CACHE", "/var/cache/ismon-tests"))
#: Seconds: debootstrap of the base; a boot; a command inside.
BUILD_TIMEOUT = 900.0
BOOT_TIMEOUT = 120.0
RUN_TIMEOUT = 120.0


class ContainerUnavailable(Exception):
    """This machine cannot boot the container (not root, no nspawn ...)."""


def _recipe() -> str:
    # A new package list makes a new base, under a new name.
    text = f"{SUITE} {','.join(BASE_PACKAGES)} masked:nginx.service hosts"
    return f"{SUITE}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise ContainerUnavailable("needs root")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            raise ContainerUnavailable(
                f"{tool} is not installed (apt-get install systemd-container debootstrap)"
            )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def base_root() -> Path:
    """The cached base root, made first if missing."""
    _check_tools()
    CACHE.mkdir(parents=True, exist_ok=True)
    name = _recipe()
    root = CACHE / name
    done = root / ".ismon-base-complete"
    if done.exists():
        return root
    with _locked(CACHE / f"{name}.lock"):
        if done.exists():
            return root
        tmp = CACHE / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        built = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(BASE_PACKAGES),
                SUITE,
                str(tmp),
                host_mirror(),
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if built.returncode != 0:
            raise ContainerUnavailable(f"debootstrap failed: {built.stdout[-2000:]}")
        # debootstrap writes no /etc/hosts, which the installer of a real
        # node does: without it "localhost" does not resolve.
        (tmp / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
        masked = tmp / "etc" / "systemd" / "system" / "nginx.service"
        masked.unlink(missing_ok=True)
        masked.symlink_to("/dev/null")
        (tmp / ".ismon-base-complete").touch()
        tmp.rename(root)
    return root


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if fields and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Container:
    """
    A booted copy of the base root.  Use as a context manager, or call
    L{start} and L{stop}.
    """

    def __init__(self, base: Path, work: Path) -> None:
        self.base = base
        self.work = work
        self.root = work / "root"
        self._overlay = False
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the container's systemd, as the host sees it
        self.log = work / "nspawn.log"
        self.timings: dict[str, float] = {}
        self.port = 0  # what its user serves on (free loopback ports)
        self.tls_port = 0

    # -- life ----------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        for name in ("root", "upper", "overlay-work"):
            (self.work / name).mkdir(exist_ok=True)
        options = (
            f"lowerdir={self.base},upperdir={self.work / 'upper'},"
            f"workdir={self.work / 'overlay-work'}"
        )
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if mounted.returncode == 0:
            self._overlay = True
        else:
            subprocess.run(["cp", "-a", f"{self.base}/.", str(self.root)], check=True, timeout=300)
        self.timings["copy"] = time.monotonic() - started
        with open(self.log, "wb") as out:
            self._nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "-D",
                    str(self.root),
                    "--register=no",
                    "--keep-unit",
                    "-b",
                    "--console=passive",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not self.pid:
            if self._nspawn.poll() is not None:
                raise ContainerUnavailable(f"systemd-nspawn ended: {self.log.read_text()[-2000:]}")
            # Its child becomes the container's systemd once nspawn has
            # set it up (before that it is a copy of nspawn).
            for child in _children(self._nspawn.pid):
                if _comm(child) == "systemd":
                    self.pid = child
                    break
            if self.pid:
                break
            if time.monotonic() > deadline:
                raise ContainerUnavailable("the container's systemd did not start")
            time.sleep(0.05)
        while True:
            # Until systemd has its private socket, systemctl cannot ask it
            # and answers nothing at once.
            left = max(1.0, deadline - time.monotonic())
            state = self.run(
                "systemctl", "is-system-running", "--wait", check=False, timeout=left
            ).stdout.strip()
            if state or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if state not in ("running", "degraded"):
            raise ContainerUnavailable(f"the container's systemd is {state!r}")
        self.timings["boot"] = time.monotonic() - started - self.timings["copy"]

    def stop(self) -> None:
        nspawn, self._nspawn = self._nspawn, None
        if nspawn is not None and nspawn.poll() is None:
            nspawn.send_signal(signal.SIGTERM)  # powers the container off
            try:
                nspawn.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(nspawn.pid, signal.SIGKILL)
                nspawn.wait(30)
        if self._overlay:
            for lazy in ([], ["-l"]):
                done = subprocess.run(
                    ["umount", *lazy, str(self.root)], capture_output=True, timeout=60, check=False
                )
                if done.returncode == 0:
                    break
            self._overlay = False
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Container:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside --------------------------------------------------------------

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = RUN_TIMEOUT,
        input: str | None = None,
        user: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run C{argv} inside (as root, or as C{user}, a name or uid that is its group too)."""
        prefix = ["nsenter", "-t", str(self.pid), "-a"]
        if user is not None:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        done = subprocess.run(
            [*prefix, *argv],
            capture_output=True,
            text=True,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def write(self, path: str, text: str) -> None:
        """Write a file inside (through the container's own mounts: /run too)."""
        self.run("sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "-", path, input=text)

    def put(self, source: Path) -> str:
        """Copy a host file into the container's /var/tmp; its path inside."""
        target = self.root / "var" / "tmp" / source.name
        shutil.copy(source, target)
        return f"/var/tmp/{source.name}"

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """C{systemctl show -p ...} of C{unit}, as a dict."""
        text = self.run("systemctl", "show", unit, *(f"-p{p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def wait_for(
        self, unit: str, states: Sequence[str], timeout: float, prop: str = "ActiveState"
    ) -> float:
        """Seconds until C{unit}'s C{prop} is one of C{states}; fails after C{timeout}."""
        started = time.monotonic()
        while True:
            value = self.show(unit, prop)[prop]
            elapsed = time.monotonic() - started
            if value in states:
                return elapsed
            if elapsed > timeout:
                raise AssertionError(f"{unit}: {prop}={value} after {timeout} s, not {states}")
            time.sleep(0.05)
