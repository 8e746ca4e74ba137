"""
An SMTP server that offers AUTH PLAIN and AUTH LOGIN (aiosmtpd with an
authenticator), for the SMTP login tests: one user and password are
accepted (235), any other is refused with 535.  It runs in a process of its
own on a free loopback port, so that it can be stalled with SIGSTOP, and is
stopped by PID (L{ServerProcess}).

    server = start_smtp_auth(tmp_path)                  # plain: AUTH offered in the clear
    server = start_smtp_auth(tmp_path, "starttls", certs)   # AUTH only after STARTTLS
    server = start_smtp_auth(tmp_path, "tls", certs)        # implicit TLS (port-465 style)
    server.user, server.password                        # the one login accepted
    with server.stalled():
        ...

The TLS modes use the test CA's C{valid} certificate (L{tests.certs}):
clients verify with C{server.ca} and the name C{localhost} or C{127.0.0.1}.
In C{plain} mode AUTH is offered without TLS (C{auth_require_tls} off), for
the C{--insecure} test; in C{starttls} mode the EHLO before STARTTLS does
not offer AUTH, as a well-configured MTA does; in C{tls} mode every EHLO
offers it.

Run as a script, this module is that server:
C{python -m tests.smtp_auth_server --port PORT [--mode plain|starttls|tls]
[--cert FILE --key FILE]}; it serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.procs import wait_for_port
from tests.servers import (
    AIOSMTPD_MODES,
    Aiosmtpd,
    ServerUnavailable,
    _failed_start,
    _spawn,
    free_port,
)

if TYPE_CHECKING:
    from tests.certs import TestCerts

__all__ = ["SMTP_AUTH_PASSWORD", "SMTP_AUTH_USER", "SmtpAuth", "main", "start_smtp_auth"]

#: The one login the server accepts (a distinctive password, so a test can
#: scan whatever a watch wrote for it).
SMTP_AUTH_USER = "watcher"
SMTP_AUTH_PASSWORD = "ismon-Sm-5b2d8e61"


class SmtpAuth(Aiosmtpd):
    """
    aiosmtpd with AUTH on 127.0.0.1:C{port} (L{Aiosmtpd}'s C{mode}, C{certs}
    and C{ca}); C{user} and C{password} are the one login it accepts.
    """

    name = "smtp-auth"
    user = SMTP_AUTH_USER
    password = SMTP_AUTH_PASSWORD


def start_smtp_auth(
    directory: Path | str, mode: str = "plain", certs: TestCerts | None = None
) -> SmtpAuth:
    """
    Start the server in a subprocess; return once it accepts connections.

    @param mode: C{plain}, C{starttls} or C{tls} (the TLS modes need C{certs}).
    """
    if mode not in AIOSMTPD_MODES:
        raise ValueError(f"mode must be one of {AIOSMTPD_MODES}")
    if mode != "plain" and certs is None:
        raise ValueError(f"mode {mode!r} needs certs")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        raise ServerUnavailable("aiosmtpd is not installed (pip install aiosmtpd)") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # This checkout's tests package, whatever the server's working folder
    # (an installed ismon may put another checkout on the path).
    root = str(Path(__file__).resolve().parent.parent)
    argv = [sys.executable, "-c", _RUN, root, "--port", str(port), "--mode", mode]
    if certs is not None:
        argv += ["--cert", str(certs.valid.chain), "--key", str(certs.valid.key)]
    process, log = _spawn(argv, directory, f"smtp-auth-{mode}.out")
    server = SmtpAuth(process, directory, log, port=port, mode=mode, certs=certs)
    try:
        wait_for_port(port, process=process)
    except RuntimeError as e:
        raise _failed_start(server, e) from None
    return server


_RUN = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from tests.smtp_auth_server import main; sys.exit(main(sys.argv[1:]))"
)


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    """aiosmtpd's hook: the one login of this module passes, anything else is 535."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    accepted = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_AUTH_USER.encode()
        and auth_data.password == SMTP_AUTH_PASSWORD.encode()
    )
    return AuthResult(success=accepted, handled=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM (or SIGINT)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    parser = argparse.ArgumentParser(prog="python -m tests.smtp_auth_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=AIOSMTPD_MODES, default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    options = parser.parse_args(argv)

    # aiosmtpd 1.4 warns at each login that a field it fills itself is deprecated.
    warnings.filterwarnings("ignore", "Session.login_data is deprecated")
    settings: dict[str, Any] = {
        "authenticator": _authenticator,
        # plain: AUTH in the clear (the --insecure test); starttls: only after
        # STARTTLS.  With implicit TLS aiosmtpd cannot tell the connection is
        # encrypted, and every connection is.
        "auth_require_tls": options.mode == "starttls",
    }
    if options.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options.cert, options.key)
        if options.mode == "starttls":
            settings["tls_context"] = context
        else:
            settings["ssl_context"] = context
            settings["server_hostname"] = "localhost"
    controller = Controller(Sink(), hostname="127.0.0.1", port=options.port, **settings)
    # Blocked before the server's thread starts (it inherits the mask), the
    # stop signals are taken by sigwait alone: a clean stop, whenever they come.
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    controller.start()
    print(f"smtp-auth ({options.mode}) on 127.0.0.1:{options.port}", flush=True)
    signal.sigwait(stop)
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
