# -*- test-case-name: tests.test_service,tests.test_control,tests.test_last_exit -*-
"""
A running watch's records and its control socket: the lock and pidfile
in the state folder (L{ismon.state}), and the AMP socket beside them that
C{ismon status|stop|pause|continue} talk to (L{ismon.control}); and, as
the watch ends, the record of its last exit (README "Records").
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort

from ismon.control.amp import IWatchControl, listen_control
from ismon.state.folder import StateDir, default_state_dir
from ismon.state.lock import AlreadyRunning, WatchLock
from ismon.state.record import PreparedRecord, prepare_record

__all__ = ["WatchRecords"]


class WatchRecords:
    """The records of one watch ID, held from L{take} to L{close}."""

    def __init__(
        self, state: StateDir, lock: WatchLock, watch_id: str, prepared: PreparedRecord | None
    ) -> None:
        self._state = state
        self._lock: WatchLock | None = lock
        self._watch_id = watch_id
        self._port: IListeningPort | None = None
        self._prepared = prepared
        # The loop watchdog's thread may write the record while the reactor
        # thread is stuck: one writer at a time.
        self._writing = threading.Lock()
        self._renew_failed = False

    @classmethod
    def take(cls, state_dir: Path | None, watch_id: str) -> WatchRecords:
        """
        Lock the ID in the state folder, and make its record ready: the
        placeholder C{<id>.last} and the reserved file the record will be
        written into (L{ismon.state.record.prepare_record}).  A folder that
        cannot take them (full, read-only) refuses the start here.

        @raise ismon.state.lock.AlreadyRunning: a live watch holds it.
        @raise OSError: the folder or the records cannot be made.
        """
        state = StateDir.open(state_dir or default_state_dir())
        lock = WatchLock.acquire(state, watch_id)
        try:
            prepared = prepare_record(state, watch_id, time.time())
        except BaseException:
            lock.release()
            raise
        return cls(state, lock, watch_id, prepared)

    def listen(self, reactor: Any, control: IWatchControl) -> Deferred[IListeningPort]:
        """Open the control socket; the Deferred fires with its port."""
        listening = listen_control(reactor, self._state.socket_path(self._watch_id), control)

        def opened(port: IListeningPort) -> IListeningPort:
            self._port = port
            return port

        return listening.addCallback(opened)

    def write_last_exit(self, record: dict[str, object]) -> str | None:
        """
        Write the record of the watch's last exit, while the lock is still
        ours, so a reader that finds the lock free finds the record too.
        Never raises: a record that cannot be written must not keep the
        watch from exiting.  Safe from another thread (the loop watchdog's).

        @return: None when it was written; else why not, on one line
            (message 102).
        """
        lock = self._lock
        if lock is None or not lock.held:
            return "the watch no longer holds its lock"
        with self._writing:
            prepared, self._prepared = self._prepared, None
            try:
                if prepared is None:
                    from ismon.state.record import write_last_exit

                    write_last_exit(self._state, self._watch_id, record)
                else:
                    prepared.write(record)
            except OSError as e:
                return str(e.strerror or e)
            except Exception as e:
                return repr(e)
        return None

    def check_folder(self, reactor: Any, control: IWatchControl) -> str | None:
        """
        Make the records again if the state folder (or the lock file) was
        deleted under the watch, so that C{ismon status} finds it again:
        the folder, the lock, the pidfile, the placeholder record and the
        control socket.  Cheap (one C{fstat}) when nothing happened.

        @return: None when nothing happened; else what happened, on one
            line (message 103).
        """
        lock = self._lock
        if lock is None or self._renew_failed or not lock.gone:
            return None
        where = self._state.path
        try:
            lock.renew()
        except AlreadyRunning as e:
            # Tried once: locking again blocks the loop for its grace.
            self._renew_failed = True
            return f"{where} was deleted; another watch (PID {e.pid}) holds the ID now"
        except OSError as e:
            self._renew_failed = True
            return f"{where} was deleted and cannot be made again: {e.strerror or e}"
        self._state = lock.state
        with self._writing:
            old, self._prepared = self._prepared, None
            if old is not None:
                old.discard()
            try:
                self._prepared = prepare_record(self._state, self._watch_id, time.time())
            except OSError as e:
                return f"{where} was deleted; made again, but not its record: {e.strerror or e}"
        port, self._port = self._port, None
        if port is not None:
            _forget_socket_path(port)
            port.stopListening()
        self.listen(reactor, control).addErrback(lambda _: None)
        return f"{where} was deleted; made again: ismon status finds this watch"

    def close(self) -> Deferred[None]:
        """
        Close the control socket, then release the lock (which removes the
        records).  Twisted removes the socket file a turn after
        stopListening; the lock goes only then, or a new watch of this ID
        could lose its fresh socket to our late cleanup.  Never fails: a
        folder gone read-only or deleted leaves its files, and the kernel
        releases the lock with the process.
        """
        port, self._port = self._port, None
        closing: Deferred[Any] = (
            maybeDeferred(port.stopListening) if port is not None else succeed(None)
        )
        lock, self._lock = self._lock, None
        prepared, self._prepared = self._prepared, None

        def release(_: object) -> None:
            if prepared is not None:
                try:
                    prepared.discard()
                except OSError:
                    pass
            try:
                if lock is not None:
                    lock.release()
            except OSError:
                pass  # said by the record's line (message 102), if it matters

        return closing.addBoth(release)


def _forget_socket_path(port: IListeningPort) -> None:
    """
    Keep a listening UNIX port from removing its socket file when it closes:
    the file is gone with its folder, and the path now names the socket of
    the port that replaces it.  (Twisted's unix.Port keeps its path in
    C{_bindPath} and unlinks it in connectionLost; a name in the abstract
    namespace is never unlinked.)
    """
    if isinstance(getattr(port, "_bindPath", None), bytes | str):
        port._bindPath = b"\0ismon-replaced"  # type: ignore[attr-defined]
