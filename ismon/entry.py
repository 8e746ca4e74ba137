"""
Console entry points.  They look at the command line before anything
imports Twisted:

  - a control command (C{ismon status ID}, C{clp_httpmon ID --pause} ...)
    that L{ismon.control_commands.recognise} fully understands runs there,
    with the standard library alone: cluster software calls these every
    few seconds, and Twisted's import alone cost several times the
    exchange (docs/performance.md, "Control commands");
  - a watch without TLS never loads the TLS stack:
    C{twisted.internet.tcp} imports pyOpenSSL whenever it is importable
    (~13 MB of RSS and ~0.1 s of start-up for nothing), and Twisted's own
    fallback for a missing pyOpenSSL is used instead.

Everything else goes to L{ismon.cli}.
"""

from __future__ import annotations

import sys

# typing costs ~2.5 ms of start-up, which the control commands do not pay.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["clp", "clp_httpmon", "clp_smtpmon", "main"]

# Long options that need TLS; getopt also accepts any unambiguous prefix.
_TLS_OPTIONS = ("tls", "starttls", "insecure", "ca-file", "servername", "cert-warn-days")
_TLS_MODULES = ("OpenSSL", "service_identity")


def _may_use_tls(argv: list[str]) -> bool:
    for arg in argv:
        if arg == "--":
            return True
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            if not name or any(option.startswith(name) for option in _TLS_OPTIONS):
                return True
    return False


def _skip_tls_stack(argv: list[str]) -> None:
    if "twisted.internet.tcp" in sys.modules or _may_use_tls(argv):
        return
    for name in _TLS_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def _control_command(program: str, argv: list[str]) -> None:
    """Run C{argv} and exit if it is a control command the fast way knows."""
    from ismon import control_commands

    request = control_commands.recognise(program, argv)
    if request is not None:
        control_commands.run_and_exit(request)


def clp(command: str) -> NoReturn:
    """A 2004 command of L{ismon.protocols} (C{clp_httpmon} ...)."""
    _control_command(command, sys.argv[1:])
    _skip_tls_stack(sys.argv[1:])
    from ismon import cli

    cli.clp(command)


def clp_httpmon() -> NoReturn:
    clp("clp_httpmon")


def clp_smtpmon() -> NoReturn:
    clp("clp_smtpmon")


def main() -> NoReturn:
    _control_command("ismon", sys.argv[1:])
    _skip_tls_stack(sys.argv[1:])
    from ismon import cli

    cli.main()
