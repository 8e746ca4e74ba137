"""
Real servers for integration tests, run as subprocesses on free loopback ports.

Each C{start_*} function writes a private configuration into a directory the
caller owns (a pytest tmp dir), starts the server in the foreground, waits
until it accepts connections, and returns a L{ServerProcess} that knows its
PID(s) and how to stop itself.  Nothing listens on anything but 127.0.0.1 and
::1, and nothing is left running: every process started here is stopped by
PID at teardown (and, failing that, at interpreter exit).

Stalling a server (a true hang: the kernel still accepts TCP connections,
nobody answers)::

    with server.stalled():      # SIGSTOP to every process of the server
        ...                     # probes now time out
    # SIGCONT on the way out

If a server cannot run on this machine, C{start_*} raises L{ServerUnavailable}
with the reason; the fixtures in C{tests/conftest.py} turn that into a skip.

Run as a script, this module is also the aiosmtpd server used for the TLS
variants (C{python tests/servers.py aiosmtpd --mode starttls ...}).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tests.procs import STOP_TIMEOUT, end_process, signal_pid, stop_pid, wait_for_port

if TYPE_CHECKING:
    from tests.certs import CertPair, TestCerts

__all__ = [
    "NGINX_AUTH_PASSWORD",
    "NGINX_AUTH_USER",
    "NGINX_BIG_RATE",
    "NGINX_BIG_SIZE",
    "NGINX_PAGE_MARKER",
    "TLS_KINDS",
    "Aiosmtpd",
    "Nginx",
    "OpenSmtpd",
    "Rsyslog",
    "ServerProcess",
    "ServerUnavailable",
    "descendants",
    "free_port",
    "free_ports",
    "ipv6_loopback",
    "nginx_binary",
    "start_aiosmtpd",
    "start_nginx",
    "start_opensmtpd",
    "start_rsyslog",
    "wait_for_port",
]

# Generous: a loaded CI machine can take seconds to start a server or to
# write a log line; the waits end as soon as it is done.
START_TIMEOUT = 30.0
#: Seconds to wait for a line in a server's log.
LINE_TIMEOUT = 30.0

# The HTTPS server blocks nginx gets when given certificates: kind -> the
# TestCerts attribute holding its certificate.
TLS_KINDS = ("valid", "expired", "wrong_host", "self_signed", "expiring_soon")


class ServerUnavailable(Exception):
    """This server cannot run on this machine (the message says why)."""


# --------------------------------------------------------------------------
# Ports


def ipv6_loopback() -> bool:
    """Whether a socket can bind to ::1 (IPv6 on the loopback interface)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """
    C{count} distinct TCP ports that are free on C{host} right now (and on
    ::1 as well when IPv6 is available, so a server may listen on both).

    The ports are free when this returns; someone else may take one before
    the server binds it, which on a test machine does not happen in practice.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    v6 = ipv6_loopback()
    try:
        while len(ports) < count:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            held.append(s)
            s.bind((host, 0))
            port = s.getsockname()[1]
            if v6 and family == socket.AF_INET:
                other = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                held.append(other)
                try:
                    other.bind(("::1", port))
                except OSError:
                    continue
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """One TCP port that is free on C{host} right now."""
    return free_ports(1, host)[0]


def _wait_for_path(
    path: Path, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before creating {path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear after {timeout} s")
        time.sleep(0.02)


# --------------------------------------------------------------------------
# Processes


def descendants(pid: int) -> list[int]:
    """PIDs of every living descendant of C{pid} (children first), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(0), [])
        found.extend(children)
        todo.extend(children)
    return found


_RUNNING: list[ServerProcess] = []


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


