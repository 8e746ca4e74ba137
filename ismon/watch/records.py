# -*- test-case-name: tests.test_service,tests.test_control,tests.test_last_exit -*-
"""
A running watch's records and its control socket: the lock and pidfile
in the state folder (L{ismon.state}), and the AMP socket beside them that
C{ismon status|stop|pause|continue} talk to (L{ismon.control}); and, as
the watch ends, the record of its last exit (README "Records").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from ismon.control.amp import IWatchControl, listen_control
from ismon.state.folder import StateDir, default_state_dir
from ismon.state.lock import WatchLock
from ismon.state.record import write_last_exit

__all__ = ["WatchRecords"]

_log = Logger()


class WatchRecords:
    """The records of one watch ID, held from L{take} to L{close}."""

    def __init__(self, state: StateDir, lock: WatchLock, watch_id: str) -> None:
        self._state = state
        self._lock: WatchLock | None = lock
        self._watch_id = watch_id
        self._port: IListeningPort | None = None

    @classmethod
    def take(cls, state_dir: Path | None, watch_id: str) -> WatchRecords:
        """
        Lock the ID in the state folder.

        @raise ismon.state.lock.AlreadyRunning: a live watch holds it.
        @raise OSError: the folder or the records cannot be made.
        """
        state = StateDir.open(state_dir or default_state_dir())
        return cls(state, WatchLock.acquire(state, watch_id), watch_id)

    def listen(self, reactor: Any, control: IWatchControl) -> Deferred[IListeningPort]:
        """Open the control socket; the Deferred fires with its port."""
        listening = listen_control(reactor, self._state.socket_path(self._watch_id), control)

        def opened(port: IListeningPort) -> IListeningPort:
            self._port = port
            return port

        return listening.addCallback(opened)

    def write_last_exit(self, record: dict[str, object]) -> bool:
        """
        Write the record of the watch's last exit (L{ismon.state.record.write_last_exit}),
        while the lock is still ours, so a reader that finds the lock free
        finds the record too.  Never raises: a record that cannot be written
        must not keep the watch from exiting.  Safe from another thread (the
        loop watchdog's): it only writes a file.

        @return: whether it was written.
        """
        lock = self._lock
        if lock is None or not lock.held:
            return False
        try:
            write_last_exit(self._state, self._watch_id, record)
        except Exception:
            return False
        return True

    def close(self) -> Deferred[None]:
        """
        Close the control socket, then release the lock (which removes the
        records).  Twisted removes the socket file a turn after
        stopListening; the lock goes only then, or a new watch of this ID
        could lose its fresh socket to our late cleanup.  Never fails.
        """
        port, self._port = self._port, None
        closing: Deferred[Any] = (
            maybeDeferred(port.stopListening) if port is not None else succeed(None)
        )
        lock, self._lock = self._lock, None

        def release(_: object) -> None:
            try:
                if lock is not None:
                    lock.release()
            except Exception:
                _log.failure("Could not remove the records of {watch}", watch=self._watch_id)

        return closing.addBoth(release)
