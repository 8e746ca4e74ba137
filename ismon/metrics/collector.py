# -*- test-case-name: tests.test_exporter -*-
# Much of twisted.internet.endpoints is untyped.
# mypy: disallow-untyped-calls=False
"""
Asking the watches of a state folder for their status, all at once, each
within a timeout, for the exporter (L{ismon.metrics.exporter}): a watch
that does not answer costs one timeout and shows C{ismon_up 0}, never the
whole scrape.  A watch that does not run gives its C{ID.last} record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from ismon.control.amp import status as watch_status
from ismon.control.client import ControlError
from ismon.metrics.render import WatchSnapshot
from ismon.metrics.snapshots import ended_snapshot
from ismon.state.folder import StateDir
from ismon.state.listing import list_watch_ids
from ismon.state.lock import running_pid

__all__ = ["MAX_PARALLEL_ASKS", "Collector"]

# A reactor providing IReactorTime and IReactorUNIX.
ReactorType = Any

_log = Logger(namespace="ismon.metrics.exporter")

#: Control connections open at once during a scrape: the watches are asked
#: all together up to this many, well within the default 1024 descriptors.
MAX_PARALLEL_ASKS = 256


class Collector:
    """
    Asks the watches of a state folder for their status, each within
    C{watch_timeout} seconds, all at once.

    Callers of L{snapshots} while a round of asking is under way wait for
    that round instead of starting one: answers at most C{watch_timeout}
    old, and at most one status request per watch at a time however many
    scrapers there are.
    """

    def __init__(self, reactor: ReactorType, state_dir: Path | None, watch_timeout: float) -> None:
        self._reactor = reactor
        self._state_dir = state_dir
        self._timeout = watch_timeout
        self._waiters: list[Deferred[list[WatchSnapshot]]] = []
        self._asking = False
        self._limit = DeferredSemaphore(MAX_PARALLEL_ASKS)

    def snapshots(self) -> Deferred[list[WatchSnapshot]]:
        """What every watch in the folder said (or not), sorted by ID."""
        waiter: Deferred[list[WatchSnapshot]] = Deferred()
        self._waiters.append(waiter)
        if not self._asking:
            self._asking = True
            Deferred.fromCoroutine(self._ask_all()).addBoth(self._deliver)
        return waiter

    def _deliver(self, result: list[WatchSnapshot] | Failure) -> None:
        waiters, self._waiters = self._waiters, []
        self._asking = False
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _ask_all(self) -> list[WatchSnapshot]:
        # Checked at every scrape: the folder may appear, or be replaced,
        # after the exporter started; an unsafe one is refused (StateDirError).
        state = StateDir.open(self._state_dir, create=False, of_other_user=True)
        asking = [self._limit.run(self._ask, state, w) for w in list_watch_ids(state)]
        return list(await gatherResults(asking))

    async def _ask(self, state: StateDir, watch_id: str) -> WatchSnapshot:
        try:
            status = await watch_status(self._reactor, state.socket_path(watch_id), self._timeout)
        except (ControlError, OSError) as e:
            # Not running, or not answering in time: ismon_up 0.
            _log.debug("watch {watch} did not answer: {why}", watch=watch_id, why=str(e))
        except Exception:
            _log.failure("Asking watch {watch} for its status failed.", watch=watch_id)
        else:
            return WatchSnapshot(watch_id, status, None)
        if running_pid(state, watch_id) is not None:
            # Running but silent: the record of an earlier run says nothing
            # of this one (ismon.metrics.render.WatchSnapshot).
            return WatchSnapshot(watch_id, None, None)
        try:
            return ended_snapshot(state, watch_id)
        except OSError as e:  # one watch's files must not fail the scrape
            _log.warn("watch {watch}: {why}", watch=watch_id, why=str(e))
            return WatchSnapshot(watch_id, None, None)
