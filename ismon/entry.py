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
    fallback for a missing pyOpenSSL is used instead.  Nor the stdlib's
    C{ssl} (C{asyncio}, which C{Deferred} imports, takes it only if it is
    there) or C{http.cookiejar} (C{twisted.python.compat} imports it for
    an alias only C{twisted.web} uses; with C{urllib.request}, C{http.client}
    and C{email} behind it: ~20 ms and 1.6 MB): that one is loaded when
    something first uses it (docs/performance.md, "Memory").

Everything else goes to L{ismon.cli}.
"""

from __future__ import annotations

import importlib
import sys
import types

# typing costs ~2.5 ms of start-up, which the control commands do not pay.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = [
    "clp",
    "clp_ftpmon",
    "clp_httpmon",
    "clp_imapmon",
    "clp_pop3mon",
    "clp_smtpmon",
    "main",
]

# Long options that need TLS; getopt also accepts any unambiguous prefix.
_TLS_OPTIONS = ("tls", "starttls", "insecure", "ca-file", "servername", "cert-warn-days")
_TLS_MODULES = ("OpenSSL", "service_identity", "ssl")
_CONTROL_VERBS = ("stop", "pause", "continue", "status", "disp", "del")
# The verbs of `ismon` answered without Twisted: the control verbs and
# `metrics`, which is no clp_* option (a watch's `--me GET`, getopt's prefix
# of --method, must not make it import the control commands).
_FAST_ISMON_VERBS = (*_CONTROL_VERBS, "metrics")


class _LoadedOnUse(types.ModuleType):
    """Stands in for a module until an attribute of it is first read."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        return getattr(real, name)


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
    sys.modules.setdefault("http.cookiejar", _LoadedOnUse("http.cookiejar"))


def _may_be_control(program: str, argv: list[str]) -> bool:
    """
    Whether C{argv} may be a control command: only then is
    L{ismon.control_commands} worth importing (~5 ms before a watch starts).
    """
    if program == "ismon":
        return bool(argv) and argv[0] in _FAST_ISMON_VERBS
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            if name and any(verb.startswith(name) for verb in _CONTROL_VERBS):
                return True
    return False


def _control_command(program: str, argv: list[str]) -> None:
    """Run C{argv} and exit if it is a control command the fast way knows."""
    if not _may_be_control(program, argv):
        return
    from ismon import control_commands

    if program == "ismon" and argv[0] == "metrics":
        # Every `ismon metrics` line, a wrong one too, is answered here.
        control_commands.metrics_and_exit(argv[1:])
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


def clp_pop3mon() -> NoReturn:
    clp("clp_pop3mon")


def clp_imapmon() -> NoReturn:
    clp("clp_imapmon")


def clp_ftpmon() -> NoReturn:
    clp("clp_ftpmon")


def main() -> NoReturn:
    _control_command("ismon", sys.argv[1:])
    _skip_tls_stack(sys.argv[1:])
    from ismon import cli

    cli.main()