class ServerProcess:
    """
    One server started by this module.  C{pid} is the main process (nginx's
    master, smtpd's parent); L{pids} adds its descendants (workers).
    """

    name = "server"
    # The signal that asks the server for a graceful stop.
    stop_signal = signal.SIGTERM

    def __init__(self, process: subprocess.Popen[bytes], directory: Path, log: Path) -> None:
        self.process = process
        self.directory = directory
        # stdout and stderr of the server.
        self.log = log
        self._stalled: list[int] = []
        _RUNNING.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The main process and all its descendants."""
        return [self.pid, *descendants(self.pid)]

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """What the server wrote to stdout/stderr so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stall(self) -> None:
        """SIGSTOP every process of the server: connections are accepted, never answered."""
        self._stalled = self.pids()
        for pid in self._stalled:
            stop_pid(pid)

    def resume(self) -> None:
        """SIGCONT what L{stall} stopped."""
        for pid in [*self._stalled, self.pid]:
            signal_pid(pid, signal.SIGCONT)
        self._stalled = []

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        self.stall()
        try:
            yield
        finally:
            self.resume()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """
        Ask the server to finish (L{stop_signal}), wait up to C{timeout}
        seconds, then SIGKILL whatever of it is left.
        """
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.process.poll() is not None:
            return
        family = self.pids()
        for pid in family[1:]:
            signal_pid(pid, signal.SIGCONT)
        end_process(self.process, timeout, stop_signal=self.stop_signal)
        # Workers that outlived their master (or were never told).
        for pid in family[1:]:
            signal_pid(pid, signal.SIGKILL)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _spawn(
    argv: Sequence[str], directory: Path, log_name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = directory / log_name
    with open(log, "wb") as out:
        process = subprocess.Popen(
            list(argv),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C at the terminal reaches pytest, which then
            # stops the servers in order, rather than killing them under it.
            start_new_session=True,
        )
    return process, log


def _failed_start(server: ServerProcess, error: Exception) -> RuntimeError:
    server.stop()
    return RuntimeError(f"{server.name} did not start: {error}\n--- output ---\n{server.output()}")


# --------------------------------------------------------------------------
# nginx

_NGINX_LOCATIONS = """
        location = / {{ return 200 "ok\\n"; }}
        location = /secret {{
            add_header WWW-Authenticate 'Basic realm="ismon"' always;
            return 401;
        }}
        location = /missing {{ return 404; }}
        location = /error {{ return 500; }}
        location = /redirect {{ return 302 /; }}
        # The HTTP checks (tests/test_http_checks.py).  Static files, as the
        # access phase (auth_basic) comes after the rewrite phase (return).
        location = /auth.txt {{
            root {dir}/www;
            auth_basic "ismon";
            auth_basic_user_file {dir}/htpasswd;
        }}
        location = /get-only {{
            if ($request_method = HEAD) {{ return 405; }}
            return 200 "get only\n";
        }}
        location = /headers {{
            add_header X-Ismon-Check "probe-ok" always;
            return 200 "headers\n";
        }}
        location = /page.html {{ root {dir}/www; }}
        location = /big.txt {{ root {dir}/www; limit_rate {big_rate}; }}
        location / {{ return 404; }}
"""

#: The user and password /auth.txt accepts (a distinctive password, so a
#: test can scan whatever a watch wrote for it).
NGINX_AUTH_USER = "watcher"
NGINX_AUTH_PASSWORD = "ismon-Pw-7f3a9c2e"
#: Text in /page.html, and at the end of /big.txt.
NGINX_PAGE_MARKER = "ismon-page-marker"
#: /big.txt: its size and the rate nginx sends it at (bytes per second).
NGINX_BIG_SIZE = 256 * 1024
NGINX_BIG_RATE = 16 * 1024


def _nginx_files(directory: Path) -> None:
    """The htpasswd (nginx's {PLAIN} scheme) and the static files of the HTTP checks."""
    www = directory / "www"
    www.mkdir(exist_ok=True)
    (directory / "htpasswd").write_text(f"{NGINX_AUTH_USER}:{{PLAIN}}{NGINX_AUTH_PASSWORD}\n")
    (www / "auth.txt").write_text("authorized\n")
    (www / "page.html").write_text(f"<html><body>{NGINX_PAGE_MARKER}</body></html>\n")
    line = b"x" * 1023 + b"\n"
    (www / "big.txt").write_bytes(
        line * (NGINX_BIG_SIZE // 1024 - 1) + NGINX_PAGE_MARKER.encode().ljust(1023) + b"\n"
    )


_NGINX_FRAME = """\
daemon {daemon};
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections {worker_connections}; }}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{http}}}
"""


def nginx_binary() -> str:
    """
    The nginx program (on PATH, else Debian's /usr/sbin/nginx).

    @raise ServerUnavailable: nginx is not installed.
    """
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if binary is None:
        raise ServerUnavailable("nginx is not installed (apt-get install nginx-light)")
    return binary


def nginx_conf(
    directory: Path,
    http: str,
    *,
    daemon: bool = False,
    user: str | None = None,
    worker_connections: int = 256,
) -> str:
    """
    The nginx.conf of a private nginx whose pidfile, error log and temporary
    folders are in C{directory}: one master, one worker, C{daemon on} or
    C{off}, and C{http} (whole lines, after the temporary folders) as the
    rest of its C{http} block.  C{user}: the C{user} line; by default
    C{user root;} when running as root (nginx would run its workers as
    "nobody", who cannot enter a 0700 pytest tmp dir; these workers only
    answer from memory), else none.
    """
    if user is None:
        user = "user root;" if os.geteuid() == 0 else ""
    return _NGINX_FRAME.format(
        daemon="on" if daemon else "off",
        user=user,
        dir=directory,
        worker_connections=worker_connections,
        http=http,
    )


_NGINX_HTTP = """\
    default_type text/plain;
    keepalive_timeout 5;
    log_format ismon '$remote_addr $server_port "$request" $status host="$http_host" ua="$http_user_agent" t=$msec';
    access_log {dir}/access.log ismon;
    server {{
        {listen}
        server_name localhost;
{locations}
    }}
    server {{
        {listen_404}
        server_name localhost;
        location / {{ return 404; }}
    }}
{tls_servers}
"""

_NGINX_TLS_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        {listen_v6}
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
{locations}
    }}
