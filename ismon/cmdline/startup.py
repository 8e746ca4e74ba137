# -*- test-case-name: tests.test_startup,tests.test_entry -*-
"""
The start-up decisions, all in one place: what each way of starting may
load (docs/architecture.md, "The fast path").

  - A control command (C{ismon status ID}, C{clp_httpmon ID --pause} ...)
    that L{ismon.control.recognise} fully understands, and every C{ismon
    metrics} command line, run in the standard library alone, before
    anything imports Twisted: cluster software calls these every few
    seconds, and Twisted's import alone cost several times the exchange
    (docs/performance.md, "Control commands").  They may load the modules
    of L{CONTROL_MODULES} and no others of ismon; no Twisted, no attrs, no
    C{typing} (which is why their value classes are written by hand).
  - Everything else goes the long way, through L{ismon.cmdline.cli}, whose
    parsers print the catalogue's refusals.  C{http.cookiejar}, which
    C{twisted.python.compat} imports for an alias only C{twisted.web}
    uses (with C{urllib.request}, C{http.client}, C{email} and C{ssl}
    behind it: ~20 ms and 1.6 MB), is loaded only when something first
    uses it.
  - A watch whose parsed configuration speaks no TLS never loads the TLS
    stack (L{TLS_MODULES}): C{twisted.internet.tcp} imports pyOpenSSL
    whenever it is importable (~13 MB of RSS and ~0.1 s of start-up for
    nothing), and Twisted's own fallback for a missing pyOpenSSL is used
    instead.  The decision is made from the parsed configuration, after
    parsing and before the reactor is imported (L{leave_out_tls_stack}).

C{tests/test_startup.py} lists the modules each way loads.
"""

from __future__ import annotations

import sys
import types

from ismon.control.request import VERBS

# typing costs ~2.5 ms of start-up, which the control commands do not pay.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ismon.core.config import WatchConfig

__all__ = [
    "CONTROL_MODULES",
    "TLS_MODULES",
    "defer_cookiejar",
    "leave_out_tls_stack",
    "run_if_fast",
]

#: The ismon modules a control command, or C{ismon metrics}, may load.
CONTROL_MODULES = frozenset(
    {
        "ismon",
        "ismon.cmdline",
        "ismon.cmdline.startup",
        "ismon.control",
        "ismon.control.client",
        "ismon.control.commands",
        "ismon.control.recognise",
        "ismon.control.request",
        "ismon.control.stop",
        "ismon.core",
        "ismon.core.catalogue",
        "ismon.core.exit_status",
        "ismon.core.protocols",
        "ismon.core.text",
        "ismon.entry",
        "ismon.metrics",
        "ismon.metrics.command",
        "ismon.metrics.render",
        "ismon.metrics.snapshots",
        "ismon.state",
        "ismon.state.files",
        "ismon.state.folder",
        "ismon.state.listing",
        "ismon.state.lock",
        "ismon.state.record",
        "ismon.wire",
        "ismon.wire.ampbox",
    }
)

#: What a watch without TLS leaves out.
TLS_MODULES = ("OpenSSL", "service_identity", "ssl")


def run_if_fast(program: str, argv: list[str]) -> None:
    """
    Run C{program argv} and exit, if it is a command line of the fast way:
    a control command that L{ismon.control.recognise} fully understands, or
    C{ismon metrics} (every one of its command lines but a request for
    help).  Otherwise return, having loaded nothing more than this module.
    """
    if program == "ismon":
        if not argv or argv[0] not in (*VERBS, "status", "metrics"):
            return
        if argv[0] == "metrics":
            from ismon.metrics import command

            if not command.wants_help(argv[1:]):
                command.metrics_and_exit(argv[1:])
            return
    elif not _names_a_control_option(argv):
        return
    from ismon.control.commands import run_and_exit
    from ismon.control.recognise import recognise

    request = recognise(program, argv)
    if request is not None:
        run_and_exit(request)


def _names_a_control_option(argv: list[str]) -> bool:
    """
    Whether a clp_* command line may hold a control option (C{--stop} or a
    prefix getopt would take for one): only then is the recogniser worth
    importing (~5 ms before a watch starts).  A false "may" costs only
    that; the recogniser itself takes exact forms alone.
    """
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            if name and any(verb.startswith(name) for verb in VERBS):
                return True
    return False


class _CookiejarOnUse(types.ModuleType):
    """Stands in for C{http.cookiejar} until an attribute of it is first read."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get("http.cookiejar") is self:
            del sys.modules["http.cookiejar"]
        import http.cookiejar

        return getattr(http.cookiejar, name)


def defer_cookiejar() -> None:
    """Load C{http.cookiejar} only when something first uses it."""
    if "twisted.python.compat" not in sys.modules:
        sys.modules.setdefault("http.cookiejar", _CookiejarOnUse("http.cookiejar"))


def leave_out_tls_stack(config: WatchConfig) -> bool:
    """
    Keep the TLS stack out of a watch whose C{config} speaks no TLS: to be
    called after parsing, before the reactor is imported.  Returns whether
    it was left out (not when Twisted's networking is loaded already).
    """
    if config.request.tls is not None or "twisted.internet.tcp" in sys.modules:
        return False
    for name in TLS_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    return True
