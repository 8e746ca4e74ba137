# -*- test-case-name: tests.test_options,tests.test_service -*-
"""
L{WatchConfig}: everything a running watch needs, validated and frozen.
The option parsers (L{ismon.cmdline.options}) build it; the service
(L{ismon.watch.service}) runs it.  Control commands have their own value,
L{ismon.control.request.ControlRequest}.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from ismon.core.requests import ProbeRequest
from ismon.core.timing import Timing

__all__ = ["WatchConfig"]


@attrs.frozen
class WatchConfig:
    """One watch to run, validated (README "Running a watch")."""

    watch_id: str
    protocol: str  # a name in ismon.core.protocols.PROTOCOLS: "http", "smtp"
    command: str  # the name messages start with: "clp_httpmon", "clp_smtpmon"
    request: ProbeRequest
    timing: Timing
    cert_warn_days: int = 14
    state_dir: Path | None = None
    syslog_socket: str | None = "/dev/log"
    logfile: str | None = None
    json_log: str | None = None
    debug: bool = False
    # Seconds after which any pause ends by itself (README "Maintenance
    # pauses"); None: a pause without an expiry lasts until continued.
    max_pause: int | None = None

    @property
    def target(self) -> str:
        """What is watched, as message 99 and the status document show it."""
        return self.request.target(self.protocol)
