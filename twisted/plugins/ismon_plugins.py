"""
twistd plugins: C{twistd -n --pidfile PATH ismon-http ID [options]},
C{ismon-smtp}, one per protocol of L{ismon.core.protocols}, and
C{ismon-exporter}.  The makers are L{ismon.cmdline.twistd}; see the README
for what plain twistd can report as the exit status.
"""

from __future__ import annotations

from ismon.cmdline.twistd import ExporterMaker, WatchMaker
from ismon.core.protocols import PROTOCOLS

# twistd finds the plugins among this module's names (ismon_http,
# ismon_smtp, ...): one per protocol.
for _protocol in PROTOCOLS.values():
    globals()[f"ismon_{_protocol.name}"] = WatchMaker(_protocol)

ismon_exporter = ExporterMaker()
