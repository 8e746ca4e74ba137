# -*- test-case-name: tests.test_twistd -*-
"""
The watches and the exporter under twistd (C{twistd -n ismon-http ID
...}, C{twistd -n ismon-exporter}): the service makers that
C{twisted/plugins/ismon_plugins.py} hands to twistd, and the one place
that uses twistd's private API (L{twistd_log_observer}).

twistd cannot choose its exit status (Twisted ticket #11335), so the
status is set from an atexit hook that runs after twistd's own cleanup
(pidfile removal) and calls C{os._exit}; a stop by signal is re-raised by
twistd and ends with 128+signal before that hook can run.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import IServiceMaker, MultiService, Service
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    Logger,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

from ismon.cmdline import room
from ismon.cmdline.options import OPTIONS, ParameterError, WatchOptions
from ismon.cmdline.process import exit_now, use_monotonic_clock
from ismon.core.catalogue import MessageId, render
from ismon.core.config import WatchConfig
from ismon.core.exit_status import ExitStatus
from ismon.core.protocols import WatchProtocol
from ismon.probes.table import make_probe
from ismon.watch.report import CatalogueFilter
from ismon.watch.service import WatchService

__all__ = ["ExporterMaker", "WatchMaker", "make_twistd_service", "twistd_log_observer"]

_log = Logger(namespace="ismon.metrics.exporter")


def twistd_log_observer(server_options: Any) -> Any:
    """
    The observer twistd itself would make from its C{-n}, C{--logfile} and
    C{--syslog} options (with its SIGUSR1 log rotation), or L{None} when
    this twistd has no such thing.  No public API hands it out: this reads
    C{twisted.scripts._twistd_unix.UnixAppLogger._getLogObserver}, private
    API that C{tests/test_twistd.py} checks on every Twisted the suite runs
    with, so that a change to it fails loudly there instead of leaving a
    watch's log unfiltered.
    """
    try:
        from twisted.scripts._twistd_unix import UnixAppLogger

        chosen = UnixAppLogger(server_options)._getLogObserver()
    except (ImportError, AttributeError):
        return None
    if not ILogObserver.providedBy(chosen):
        chosen = LegacyLogObserverWrapper(chosen)
    return chosen


def make_twistd_service(config: WatchConfig) -> WatchService:
    """
    The watch's service under twistd, which sets the exit status from an
    atexit hook (see above).
    """
    import atexit

    from twisted.internet import reactor

    use_monotonic_clock(reactor)

    def on_exit(code: int) -> None:
        atexit.register(exit_now, code)
        # startService runs before twistd starts the reactor: stop it once it runs.
        reactor.callWhenRunning(reactor.stop)  # type: ignore[attr-defined]

    return WatchService(config, reactor, make_probe=make_probe, on_exit=on_exit)


class _CatalogueLog(MultiService):
    """
    Holds the watch, and when twistd adds it to the application, makes the
    application's log observer twistd's own choice (its log file, stdout
    with C{-n}, or syslog) behind the catalogue filter: a watch's log is
    the message catalogue under twistd too, and C{--debug} lets twistd's
    and Twisted's own lines through (README "Messages").
    """

    def __init__(self, watch: Service, server_options: Any, debug: bool) -> None:
        super().__init__()
        watch.setServiceParent(self)
        self._server_options = server_options
        self._debug = debug

    def setServiceParent(self, parent: Any) -> None:
        observer = self._observer()
        # twistd reads the observer from this component when it starts logging,
        # which it does after adding the service; a --logger given to twistd wins.
        if observer is not None and parent.getComponent(ILogObserver, None) is None:
            parent.setComponent(ILogObserver, observer)
        super().setServiceParent(parent)

    def _observer(self) -> Any:
        options = self._server_options
        if options is None or options.get("logger"):
            return None
        chosen = twistd_log_observer(options)
        if chosen is None:
            return None  # another twistd: its log stays unfiltered
        return FilteringLogObserver(chosen, [CatalogueFilter(self._debug)])


@implementer(IServiceMaker, IPlugin)
class WatchMaker:
    """C{twistd ismon-NAME}: a watch of one protocol."""

    def __init__(self, protocol: WatchProtocol) -> None:
        self.tapname = protocol.tapname
        self.description = protocol.description
        self._protocol = protocol

    @property
    def options(self) -> type[WatchOptions]:
        base: Any = OPTIONS[self._protocol.name]

        class TwistdOptions(base):  # type: ignore[misc, valid-type]
            def postOptions(self) -> None:
                super().postOptions()
                if self.control is not None:
                    # Nothing for twistd to run: the control options talk
                    # to a watch that runs already.
                    raise ParameterError(
                        f"--{self.control.action} is for {self.command} ID or ismon, not twistd"
                    )

        return TwistdOptions

    def makeService(self, options: Any) -> Service:
        config = options.config
        if options.check:
            # twistd would go on to start the watch; --check is the commands'
            # (clp_httpmon, ismon http ...): refuse it plainly.
            text = render(
                MessageId.INVALID_PARAMETER, command=config.command, watch_id=config.watch_id
            )
            raise SystemExit(f"{text} --check is not for twistd: use {config.command} or ismon")
        # As a watch of ismon's own commands (ismon.cmdline.cli.run_watch):
        # no room to watch is one line and exit 4, before anything starts.
        shortfall = room.descriptor_shortfall() or room.memory_shortfall(room.MEMORY_TO_RUN)
        if shortfall is not None:
            sys.stderr.write(room.refusal(config.command, config.watch_id, shortfall) + "\n")
            sys.stderr.flush()
            raise SystemExit(ExitStatus.SYSTEM_ERROR)
        server_options = getattr(options, "parent", None)
        return _CatalogueLog(make_twistd_service(config), server_options, config.debug)


@implementer(IServiceMaker, IPlugin)
class ExporterMaker:
    """C{twistd ismon-exporter}: the Prometheus exporter of C{ismon exporter}."""

    tapname = "ismon-exporter"
    description = "Serve the watches of a state folder as Prometheus metrics."

    # Imported when asked for: a watch run by twistd does not load twisted.web.
    @property
    def options(self) -> type[Any]:
        from ismon.cmdline.exporter import ExporterOptions

        return ExporterOptions

    def makeService(self, options: Any) -> Service:
        import atexit

        from twisted.internet import reactor

        from ismon.metrics.exporter import Exporter

        config = options.config

        def cannot_listen(why: str) -> None:
            _log.error(
                "ismon exporter: cannot listen on {where}: {why}", where=str(config.listen), why=why
            )
            atexit.register(exit_now, ExitStatus.SYSTEM_ERROR)
            reactor.callWhenRunning(reactor.stop)  # type: ignore[attr-defined]

        return Exporter(config, reactor).service(cannot_listen)
