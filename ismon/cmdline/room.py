# -*- test-case-name: tests.test_resources -*-
"""
Whether the process's limits leave a watch room to watch (README "Exit
codes", docs/failure-rules.md "The monitor's own failures"): asked at
start-up, before the watch is declared started, so that a watch that
could not probe is refused with one line (message 42, exit 4) instead of
failing its probes with the monitor's own errors -- or, before ismon told
those apart, reporting a healthy server as failed.

  - descriptors: C{RLIMIT_NOFILE} must leave L{WATCH_DESCRIPTORS} for what
    the watch holds and L{PROBE_DESCRIPTORS} for probing, beyond whatever
    was open at start;
  - memory: the address space (C{RLIMIT_AS}, C{RLIMIT_DATA}) must take
    what is still to come, tried by reserving it (an anonymous mapping,
    never touched, so no memory is used).

Standard library only: it runs before Twisted is imported.
"""

from __future__ import annotations

import errno
import mmap
import os
import resource

from ismon.core.catalogue import MessageId, render

__all__ = [
    "MEMORY_TO_RUN",
    "MEMORY_TO_START",
    "PROBE_DESCRIPTORS",
    "WATCH_DESCRIPTORS",
    "Shortfall",
    "descriptor_shortfall",
    "memory_shortfall",
    "refusal",
]

#: Descriptors a watch holds for its life, its standard streams included:
#: the event loop and its wakers, the lock, the control socket, the record
#: it keeps ready, the log file, the JSON log, syslog (measured: 16 with
#: all of them).
WATCH_DESCRIPTORS = 16
#: Descriptors a watch needs free to probe: the probe's connection, the
#: name lookups in flight (getaddrinfo opens its files and sockets), the
#: control clients (`ismon status`, the cluster's monitor) at once.
PROBE_DESCRIPTORS = 16

MiB = 1024 * 1024
#: Address space still needed when the check runs before Twisted is
#: imported: the imports (measured: ~9 MiB without TLS, ~26 MiB with it)
#: and L{MEMORY_TO_RUN}.  A first sieve; the second check, once everything
#: is imported, is the one that counts.
MEMORY_TO_START = 16 * MiB
#: Address space still needed once everything is imported: a probe's
#: buffers, a TLS handshake, a name lookup's thread stack, the control
#: clients, the record and the last words.
MEMORY_TO_RUN = 8 * MiB


class Shortfall(Exception):
    """
    The limits leave no room to watch: C{function} and C{number} are what
    message 42 shows (C{nofile 24}), the text says which limit and what a
    watch needs.
    """

    def __init__(self, function: str, number: int, text: str) -> None:
        super().__init__(text)
        self.function = function
        self.number = number


def _open_descriptors() -> int:
    try:
        # listdir's own descriptor is in the list while it reads it.
        return len(os.listdir("/proc/self/fd")) - 1
    except OSError:
        return 3  # no /proc: count the standard streams only


def descriptor_shortfall() -> Shortfall | None:
    """
    None when C{RLIMIT_NOFILE} leaves room for a watch; a soft limit short
    of it is raised first, as far as the hard limit lets it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # What was open before us (beyond the standard streams) stays open.
    needed = WATCH_DESCRIPTORS + PROBE_DESCRIPTORS + max(0, _open_descriptors() - 3)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard == resource.RLIM_INFINITY or hard >= needed:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
                return None
            except (ValueError, OSError):
                pass
        return Shortfall(
            "nofile",
            errno.EMFILE,
            f"the descriptor limit (RLIMIT_NOFILE {soft}) leaves no room to watch:"
            f" a watch needs {needed} ({WATCH_DESCRIPTORS} of its own,"
            f" {PROBE_DESCRIPTORS} to probe, {needed - WATCH_DESCRIPTORS - PROBE_DESCRIPTORS}"
            " inherited)",
        )
    return None


def memory_shortfall(room: int) -> Shortfall | None:
    """
    None when C{room} more bytes of address space can be had: tried by
    mapping them (anonymous, private, never touched) and unmapping them.
    """
    try:
        reserved = mmap.mmap(-1, room, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, MemoryError, ValueError):
        limits = []
        for name in ("RLIMIT_AS", "RLIMIT_DATA"):
            soft, _ = resource.getrlimit(getattr(resource, name))
            if soft != resource.RLIM_INFINITY:
                limits.append(f"{name} {soft // MiB} MiB")
        which = ", ".join(limits) or "the system"
        return Shortfall(
            "memory",
            errno.ENOMEM,
            f"the address space ({which}) leaves no room to watch:"
            f" {room // MiB} MiB more cannot be had",
        )
    reserved.close()
    return None


def refusal(command: str, watch_id: str, shortfall: Shortfall) -> str:
    """The one line that refuses the start: message 42, then which limit and why."""
    text = render(
        MessageId.SYSTEM_ERROR,
        command=command,
        watch_id=watch_id,
        function=shortfall.function,
        number=shortfall.number,
    )
    return f"{text} {shortfall}"
