"""
A guided demo: C{python -m ismon.demo}.

Starts an embedded demo HTTP + SMTP server (a separate process, so that it
can be stalled with SIGSTOP like a hung daemon), watches it with
C{clp_httpmon} and C{clp_smtpmon}, shows status, pause and continue, then
stalls the server and shows each watch exiting with code 1 within its
printed detection bound.

C{python -m ismon.demo serve PORT_HTTP PORT_SMTP} runs only the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

__all__ = ["main", "serve"]


def serve(http_port: int, smtp_port: int) -> None:
    """A well-behaved tiny HTTP and SMTP server on 127.0.0.1."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.basic import LineReceiver

    class Http(Protocol):
        def __init__(self) -> None:
            self._buffer = b""

        def dataReceived(self, data: bytes) -> None:
            self._buffer += data
            if b"\r\n\r\n" in self._buffer or len(self._buffer) > 65536:
                self.transport.write(  # type: ignore[union-attr]
                    b"HTTP/1.1 200 OK\r\nServer: ismon-demo\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
                self.transport.loseConnection()  # type: ignore[union-attr]

    class Smtp(LineReceiver):
        def connectionMade(self) -> None:
            self.sendLine(b"220 demo.invalid ESMTP ismon-demo")

        def lineReceived(self, line: bytes) -> None:
            verb = line.split(b" ")[0].upper()
            if verb == b"QUIT":
                self.sendLine(b"221 Bye")
                self.transport.loseConnection()  # type: ignore[union-attr]
            elif verb in (b"NOOP", b"HELO", b"EHLO", b"RSET"):
                self.sendLine(b"250 OK")
            else:
                self.sendLine(b"502 Command not implemented")

    reactor.listenTCP(http_port, Factory.forProtocol(Http), interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
    reactor.listenTCP(smtp_port, Factory.forProtocol(Smtp), interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
    reactor.run()  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(server: subprocess.Popen[bytes], port: int, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        # A server that died (e.g. Twisted missing) is reported at once, not
        # after the whole wait.
        if server.poll() is not None:
            raise SystemExit(f"demo server exited with code {server.returncode} (see above)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"demo server did not start on port {port}")


def _pump(prefix: str, stream: IO[bytes]) -> None:
    for raw in stream:
        sys.stdout.write(f"{prefix} {raw.decode('utf-8', 'replace').rstrip()}\n")
        sys.stdout.flush()


def _say(text: str) -> None:
    sys.stdout.write(f"\n=== {text}\n")
    sys.stdout.flush()


def _ismon(state_dir: str, *args: str) -> int:
    command = [sys.executable, "-m", "ismon", *args, "--state-dir", state_dir]
    sys.stdout.write("$ ismon " + " ".join(args) + "\n")
    sys.stdout.flush()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        sys.stdout.write(f"    {line}\n")
    sys.stdout.write(f"    (exit {done.returncode})\n")
    return done.returncode


def main() -> int:
    try:
        import twisted.internet  # noqa: F401
    except ImportError:
        # From a checkout root, "import twisted" alone succeeds: it finds the
        # checkout's twisted/plugins folder.
        raise SystemExit(
            f"ismon.demo: Twisted is not installed for {sys.executable}; "
            "run bash scripts/demo.sh, which installs it"
        ) from None
    http_port, smtp_port = _free_port(), _free_port()
    state_dir = tempfile.mkdtemp(prefix="ismon-demo-")
    _say(f"starting the demo server: HTTP on 127.0.0.1:{http_port}, SMTP on :{smtp_port}")
    server = subprocess.Popen(
        [sys.executable, "-m", "ismon.demo", "serve", str(http_port), str(smtp_port)]
    )
    watches: list[tuple[str, subprocess.Popen[bytes], threading.Thread]] = []
    try:
        _wait_port(server, http_port)
        _wait_port(server, smtp_port)
        common = ["-i", "1", "-c", "2", "-r", "1", "--state-dir", state_dir]
        common += ["--syslog-socket", "none"]
        for name, command in (
            ("web", ["http", "web", "-s", "127.0.0.1", "-n", str(http_port), *common]),
            ("mail", ["smtp", "mail", "-s", "127.0.0.1", "-n", str(smtp_port), *common]),
        ):
            _say(f"starting watch {name}: ismon {' '.join(command)}")
            process = subprocess.Popen(
                [sys.executable, "-m", "ismon", *command],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert process.stdout is not None
            pump = threading.Thread(target=_pump, args=(f"[{name}]", process.stdout), daemon=True)
            pump.start()
            watches.append((name, process, pump))
        time.sleep(3.5)
        _say("status of the running watches")
        _ismon(state_dir, "status", "web")
        _ismon(state_dir, "status")
        _say("pause the HTTP watch (maintenance: no probes are sent), then continue")
        _ismon(state_dir, "pause", "web")
        time.sleep(2.5)
        _ismon(state_dir, "continue", "web")
        time.sleep(2.5)
        _say(f"stalling the server with SIGSTOP (pid {server.pid}): it accepts but never answers")
        stalled_at = time.monotonic()
        os.kill(server.pid, signal.SIGSTOP)
        for name, process, pump in watches:
            code = process.wait(timeout=60)
            pump.join(timeout=5)
            _say(
                f"watch {name} exited with code {code} "
                f"{time.monotonic() - stalled_at:.1f}s after the stall "
                "(1 = server failed: the cluster would fail the group over now)"
            )
        return 0
    finally:
        for _, process, _ in watches:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(state_dir, ignore_errors=True)
        _say("demo finished")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(main())
