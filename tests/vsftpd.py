"""
vsftpd for the FTP watch's tests: a real daemon on a free loopback port,
started in the foreground from a throwaway configuration (the machine's
/etc/vsftpd.conf is never read), and stopped by PID (L{ServerProcess}).

C{start_vsftpd(directory, certs)} serves plain FTP with C{AUTH TLS}
(RFC 4217) using the test CA's C{valid} certificate; with
C{implicit=True} it speaks TLS from the first byte (port-990 style).
Anonymous login is off, so C{NOOP} before a login is answered C{530}, as
on a production vsftpd.

The login tests use a local account, L{FTP_USER} with L{FTP_PASSWORD}
(vsftpd authenticates through PAM, which needs a passwd entry whose shell
is in /etc/shells).  L{ftp_user} creates it with C{useradd} when it is
missing and removes it again afterwards; an account of that name left by
an interrupted run is reused (its password set again), never duplicated.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tests.procs import wait_for_port
from tests.servers import ServerProcess, ServerUnavailable, _failed_start, _spawn, free_port

if TYPE_CHECKING:
    from tests.certs import TestCerts

__all__ = ["FTP_PASSWORD", "FTP_USER", "Vsftpd", "ftp_user", "start_vsftpd", "vsftpd_binary"]

#: The local account of the login tests, and its (distinctive) password, so
#: a test can scan whatever a watch wrote for it.
FTP_USER = "ismonftp"
FTP_PASSWORD = "ismon-Ftp-4c1e8b7d"

_CONF = """\
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
secure_chroot_dir={empty}
nopriv_user=nobody
anonymous_enable=NO
local_enable=YES
write_enable=NO
pam_service_name=vsftpd
userlist_enable=NO
tcp_wrappers=NO
xferlog_enable=NO
syslog_enable=NO
vsftpd_log_file={dir}/vsftpd.log
dual_log_enable=NO
log_ftp_protocol=NO
# Containers often forbid the namespaces and the seccomp filter vsftpd
# would set up per session; the tests do not need them.
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
max_clients=0
max_per_ip=0
delay_failed_login=1
ssl_enable=YES
implicit_ssl={implicit}
rsa_cert_file={cert}
rsa_private_key_file={key}
# vsftpd 3.0.3's default cipher list (DES-CBC3-SHA) is gone from OpenSSL 3.
ssl_ciphers=HIGH
# TLS 1.0 and up as vsftpd 3.0.3 knows them; OpenSSL 3 refuses below 1.2.
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO
allow_anon_ssl=NO
# The plain-login test logs in without TLS.
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=NO
"""


def vsftpd_binary() -> str:
    """
    The vsftpd program.

    @raise ServerUnavailable: it is not installed, or we are not root.
    """
    binary = shutil.which("vsftpd") or (
        "/usr/sbin/vsftpd" if os.path.exists("/usr/sbin/vsftpd") else None
    )
    if binary is None:
        raise ServerUnavailable("vsftpd is not installed (apt-get install vsftpd)")
    if os.geteuid() != 0:
        # It changes to nopriv_user and chroots into secure_chroot_dir.
        raise ServerUnavailable("vsftpd must be started as root")
    return binary


class Vsftpd(ServerProcess):
    """vsftpd on 127.0.0.1:C{port}; C{implicit}: TLS from the first byte."""

    name = "vsftpd"

    # Set by start_vsftpd.
    port: int
    implicit: bool


def start_vsftpd(directory: Path | str, certs: TestCerts, *, implicit: bool = False) -> Vsftpd:
    """
    Start vsftpd in the foreground with a private configuration in
    C{directory}; TLS with C{certs.valid}.
    """
    binary = vsftpd_binary()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # The session's chroot: empty, owned by root, not writable by nobody.
    empty = directory / "empty"
    empty.mkdir(exist_ok=True)
    empty.chmod(0o555)
    port = free_port()
    conf = directory / "vsftpd.conf"
    conf.write_text(
        _CONF.format(
            port=port,
            empty=empty,
            dir=directory,
            implicit="YES" if implicit else "NO",
            cert=certs.valid.chain,
            key=certs.valid.key,
        )
    )
    # vsftpd refuses a configuration that others could have written.
    conf.chmod(0o600)
    process, log = _spawn([binary, str(conf)], directory, "vsftpd.out")
    server = Vsftpd(process, directory, log)
    server.port, server.implicit = port, implicit
    try:
        wait_for_port(port, process=process)
    except RuntimeError as e:
        raise _failed_start(server, e) from None
    return server


def _login_shell() -> str:
    """A shell listed in /etc/shells (PAM's pam_shells requires one)."""
    with contextlib.suppress(OSError):
        for line in Path("/etc/shells").read_text().splitlines():
            if line.strip() and not line.startswith("#") and os.path.exists(line.strip()):
                return line.strip()
    return "/bin/sh"


def _user_exists(name: str) -> bool:
    return subprocess.run(["id", "-u", name], capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def ftp_user() -> Iterator[tuple[str, str]]:
    """
    The login tests' account: yield C{(user, password)}.  Created (and
    removed on the way out) when missing; reused when already there.

    @raise ServerUnavailable: not root, or the account tools are missing.
    """
    useradd, userdel, chpasswd = (shutil.which(t) for t in ("useradd", "userdel", "chpasswd"))
    if os.geteuid() != 0 or not (useradd and userdel and chpasswd):
        raise ServerUnavailable("the FTP login tests need root and useradd/userdel/chpasswd")
    created = False
    if not _user_exists(FTP_USER):
        # No home to create or leave behind: vsftpd only needs to chdir to "/".
        subprocess.run(
            [useradd, "--no-create-home", "--home-dir", "/", "--shell", _login_shell(), FTP_USER],
            check=True,
            capture_output=True,
        )
        created = True
    try:
        subprocess.run([chpasswd], input=f"{FTP_USER}:{FTP_PASSWORD}\n".encode(), check=True)
        yield FTP_USER, FTP_PASSWORD
    finally:
        if created:
            subprocess.run([userdel, FTP_USER], check=False, capture_output=True)
