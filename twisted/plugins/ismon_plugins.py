"""
twistd plugins: C{twistd -n --pidfile PATH ismon-http ID [options]} and
C{ismon-smtp}.  They run the same L{ismon.service.WatchService} as the
clp_* commands; see the README for what plain twistd can report as the exit
status.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class _WatchMaker:
    def __init__(self, tapname: str, options: str, description: str) -> None:
        self.tapname = tapname
        self.description = description
        self._options = options

    @property
    def options(self) -> Any:
        from ismon import options

        return getattr(options, self._options)

    def makeService(self, options: Any) -> Any:
        from ismon.service import make_twistd_service

        return make_twistd_service(options.config)


ismon_http = _WatchMaker(
    "ismon-http", "HttpOptions", "Watch an HTTP daemon with HEAD (clp_httpmon compatible)."
)
ismon_smtp = _WatchMaker(
    "ismon-smtp", "SmtpOptions", "Watch an SMTP daemon with NOOP (clp_smtpmon compatible)."
)
