"""
twistd plugins: C{twistd -n --pidfile PATH ismon-http ID [options]},
C{ismon-smtp}, one per protocol of L{ismon.protocols}.  They run the same
L{ismon.service.WatchService} as the clp_* commands; see the README for
what plain twistd can report as the exit status.  And C{ismon-exporter},
the Prometheus exporter of C{ismon exporter} (docs/prometheus.md).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker, MultiService
from twisted.plugin import IPlugin
from zope.interface import implementer

from ismon.protocols import PROTOCOLS, WatchProtocol


class _CatalogueLog(MultiService):
    """
    Holds the watch, and when twistd adds it to the application, makes the
    application's log observer twistd's own choice (its log file, stdout
    with C{-n}, or syslog) behind the catalogue filter: a watch's log is
    the message catalogue under twistd too, and C{--debug} lets twistd's
    and Twisted's own lines through (README "Messages").
    """

    def __init__(self, watch: Any, server_options: Any, debug: bool) -> None:
        super().__init__()
        watch.setServiceParent(self)
        self._server_options = server_options
        self._debug = debug

    def setServiceParent(self, parent: Any) -> None:
        from twisted.logger import ILogObserver

        observer = self._observer()
        # twistd reads the observer from this component when it starts logging,
        # which it does after adding the service; a --logger given to twistd wins.
        if observer is not None and parent.getComponent(ILogObserver, None) is None:
            parent.setComponent(ILogObserver, observer)
        super().setServiceParent(parent)

    def _observer(self) -> Any:
        from twisted.logger import FilteringLogObserver, ILogObserver, LegacyLogObserverWrapper

        from ismon.report import CatalogueFilter

        options = self._server_options
        if options is None or options.get("logger"):
            return None
        try:
            from twisted.scripts._twistd_unix import UnixAppLogger

            # The observer twistd itself would make from -n/--logfile/--syslog
            # (with its SIGUSR1 log rotation); no public API hands it out.
            chosen = UnixAppLogger(options)._getLogObserver()
        except (ImportError, AttributeError):
            return None  # another twistd: its log stays unfiltered
        if not ILogObserver.providedBy(chosen):
            chosen = LegacyLogObserverWrapper(chosen)
        return FilteringLogObserver(chosen, [CatalogueFilter(self._debug)])


@implementer(IServiceMaker, IPlugin)
class _WatchMaker:
    def __init__(self, protocol: WatchProtocol) -> None:
        self.tapname = protocol.tapname
        self.description = protocol.description
        self._protocol = protocol

    @property
    def options(self) -> Any:
        from ismon.options import ParameterError

        base: Any = self._protocol.options_class()

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

    def makeService(self, options: Any) -> Any:
        from ismon.process import make_twistd_service

        config = options.config
        if options.check:
            # twistd would go on to start the watch; --check is the commands'
            # (clp_httpmon, clp_smtpmon, ismon http|smtp): refuse it plainly.
            from ismon.catalogue import MessageId, render

            text = render(
                MessageId.INVALID_PARAMETER, command=config.command, watch_id=config.watch_id
            )
            raise SystemExit(f"{text} --check is not for twistd: use {config.command} or ismon")
        server_options = getattr(options, "parent", None)
        return _CatalogueLog(make_twistd_service(config), server_options, config.debug)


# twistd finds the plugins among this module's names (ismon_http,
# ismon_smtp, ...): one per protocol.
for _protocol in PROTOCOLS.values():
    globals()[f"ismon_{_protocol.name}"] = _WatchMaker(_protocol)


@implementer(IServiceMaker, IPlugin)
class _ExporterMaker:
    tapname = "ismon-exporter"
    description = "Serve the watches of a state folder as Prometheus metrics."

    @property
    def options(self) -> Any:
        from ismon.exporter import ExporterOptions

        return ExporterOptions

    def makeService(self, options: Any) -> Any:
        from twisted.internet import reactor

        from ismon.exporter import Exporter

        return Exporter(options.config, reactor).service()


ismon_exporter = _ExporterMaker()
