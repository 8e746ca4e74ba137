"""
The console entry points: C{ismon} and the 2004 commands C{clp_httpmon}
... C{clp_dnsmon} (one per protocol of L{ismon.core.protocols}).  What each
may load before it knows what it is asked is decided in one place,
L{ismon.cmdline.startup}; everything else is L{ismon.cmdline.cli}.
"""

from __future__ import annotations

import sys

from ismon.cmdline import startup

# typing costs ~2.5 ms of start-up, which the control commands do not pay.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = [
    "clp",
    "clp_dnsmon",
    "clp_ftpmon",
    "clp_httpmon",
    "clp_imapmon",
    "clp_pop3mon",
    "clp_smtpmon",
    "clp_tcpmon",
    "main",
]


def clp(command: str) -> NoReturn:
    """A 2004 command of L{ismon.core.protocols} (C{clp_httpmon} ...)."""
    startup.run_if_fast(command, sys.argv[1:])
    startup.defer_cookiejar()
    from ismon.cmdline import cli

    cli.clp(command)


def clp_httpmon() -> NoReturn:
    clp("clp_httpmon")


def clp_smtpmon() -> NoReturn:
    clp("clp_smtpmon")


def clp_pop3mon() -> NoReturn:
    clp("clp_pop3mon")


def clp_imapmon() -> NoReturn:
    clp("clp_imapmon")


def clp_ftpmon() -> NoReturn:
    clp("clp_ftpmon")


def clp_dnsmon() -> NoReturn:
    clp("clp_dnsmon")


def clp_tcpmon() -> NoReturn:
    clp("clp_tcpmon")


def main() -> NoReturn:
    """C{ismon ...} (and C{python -m ismon ...})."""
    startup.run_if_fast("ismon", sys.argv[1:])
    startup.defer_cookiejar()
    from ismon.cmdline import cli

    cli.main()
