"""
Dovecot for the POP3 and IMAP4 tests: one throwaway instance on free loopback
ports, started by the suite and stopped by PID.

    server = start_dovecot(tmp_path, certs)
    server.pop3_port, server.pop3s_port     # 110-style (STLS offered), 995-style
    server.imap_port, server.imaps_port     # 143-style (STARTTLS offered), 993-style
    server.user, server.password            # the one user of its passwd-file
    with server.stalled():                  # SIGSTOP to every dovecot process
        ...

Nothing of the system's dovecot is read or written: the configuration is
given with C{-c} (no C{/etc/dovecot}), and C{base_dir}, C{state_dir}, the
user database and the mail live in a private directory under C{/tmp}, which
is removed at L{Dovecot.stop}.  That directory is not the caller's (pytest's
are C{0700} and long): dovecot's unprivileged processes (C{dovecot},
C{dovenull}) must reach it, and its UNIX sockets must fit C{sun_path}.

Dovecot runs as root (it drops to the users its Debian package creates); as
another user, or without C{dovecot-pop3d} and C{dovecot-imapd},
L{start_dovecot} raises L{ServerUnavailable}.  L{dovecot_or_skip} turns that
into a skip, or a failure where the servers must be there (C{scripts/test.sh}
as root, or C{CI=true} as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tests.procs import STOP_TIMEOUT, wait_for_port
from tests.servers import ServerProcess, ServerUnavailable, _failed_start, _spawn, free_ports

if TYPE_CHECKING:
    from tests.certs import TestCerts

__all__ = [
    "DOVECOT_PASSWORD",
    "DOVECOT_USER",
    "Dovecot",
    "dovecot_binary",
    "dovecot_or_skip",
    "start_dovecot",
]

#: The user and password of the passwd-file (a distinctive password, so a
#: test can scan whatever a watch wrote for it).
DOVECOT_USER = "watcher"
DOVECOT_PASSWORD = "ismon-Dv-41c7e9b0"

# The users the Debian dovecot-core package creates; the mail processes run
# as nobody, which dovecot accepts (uid >= first_valid_uid).
_LOGIN_USER = "dovenull"
_INTERNAL_USER = "dovecot"
_MAIL_USER = "nobody"

_CONF = """\
# Written by tests/dovecot.py: a throwaway instance, nothing from /etc/dovecot.
base_dir = {rt}/run
state_dir = {rt}/state
log_path = /dev/stderr
info_log_path = /dev/stderr
protocols = pop3 imap
listen = 127.0.0.1
default_login_user = {login_user}
default_internal_user = {internal_user}
# The tests log in over plain connections too (--auth-file without TLS).
disable_plaintext_auth = no
auth_mechanisms = plain login
# A refused login answers at once: the tests wait for it, not dovecot's 2 s.
auth_failure_delay = 0
ssl = yes
ssl_cert = <{rt}/cert.pem
ssl_key = <{rt}/key.pem
{dh}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {rt}/users
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={rt}/home/%u
}}
mail_location = maildir:~/Maildir
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
"""

# Debian's DH parameters (ssl_dh); without them dovecot only warns.
_DH = Path("/usr/share/dovecot/dh.pem")


class Dovecot(ServerProcess):
    """
    Dovecot's master (C{dovecot -F}) and its children on 127.0.0.1.  STLS
    and STARTTLS are offered on the plain ports; the certificate is
    C{certs.valid} of the test CA (L{ca}).
    """

    name = "dovecot"

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        directory: Path,
        log: Path,
        *,
        runtime: Path,
        ports: list[int],
        ca: Path,
    ) -> None:
        super().__init__(process, directory, log)
        self.runtime = runtime
        self.host = "127.0.0.1"
        self.pop3_port, self.pop3s_port, self.imap_port, self.imaps_port = ports
        self.ca = ca
        self.user = DOVECOT_USER
        self.password = DOVECOT_PASSWORD

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        super().stop(timeout)
        shutil.rmtree(self.runtime, ignore_errors=True)


def dovecot_binary() -> str:
    """The dovecot program, with both the POP3 and the IMAP4 server installed."""
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )
    if binary is None:
        raise ServerUnavailable(
            "dovecot is not installed (apt-get install dovecot-pop3d dovecot-imapd)"
        )
    for server, package in (("pop3", "dovecot-pop3d"), ("imap", "dovecot-imapd")):
        if not os.path.exists(f"/usr/lib/dovecot/{server}"):
            raise ServerUnavailable(f"{package} is not installed (apt-get install {package})")
    return binary


def _users() -> tuple[pwd.struct_passwd, ...]:
    try:
        return tuple(pwd.getpwnam(name) for name in (_LOGIN_USER, _INTERNAL_USER, _MAIL_USER))
    except KeyError as e:
        raise ServerUnavailable(f"dovecot's system user {e} is missing") from None


def start_dovecot(directory: Path | str, certs: TestCerts) -> Dovecot:
    """
    Start a private dovecot in the foreground; return once all four ports
    accept.  Its output (log included) goes to C{directory/dovecot.out}.
    """
    binary = dovecot_binary()
    if os.geteuid() != 0:
        raise ServerUnavailable("dovecot must be started as root")
    _login, internal, mail = _users()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    runtime = Path(tempfile.mkdtemp(prefix="ismon-dovecot-"))
    try:
        runtime.chmod(0o755)
        shutil.copyfile(certs.valid.chain, runtime / "cert.pem")
        shutil.copyfile(certs.valid.key, runtime / "key.pem")
        (runtime / "key.pem").chmod(0o600)
        users = runtime / "users"
        users.write_text(f"{DOVECOT_USER}:{{PLAIN}}{DOVECOT_PASSWORD}::::::\n")
        # The auth process (the internal user) reads it; nobody else may.
        users.chmod(0o640)
        os.chown(users, 0, internal.pw_gid)
        home = runtime / "home"
        home.mkdir()
        os.chown(home, mail.pw_uid, mail.pw_gid)
        ports = free_ports(4)
        conf = directory / "dovecot.conf"
        conf.write_text(
            _CONF.format(
                rt=runtime,
                dh=f"ssl_dh = <{_DH}" if _DH.exists() else "",
                login_user=_LOGIN_USER,
                internal_user=_INTERNAL_USER,
                mail_user=mail.pw_uid,
                mail_group=mail.pw_gid,
                pop3=ports[0],
                pop3s=ports[1],
                imap=ports[2],
                imaps=ports[3],
            )
        )
    except BaseException:
        shutil.rmtree(runtime, ignore_errors=True)
        raise
    process, log = _spawn([binary, "-F", "-c", str(conf)], directory, "dovecot.out")
    server = Dovecot(process, directory, log, runtime=runtime, ports=ports, ca=certs.ca)
    try:
        for port in ports:
            wait_for_port(port, process=process)
    except RuntimeError as e:
        raise _failed_start(server, e) from None
    return server


def servers_required() -> bool:
    """Whether a missing server is a broken machine rather than a reason to skip."""
    if os.environ.get("ISMON_REQUIRE_SERVERS") == "1":
        return True
    return os.environ.get("CI") == "true" and os.geteuid() == 0


def dovecot_or_skip(directory: Path | str, certs: TestCerts) -> Dovecot:
    """L{start_dovecot}, skipping the calling test when dovecot cannot run here."""
    import pytest

    try:
        return start_dovecot(directory, certs)
    except ServerUnavailable as e:
        if servers_required():
            pytest.fail(f"dovecot unavailable (CI or ISMON_REQUIRE_SERVERS=1): {e}")
        pytest.skip(f"server unavailable: {e}")
