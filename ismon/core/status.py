# -*- test-case-name: tests.test_service,tests.test_control -*-
"""
L{WatchStatus}: what C{ismon status} shows of a running watch, taken at
one moment as a frozen value.  L{WatchStatus.as_dict} is the JSON document
of C{ismon status --json} (README "Running a watch"); the OCF agent reads
it, so its fields are pinned by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ismon.core.result import ProbeResult

__all__ = ["WatchStatus", "result_fields"]


def result_fields(result: ProbeResult) -> dict[str, Any]:
    """A probe result as the status document and the log events hold it."""
    return {
        "ok": result.ok,
        "message_id": int(result.message) if result.message is not None else None,
        "number": result.number,
        "phase": result.phase.value if result.phase is not None else None,
        "latency": round(result.latency, 6),
        "reply": result.reply,
        "detail": result.detail,
        "address": result.address,
        "cert_days_left": result.cert_days_left,
    }


@attrs.frozen
class WatchStatus:
    """One watch at one moment.  Times are wall-clock seconds (epoch)."""

    watch_id: str
    protocol: str
    command: str
    pid: int
    target: str
    state: str  # an ismon.watch.schedule.WatchState value
    paused_since: float | None
    consecutive_failures: int
    probes: int
    failures: int
    skipped_ticks: int
    last_probe: ProbeResult | None
    last_probe_time: float | None
    interval: float
    timeout: float
    retries: int
    retry_interval: float
    detection_bound: float
    started: float | None
    uptime: float
    # Added with README "Maintenance pauses": last, so the older fields keep
    # their places.
    paused_until: float | None = None
    pause_reason: str | None = None
    # Added with the metrics (docs/metrics.md), last for the same reason:
    # failed probes by catalogue message id, the status code of the last
    # probe's HTTP reply, the notAfter of the last certificate seen.
    failures_by_message: Mapping[int, int] = attrs.field(factory=dict)
    http_status_code: int | None = None
    cert_not_after: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The status document: the same fields, in the same order, as ever."""
        last_probe: dict[str, object] | None = None
        if self.last_probe is not None and self.last_probe_time is not None:
            last_probe = {
                "time": self.last_probe_time,
                **result_fields(self.last_probe),
                "summary": self.last_probe.describe(),
            }
        return {
            "watch_id": self.watch_id,
            "protocol": self.protocol,
            "command": self.command,
            "pid": self.pid,
            "target": self.target,
            "state": self.state,
            "paused_since": self.paused_since,
            "consecutive_failures": self.consecutive_failures,
            "probes": self.probes,
            "failures": self.failures,
            "skipped_ticks": self.skipped_ticks,
            "last_probe": last_probe,
            "interval": self.interval,
            "timeout": self.timeout,
            "retries": self.retries,
            "retry_interval": self.retry_interval,
            "detection_bound": self.detection_bound,
            "started": self.started,
            "uptime": self.uptime,
            "paused_until": self.paused_until,
            "pause_reason": self.pause_reason,
            # JSON object keys are strings: the ids sorted as numbers.
            "failures_by_message": {
                str(message): count for message, count in sorted(self.failures_by_message.items())
            },
            "http_status_code": self.http_status_code,
            "cert_not_after": self.cert_not_after,
        }
