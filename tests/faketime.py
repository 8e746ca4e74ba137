"""
A fake wall clock for the processes a test starts: libfaketime, driven
through its timestamp file.

libfaketime re-reads the file at every C{time()} call of a process started
with L{FakeClock.env} (C{FAKETIME_NO_CACHE=1}), so rewriting it steps the
wall clock of a running watch, while C{FAKETIME_DONT_FAKE_MONOTONIC=1}
leaves C{time.monotonic()} alone -- which is what an NTP step or an
operator's C{date -s} does to a real process.  The test process itself is
not faked.

The C{clock} fixture in C{tests/conftest.py} hands one to a test, or skips
it where libfaketime is not installed.
"""

from __future__ import annotations

import glob
import os
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["FakeClock", "find_libfaketime"]


def find_libfaketime() -> str | None:
    """The path of libfaketime.so.1 (Debian's multiarch folders, else dpkg's list), or None."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    found += [p for p in ("/usr/lib/faketime/libfaketime.so.1",) if os.path.exists(p)]
    if found:
        return found[0]
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "libfaketime"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return None
    for line in listing.splitlines():
        if line.endswith("/libfaketime.so.1"):
            return line
    return None


class FakeClock:
    """The wall clock of the processes started with L{env}: an offset file."""

    def __init__(self, file: Path, library: str) -> None:
        self.file = file
        self.library = library
        self._slewing: threading.Thread | None = None
        self._stop = threading.Event()
        self.set("+0")

    def env(self) -> dict[str, str]:
        """The environment variables that put a process on this clock."""
        return {
            "LD_PRELOAD": self.library,
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def set(self, spec: str) -> None:
        """Write a libfaketime spec (C{-3600}, C{+0 x2}) atomically."""
        # Whole, then renamed: the faked process reads the file on every call.
        temporary = self.file.with_suffix(".new")
        temporary.write_text(spec + "\n")
        os.replace(temporary, self.file)

    def offset(self, seconds: float) -> None:
        """Put the wall clock C{seconds} away from the real one."""
        self.set(f"{seconds:+.3f}")

    def slew(self, rate: float, step: float = 0.05) -> None:
        """From now on, let the wall clock run at C{rate} in small steps (a thread)."""
        self.stop_slewing()
        self._stop.clear()
        began = time.monotonic()

        def run() -> None:
            while not self._stop.wait(step):
                self.offset((rate - 1) * (time.monotonic() - began))

        self._slewing = threading.Thread(target=run, name="slew", daemon=True)
        self._slewing.start()

    def stop_slewing(self) -> None:
        if self._slewing is not None:
            self._stop.set()
            self._slewing.join(5)
            self._slewing = None
