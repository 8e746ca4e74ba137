# -*- test-case-name: tests.test_resources -*-
"""
The monitor's own resources, apart from the server's doing
(docs/failure-rules.md, "The monitor's own failures"): the errno values
that say they ran out (L{MONITOR_ERRNOS}), and starting the monitor's own
threads (the loop watchdog, name resolution) with a small stack and with
one error that says the monitor could not start one (message 42 with
C{thread 11}, exit 4), never a traceback.

A thread's stack is reserved address space: glibc's default (the 8 MiB of
C{ulimit -s}) made the loop watchdog fail to start under an address-space
limit of 40 MiB, while the threads here need a few dozen KiB.  Standard
library only.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable

__all__ = ["MONITOR_ERRNOS", "THREAD_STACK_BYTES", "ThreadUnavailable", "start_thread"]

#: errno values that say the monitor's own resources ran out -- descriptors
#: (of the process, of the system), memory, socket buffers -- never the
#: server's doing.
MONITOR_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

#: The stack of each of the monitor's threads: the watchdog runs a few
#: Python frames; getaddrinfo (NSS modules, resolv.conf) uses more, and
#: still well under this.
THREAD_STACK_BYTES = 512 * 1024

# threading.stack_size() is one setting for the whole process: a start
# holds it only for its own thread.
_STACK_SETTING = threading.Lock()


class ThreadUnavailable(RuntimeError):
    """
    A thread of the monitor's own could not be started: the system refused
    it (a pids or tasks limit, no address space for its stack, no memory).
    C{function} and C{number} are what message 42 shows (C{thread 11}).
    """

    function = "thread"

    def __init__(self, name: str, error: BaseException) -> None:
        self.number = errno.ENOMEM if isinstance(error, MemoryError) else errno.EAGAIN
        reason = str(error) or type(error).__name__
        super().__init__(f"cannot start the {name} thread: {reason}")
        self.name = name


def start_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """
    Start C{target} in a daemon thread called C{name}, on a stack of
    L{THREAD_STACK_BYTES}.

    @raise ThreadUnavailable: the system would not start it.
    """
    try:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with _STACK_SETTING:
            previous = threading.stack_size(THREAD_STACK_BYTES)
            try:
                thread.start()
            finally:
                threading.stack_size(previous)
    except (RuntimeError, MemoryError) as e:
        # RuntimeError("can't start new thread"): pthread_create said EAGAIN.
        raise ThreadUnavailable(name, e) from None
    return thread
