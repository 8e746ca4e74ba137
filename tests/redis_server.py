"""
redis-server for the TCP watch's tests: a real daemon on a free loopback
port, from a throwaway configuration (nothing of /etc/redis is read), with
no persistence, in the foreground, stopped by PID (L{ServerProcess}).

    server = start_redis(tmp_path)
    server.host, server.port            # 127.0.0.1 and a free port
    server.ping()                       # b"+PONG\\r\\n", over a plain socket
    with server.stalled():              # SIGSTOP: connections accepted, never answered
        ...

The TCP watch's check against it is C{--send 'PING\\r\\n' --expect '\\+PONG'}.
Without the C{redis-server} binary (Debian package C{redis-server})
L{start_redis} raises L{ServerUnavailable}.  Root is not needed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.procs import wait_for_port
from tests.servers import ServerProcess, ServerUnavailable, _failed_start, _spawn, free_port

__all__ = ["Redis", "redis_binary", "start_redis"]

_CONF = """\
# Written by tests/redis_server.py: a throwaway instance, nothing of /etc/redis.
bind 127.0.0.1
port {port}
unixsocket ""
daemonize no
supervised no
pidfile {dir}/redis.pid
dir {dir}
logfile ""
loglevel notice
# No persistence: nothing written, nothing to load, nothing forked.
save ""
appendonly no
protected-mode yes
databases 1
"""


def redis_binary() -> str:
    """
    The redis-server program (on PATH, else Debian's /usr/bin/redis-server).

    @raise ServerUnavailable: redis-server is not installed.
    """
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        raise ServerUnavailable("redis-server is not installed (apt-get install redis-server)")
    return binary


class Redis(ServerProcess):
    """redis-server on 127.0.0.1:C{port}."""

    name = "redis"

    def __init__(
        self, process: subprocess.Popen[bytes], directory: Path, log: Path, *, port: int
    ) -> None:
        super().__init__(process, directory, log)
        self.host = "127.0.0.1"
        self.port = port

    def ping(self, timeout: float = 5.0) -> bytes:
        """Send C{PING}; return the first reply line (C{b"+PONG\\r\\n"} from a healthy server)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                data = sock.recv(512)
                if not data:
                    break
                reply += data
            return reply


def start_redis(directory: Path | str) -> Redis:
    """
    Start redis-server in the foreground with its configuration, pidfile
    and working folder in C{directory}; return once it answers C{PING}.
    """
    binary = redis_binary()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = directory / "redis.conf"
    conf.write_text(_CONF.format(port=port, dir=directory))
    process, log = _spawn([binary, str(conf)], directory, "redis.out")
    server = Redis(process, directory, log, port=port)
    try:
        wait_for_port(port, process=process)
        if server.ping() != b"+PONG\r\n":
            raise RuntimeError("redis-server does not answer PING with +PONG")
    except (RuntimeError, OSError) as e:
        raise _failed_start(server, RuntimeError(str(e))) from None
    return server