"""


class Nginx(ServerProcess):
    """
    A private nginx.

    C{port} serves C{/} 200, C{/secret} 401 (with WWW-Authenticate),
    C{/missing} 404, C{/error} 500, C{/redirect} 302, and for the HTTP
    checks C{/auth.txt} (Basic: L{NGINX_AUTH_USER}), C{/get-only} (HEAD 405,
    GET 200), C{/headers} (C{X-Ismon-Check: probe-ok}), C{/page.html} (holds
    L{NGINX_PAGE_MARKER}) and C{/big.txt} (L{NGINX_BIG_SIZE} bytes at
    L{NGINX_BIG_RATE} bytes/s, the marker at its end); 404 for anything
    else.  C{port_404} answers 404 to everything, C{/} included.  With
    certificates, C{https_ports[kind]} for each of L{TLS_KINDS} serves the
    same locations over TLS with that certificate.  Every request is logged
    to C{access_log} as::

        127.0.0.1 PORT "HEAD / HTTP/1.1" 200 host="127.0.0.1:PORT" ua="..." t=UNIXTIME

    where C{UNIXTIME} (C{$msec}) is when nginx handled it, by the real wall
    clock: a witness that does not depend on how promptly a test reads.
    """

    name = "nginx"
    stop_signal = signal.SIGQUIT

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        directory: Path,
        log: Path,
        *,
        port: int,
        port_404: int,
        https_ports: dict[str, int],
        ipv6: bool,
        certs: TestCerts | None,
    ) -> None:
        super().__init__(process, directory, log)
        self.host = "127.0.0.1"
        self.port = port
        self.port_404 = port_404
        self.https_ports = https_ports
        # Whether every server block also listens on [::1] (same port).
        self.ipv6 = ipv6
        self.certs = certs
        self.access_log = directory / "access.log"
        self.error_log = directory / "error.log"

    @property
    def ca(self) -> Path:
        """The CA that signed the HTTPS certificates (not the self-signed one)."""
        if self.certs is None:
            raise ValueError("this nginx was started without certificates")
        return self.certs.ca

    def access_lines(self) -> list[str]:
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def wait_for_access(self, pattern: str, timeout: float = LINE_TIMEOUT) -> str:
        """The first access log line matching the regex C{pattern} (waits)."""
        return _wait_for_line(self.access_lines, pattern, timeout, "nginx access log")


def start_nginx(
    directory: Path | str, certs: TestCerts | None = None, *, ipv6: bool | None = None
) -> Nginx:
    """
    Start nginx with its config, pid, logs and temp folders in C{directory}.

    @param certs: when given, also start one HTTPS server per L{TLS_KINDS}.
    @param ipv6: also listen on [::1]; default: when ::1 is available.
    """
    binary = nginx_binary()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if ipv6 is None:
        ipv6 = ipv6_loopback()
    kinds = TLS_KINDS if certs is not None else ()
    port, port_404, *tls_ports = free_ports(2 + len(kinds))
    https_ports = dict(zip(kinds, tls_ports, strict=True))

    def listen(p: int, extra: str = "") -> str:
        text = f"listen 127.0.0.1:{p}{extra};"
        return text + (f" listen [::1]:{p}{extra};" if ipv6 else "")

    tls_servers = ""
    for kind, tls_port in https_ports.items():
        assert certs is not None
        pair: CertPair = getattr(certs, kind)
        tls_servers += _NGINX_TLS_SERVER.format(
            port=tls_port,
            listen_v6=f"listen [::1]:{tls_port} ssl;" if ipv6 else "",
            cert=pair.chain,
            key=pair.key,
            locations=_NGINX_LOCATIONS.format(dir=directory, big_rate=NGINX_BIG_RATE),
        )
    conf = nginx_conf(
        directory,
        _NGINX_HTTP.format(
            dir=directory,
            listen=listen(port),
            listen_404=listen(port_404),
            locations=_NGINX_LOCATIONS.format(dir=directory, big_rate=NGINX_BIG_RATE),
            tls_servers=tls_servers,
        ),
    )
    _nginx_files(directory)
    conf_path = directory / "nginx.conf"
    conf_path.write_text(conf)
    process, log = _spawn(
        [binary, "-p", f"{directory}/", "-c", str(conf_path), "-e", str(directory / "error.log")],
        directory,
        "nginx.out",
    )
    server = Nginx(
        process,
        directory,
        log,
        port=port,
        port_404=port_404,
        https_ports=https_ports,
        ipv6=ipv6,
        certs=certs,
    )
    try:
        for p in [port, port_404, *https_ports.values()]:
            wait_for_port(p, process=process)
    except RuntimeError as e:
        error_log = (
            server.error_log.read_text(errors="replace") if server.error_log.exists() else ""
        )
        raise _failed_start(server, RuntimeError(f"{e}\n{error_log}")) from None
    return server


# --------------------------------------------------------------------------
# aiosmtpd

AIOSMTPD_MODES = ("plain", "starttls", "tls")


class Aiosmtpd(ServerProcess):
    """
    aiosmtpd on C{host}:C{port}.  C{mode} is C{plain}, C{starttls}
    (advertises and accepts STARTTLS) or C{tls} (implicit TLS, port-465
    style); the TLS modes use C{certs.valid}, so clients verify with
    C{certs.ca} and the name C{localhost}.
    """

    name = "aiosmtpd"

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        directory: Path,
        log: Path,
        *,
        port: int,
        mode: str,
        certs: TestCerts | None,
    ) -> None:
        super().__init__(process, directory, log)
        self.host = "127.0.0.1"
        self.port = port
        self.mode = mode
        self.certs = certs

    @property
    def ca(self) -> Path:
        if self.certs is None:
            raise ValueError("this aiosmtpd was started without certificates")
        return self.certs.ca


def start_aiosmtpd(
    directory: Path | str, mode: str = "plain", certs: TestCerts | None = None
) -> Aiosmtpd:
    """Start aiosmtpd in a subprocess (so that it can be SIGSTOPped)."""
    if mode not in AIOSMTPD_MODES:
        raise ValueError(f"mode must be one of {AIOSMTPD_MODES}")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        raise ServerUnavailable("aiosmtpd is not installed (pip install aiosmtpd)") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if mode == "plain":
        argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    else:
        if certs is None:
            raise ValueError(f"mode {mode!r} needs certs")
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "aiosmtpd",
            "--port",
            str(port),
            "--mode",
            mode,
            "--cert",
            str(certs.valid.chain),
            "--key",
            str(certs.valid.key),
        ]
    process, log = _spawn(argv, directory, f"aiosmtpd-{mode}.out")
    server = Aiosmtpd(process, directory, log, port=port, mode=mode, certs=certs)
    try:
        wait_for_port(port, process=process)
    except RuntimeError as e:
        raise _failed_start(server, e) from None
    return server


def _serve_aiosmtpd(args: Sequence[str]) -> int:
    """The C{aiosmtpd} subcommand: serve until SIGTERM."""
    import argparse
    import ssl
    import threading

    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    parser = argparse.ArgumentParser(prog="servers.py aiosmtpd")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=AIOSMTPD_MODES, default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    options = parser.parse_args(args)

    context = None
    if options.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options.cert, options.key)
    if options.mode == "starttls":
        controller = Controller(
            Sink(), hostname=options.host, port=options.port, tls_context=context
        )
    elif options.mode == "tls":
        controller = Controller(
            Sink(),
            hostname=options.host,
            port=options.port,
            ssl_context=context,
            server_hostname="localhost",
        )
    else:
        controller = Controller(Sink(), hostname=options.host, port=options.port)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    controller.start()
    print(f"aiosmtpd ({options.mode}) on {options.host}:{options.port}", flush=True)
    while not done.wait(1.0):
        pass
    controller.stop()
    return 0


# --------------------------------------------------------------------------
# OpenSMTPD

_OPENSMTPD_CONF = """\
listen on 127.0.0.1 port {port} hostname localhost
action "local" mbox
match from local for local action "local"
"""


class OpenSmtpd(ServerProcess):
    """
    OpenSMTPD (C{smtpd -d}) on 127.0.0.1:C{port}.  It is several processes
    (privilege separation): L{stall} stops them all.
    """

    name = "opensmtpd"

    def __init__(
        self, process: subprocess.Popen[bytes], directory: Path, log: Path, *, port: int
    ) -> None:
        super().__init__(process, directory, log)
        self.host = "127.0.0.1"
        self.port = port


def start_opensmtpd(directory: Path | str) -> OpenSmtpd:
    """
    Start OpenSMTPD in the foreground.

    smtpd insists on one control socket per machine, C{/run/smtpd.sock}, so
    a second instance (or the system's own) refuses to start.  It therefore
    runs in a private mount namespace with its own empty C{/run}
    (C{unshare -m}), which needs root; so does smtpd itself (it drops to
    the C{opensmtpd} users that the Debian package creates).
    """
    binary = shutil.which("smtpd") or (
        "/usr/sbin/smtpd" if os.path.exists("/usr/sbin/smtpd") else None
    )
    if binary is None:
        raise ServerUnavailable("OpenSMTPD is not installed (apt-get install opensmtpd)")
    if os.geteuid() != 0:
        raise ServerUnavailable("OpenSMTPD must be started as root")
    unshare = shutil.which("unshare")
    mount = shutil.which("mount")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf_path = directory / "smtpd.conf"
    conf_path.write_text(_OPENSMTPD_CONF.format(port=port))
    conf_path.chmod(0o600)
    if unshare and mount:
        # exec keeps one PID from unshare to smtpd.
        argv = [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            f'{mount} -t tmpfs -o mode=0755 ismon-run /run && exec "$0" -d -f "$1"',
            binary,
            str(conf_path),
        ]
    else:
        argv = [binary, "-d", "-f", str(conf_path)]
    process, log = _spawn(argv, directory, "smtpd.out")
    server = OpenSmtpd(process, directory, log, port=port)
    try:
        wait_for_port(port, process=process)
    except RuntimeError as e:
        output = server.output()
        server.stop()
        if "control socket already listening" in output:
            raise ServerUnavailable(
                "another OpenSMTPD holds /run/smtpd.sock and no private mount "
                "namespace could be made"
            ) from None
        if "Operation not permitted" in output or "unshare failed" in output:
            raise ServerUnavailable(
                f"OpenSMTPD cannot start here: {output.strip()[:300]}"
            ) from None
        raise RuntimeError(f"opensmtpd did not start: {e}\n--- output ---\n{output}") from None
    return server


# --------------------------------------------------------------------------
# rsyslog

_RSYSLOG_CONF = """\
global(workDirectory="{dir}/work")
module(load="imuxsock" SysSock.Name="{socket}" SysSock.Unlink="on"
       SysSock.UsePIDFromSystem="on" SysSock.RateLimit.Interval="0")
template(name="ismon" type="string"
         string="%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n")
*.* action(type="omfile" file="{messages}" template="{template}")
"""


class Rsyslog(ServerProcess):
    """
    rsyslogd receiving on the unix datagram socket C{socket} and writing
    every message to C{messages}, one per line.  With the default template
    a line reads C{FACILITY.SEVERITY TAG: MESSAGE}, e.g.
    C{daemon.err clp_httpmon[1234]: The clp_httpmon has ...}.
    """

    name = "rsyslog"

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        directory: Path,
        log: Path,
        *,
        socket_path: Path,
        messages: Path,
    ) -> None:
        super().__init__(process, directory, log)
        self.socket = socket_path
        self.messages = messages

    def lines(self) -> list[str]:
        try:
            return self.messages.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def wait_for(self, pattern: str, timeout: float = LINE_TIMEOUT) -> str:
        """The first line of C{messages} matching the regex C{pattern} (waits)."""
        return _wait_for_line(self.lines, pattern, timeout, "rsyslog messages")

    def send(self, text: str, priority: int = 3 * 8 + 6, tag: str = "ismon-test") -> None:
        """Send one message (default daemon.info) to the socket, as syslog(3) would."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(str(self.socket))
            s.send(f"<{priority}>{tag}: {text}".encode())


def start_rsyslog(directory: Path | str, template: str = "ismon") -> Rsyslog:
    """
    Start C{rsyslogd -n} with its socket, pid file and output in C{directory}.

    @param template: the omfile template: C{ismon} (see L{Rsyslog}) or one of
        rsyslog's own (C{RSYSLOG_FileFormat}, C{RSYSLOG_SyslogProtocol23Format}).
    """
    binary = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
    )
    if binary is None:
        raise ServerUnavailable("rsyslog is not installed (apt-get install rsyslog)")
    directory = Path(directory)
    (directory / "work").mkdir(parents=True, exist_ok=True)
    socket_path = directory / "log.sock"
    # AF_UNIX paths are limited to 107 bytes.
    if len(os.fsencode(socket_path)) > 100:
        raise ValueError(f"socket path too long for AF_UNIX: {socket_path}")
    messages = directory / "messages.log"
    conf_path = directory / "rsyslog.conf"
    conf_path.write_text(
        _RSYSLOG_CONF.format(
            dir=directory, socket=socket_path, messages=messages, template=template
        )
    )
    process, log = _spawn(
        [binary, "-n", "-f", str(conf_path), "-i", str(directory / "rsyslogd.pid")],
        directory,
        "rsyslogd.out",
    )
    server = Rsyslog(process, directory, log, socket_path=socket_path, messages=messages)
    try:
        _wait_for_path(socket_path, START_TIMEOUT, process)
    except RuntimeError as e:
        raise _failed_start(server, e) from None
    return server


# --------------------------------------------------------------------------


def _wait_for_line(lines: Callable[[], list[str]], pattern: str, timeout: float, what: str) -> str:
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in lines():
            if regex.search(line):
                return line
        if time.monotonic() > deadline:
            shown = "\n".join(lines()[-20:])
            raise AssertionError(f"no line matching {pattern!r} in the {what}:\n{shown}")
        time.sleep(0.02)


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["aiosmtpd"]:
        return _serve_aiosmtpd(argv[1:])
    print("usage: servers.py aiosmtpd --port PORT [--mode plain|starttls|tls] ...", file=sys.stderr)
    return errno.EINVAL


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
