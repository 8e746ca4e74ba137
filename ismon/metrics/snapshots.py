# -*- test-case-name: tests.test_metrics_cli -*-
"""
One L{WatchSnapshot} per watch of a state folder, for C{ismon metrics}:
a running watch is asked for its status over its control socket, an
ended one gives its last-exit record.  Standard library only (threads),
like the other control commands.
"""

from __future__ import annotations

from ismon.control import client
from ismon.metrics.render import WatchSnapshot
from ismon.state.folder import StateDir
from ismon.state.listing import list_watch_ids
from ismon.state.lock import running_or_ended

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["METRICS_WATCH_TIMEOUT", "ended_snapshot", "metric_snapshots"]

#: Seconds one watch may take to answer C{ismon metrics}: a stuck watch
#: costs this once, and shows as C{ismon_up 0}.
METRICS_WATCH_TIMEOUT = 2.0

#: How many watches C{ismon metrics} asks at the same time.
_METRICS_THREADS = 32


def ended_snapshot(folder: StateDir, watch_id: str) -> WatchSnapshot:
    """
    The snapshot of a watch that does not run: its last-exit record, if
    that record is the last run's own (as C{ismon status} judges it); none
    if the watch has just started.
    """
    return _snapshot_if_ended(folder, watch_id) or WatchSnapshot(watch_id, None, None)


def _snapshot_if_ended(folder: StateDir, watch_id: str) -> WatchSnapshot | None:
    """The snapshot of a watch that does not run, or L{None} if it runs."""
    pid, ended = running_or_ended(folder, watch_id)
    if pid is not None:
        return None
    record = ended.get("last_exit")
    return WatchSnapshot(watch_id, None, record if isinstance(record, dict) else None)


def metric_snapshots(
    folder: StateDir, timeout: float = METRICS_WATCH_TIMEOUT
) -> list[WatchSnapshot]:
    """
    One snapshot per watch ID in C{folder}: a running watch is asked for
    its status, within C{timeout} seconds (no answer: no status); an ended
    one gives its last-exit record.  The running watches are asked at
    once, each from its own thread (up to 32 at a time), so stuck watches
    cost one C{timeout} together, not one each.
    """
    import threading

    found: dict[str, WatchSnapshot] = {}

    def ask(watch_id: str) -> None:
        status: dict[str, Any] | None
        try:
            status = client.status(folder.socket_path(watch_id), timeout)
        except (client.ControlError, OSError):
            status = None
        found[watch_id] = WatchSnapshot(watch_id, status, None)

    watch_ids = list_watch_ids(folder)
    running: list[str] = []
    for watch_id in watch_ids:
        ended = _snapshot_if_ended(folder, watch_id)
        if ended is None:
            running.append(watch_id)
        else:
            found[watch_id] = ended
    for first in range(0, len(running), _METRICS_THREADS):
        asking = [
            threading.Thread(target=ask, args=(watch_id,), daemon=True)
            for watch_id in running[first : first + _METRICS_THREADS]
        ]
        for thread in asking:
            thread.start()
        for thread in asking:
            thread.join()  # each ends within its own timeout
    return [found[watch_id] for watch_id in watch_ids]
