# -*- test-case-name: tests.test_schedule -*-
"""
The numbers of a watch's schedule (README "Timing") and what follows from
them: the retry gap and the detection bound.  A plain value; the schedule
(L{ismon.watch.schedule}) runs it on a clock.
"""

from __future__ import annotations

import attrs

__all__ = ["Timing"]


@attrs.frozen
class Timing:
    interval: float = 60
    retries: int = 3
    timeout: float = 10
    retry_interval: float | None = None  # None: same as interval
    grace: float = 0

    @property
    def retry_gap(self) -> float:
        return self.interval if self.retry_interval is None else self.retry_interval

    @property
    def detection_bound(self) -> float:
        """Worst case from a stall to the verdict, in seconds."""
        return self.interval + self.retries * max(self.retry_gap, self.timeout) + self.timeout

    def describe(self) -> str:
        return (
            f"interval {self.interval:g}s, timeout {self.timeout:g}s, retries {self.retries}, "
            f"retry interval {self.retry_gap:g}s, grace {self.grace:g}s; "
            f"a stall is detected within {self.detection_bound:g}s"
        )
