# -*- test-case-name: tests.test_exporter -*-
"""
Tests for L{ismon.metrics.exporter}: the real C{ismon exporter} process, scraped by
real HTTP clients on loopback, serving real watches of a real nginx, a
watch socket that accepts and never answers, and hostile clients held open
while a scrape is asked (docs/prometheus.md).  Its parsers are checked as
plain functions.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ismon.cmdline.exporter import parse_listen, parse_watch_timeout
from ismon.metrics.exporter import Listen, wants_openmetrics
from ismon.metrics.render import CLASSIC_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE
from ismon.state.folder import StateDir
from tests.procs import wait_for_port, wait_until
from tests.servers import Nginx, free_port, ipv6_loopback
from tests.watchproc import LOOPBACK, PATIENCE, Processes, WatchProcess, command, watch_argv

#: What Prometheus 2.x sends (scrape.go, acceptHeader).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


# -- the parsers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9785", Listen("127.0.0.1", 9785)),
        ("0.0.0.0:1", Listen("0.0.0.0", 1)),
        ("[::]:65535", Listen("::", 65535)),
        ("[::1]:9785", Listen("::1", 9785)),
    ],
)
def test_listen_addresses(text: str, expected: Listen) -> None:
    assert parse_listen(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("9785", "ADDRESS:PORT"),
        (":9785", "ADDRESS:PORT"),
        ("localhost:9785", "ADDRESS:PORT"),
        ("::1:9785", "brackets"),
        ("[::1]", "give the port"),
        ("[::1]9785", "give the port"),
        ("[127.0.0.1]:9785", "not an IPv6 address"),
        ("127.0.0.1:0", "1 to 65535"),
        ("127.0.0.1:65536", "1 to 65535"),
        ("127.0.0.1:http", "1 to 65535"),
        ("127.0.0.1:", "1 to 65535"),
        ("127.0.0.1:\u0661", "1 to 65535"),
    ],
)
def test_bad_listen_addresses(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_listen(text)


def test_watch_timeouts() -> None:
    assert parse_watch_timeout("2") == 2.0
    assert parse_watch_timeout("0.1") == 0.1
    for bad in ("0", "0.05", "61", "nan", "inf", "-1", "two", ""):
        with pytest.raises(ValueError, match="--watch-timeout"):
            parse_watch_timeout(bad)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("Application/OpenMetrics-Text; version=1.0.0", True),
        ("text/plain;q=0.5, application/openmetrics-text;q=0.1", True),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;q=zero", False),
        ("text/plain;version=0.0.4", False),
        ("*/*", False),
        ("", False),
        (None, False),
    ],
)
def test_content_negotiation(accept: str | None, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


# -- the real exporter ---------------------------------------------------------------


class Exporter:
    """An C{ismon exporter} process on a free loopback port."""

    def __init__(self, processes: Processes, state: Path, *extra: str) -> None:
        self.port = free_port()
        self.process: WatchProcess = processes.start(
            [
                *command("ismon"),
                "exporter",
                "--listen",
                f"{LOOPBACK}:{self.port}",
                "--state-dir",
                str(state),
                *extra,
            ],
            name="exporter",
        )
        wait_for_port(self.port, process=self.process.process)

    def get(
        self, path: str = "/metrics", method: str = "GET", **headers: str
    ) -> tuple[http.client.HTTPResponse, str]:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=PATIENCE)
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            return response, response.read().decode("utf-8")
        finally:
            connection.close()

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def up_sample(body: str, watch_id: str) -> str | None:
    """The value of C{ismon_up} for C{watch_id}, if the body has it."""
    found = re.search(rf'^ismon_up\{{[^}}]*watch="{watch_id}"[^}}]*\}} (\S+)$', body, re.M)
    return found.group(1) if found else None


def _state(tmp_path: Path) -> Path:
    return StateDir.open(tmp_path / "state").path


@pytest.fixture
def web(processes: Processes, nginx: Nginx, tmp_path: Path) -> Exporter:
    """An exporter serving one running watch, C{web}, of a real nginx."""
    state = _state(tmp_path)
    processes.start(watch_argv("clp_httpmon", "web", LOOPBACK, nginx.port, state), name="web")
    exporter = Exporter(processes, state)
    wait_until(lambda: up_sample(exporter.get()[1], "web") == "1", PATIENCE, "web up")
    return exporter


def test_classic_text_unless_openmetrics_is_asked_for(web: Exporter) -> None:
    for headers in ({}, {"Accept": "text/plain"}, {"Accept": "*/*"}):
        response, body = web.get(**headers)
        assert response.status == 200
        assert response.getheader("Content-Type") == CLASSIC_CONTENT_TYPE
        assert up_sample(body, "web") == "1"
        assert "# EOF" not in body


def test_openmetrics_when_asked_for(web: Exporter) -> None:
    response, body = web.get(Accept=PROMETHEUS_ACCEPT)
    assert response.status == 200
    assert response.getheader("Content-Type") == OPENMETRICS_CONTENT_TYPE
    assert up_sample(body, "web") == "1"
    assert body.endswith("# EOF\n")


def test_head_has_the_headers_and_no_body(web: Exporter) -> None:
    response, body = web.get(method="HEAD")
    assert response.status == 200
    assert response.getheader("Content-Type") == CLASSIC_CONTENT_TYPE
    assert int(response.getheader("Content-Length") or 0) > 0
    assert body == ""


def test_nothing_but_metrics(web: Exporter) -> None:
    for path in ("/", "/metrics/", "/metrics/x", "/METRICS", "/favicon.ico", "/../metrics"):
        response, body = web.get(path)
        assert (path, response.status) == (path, 404)
        assert "/metrics only" in body
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        response, _ = web.get(method=method)
        assert (method, response.status) == (method, 405)
        assert response.getheader("Allow") == "GET, HEAD"
    # A query string changes nothing.
    response, body = web.get("/metrics?debug=1")
    assert response.status == 200 and up_sample(body, "web") == "1"


@contextlib.contextmanager
def stuck_watch_sockets(state: Path, watch_ids: list[str]) -> Iterator[list[socket.socket]]:
    """
    For each ID, a lock file (so the exporter lists it) and a real UNIX
    socket at the watch's control socket path that accepts connections
    and never answers.  Yields the connections accepted so far.
    """
    folder = StateDir(state)
    listeners, held = [], []
    stop = threading.Event()
    for watch_id in watch_ids:
        folder.lock_path(watch_id).write_text(f"{watch_id}\n")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.fspath(folder.socket_path(watch_id)))
        listener.listen(16)
        listener.settimeout(0.1)
        listeners.append(listener)

    def accept() -> None:
        while not stop.is_set():
            for listener in listeners:
                with contextlib.suppress(TimeoutError):
                    held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield held
    finally:
        stop.set()
        thread.join(PATIENCE)
        for s in [*held, *listeners]:
            s.close()


def test_a_stuck_watch_costs_one_watch_timeout(
    processes: Processes, nginx: Nginx, tmp_path: Path
) -> None:
    state = _state(tmp_path)
    processes.start(watch_argv("clp_httpmon", "web", LOOPBACK, nginx.port, state), name="web")
    stuck = ["stuck1", "stuck2", "stuck3"]
    timeout = 2.0
    exporter = Exporter(processes, state, "--watch-timeout", f"{timeout:g}")
    wait_until(lambda: up_sample(exporter.get()[1], "web") == "1", PATIENCE, "web up")
    with stuck_watch_sockets(state, stuck) as accepted:
        started = time.monotonic()
        response, body = exporter.get()
        took = time.monotonic() - started
        # Scrapes at the same time share one round of questions: one more
        # connection per stuck watch, not one per scrape.
        before = len(accepted)
        scrapers = [threading.Thread(target=exporter.get) for _ in range(5)]
        for scraper in scrapers:
            scraper.start()
        for scraper in scrapers:
            scraper.join(PATIENCE)
        assert len(accepted) - before == len(stuck)
    assert response.status == 200
    assert up_sample(body, "web") == "1"
    for watch_id in stuck:
        assert up_sample(body, watch_id) == "0", body
    # Asked together: one timeout for the three, not three in a row.
    assert timeout * 0.9 <= took < timeout * 2, took


# -- hostile clients -----------------------------------------------------------------

IDLE_CONNECTIONS = 500
BIG_HEADER = 10 * 1024 * 1024


class Hostiles:
    """Hostile clients of one exporter, each in a thread, all ended by L{close}."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()
        self.big_header_sent = 0

    def connect(self) -> socket.socket:
        s = socket.create_connection((LOOPBACK, self.port), timeout=PATIENCE)
        self.sockets.append(s)
        return s

    def _thread(self, target: object) -> None:
        thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self.threads.append(thread)

    def idle(self, count: int) -> None:
        for _ in range(count):
            self.connect()

    def slowloris(self, count: int) -> None:
        """Request heads trickled a byte at a time, never finished."""
        victims = [self.connect() for _ in range(count)]

        def trickle() -> None:
            head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
            for byte in head:
                for s in victims:
                    with contextlib.suppress(OSError):
                        s.send(bytes([byte]))
                if self.stop.wait(0.2):
                    return

        self._thread(trickle)

    def big_header(self) -> None:
        """One header of 10 MB, sent as fast as the exporter takes it."""
        s = self.connect()

        def send() -> None:
            chunk = b"a" * 65536
            with contextlib.suppress(OSError):
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ")
                while self.big_header_sent < BIG_HEADER and not self.stop.is_set():
                    s.sendall(chunk)
                    self.big_header_sent += len(chunk)

        self._thread(send)

    def never_read(self, count: int, requests: int) -> None:
        """Clients that ask, again and again, and never read an answer."""
        for _ in range(count):
            s = self.connect()
            with contextlib.suppress(OSError):
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * requests)

    def close(self) -> None:
        self.stop.set()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for thread in self.threads:
            thread.join(PATIENCE)


def test_hostile_clients_do_not_delay_a_scrape(web: Exporter) -> None:
    before = web.rss_kib()
    hostiles = Hostiles(web.port)
    try:
        hostiles.idle(IDLE_CONNECTIONS)
        hostiles.slowloris(20)
        hostiles.never_read(20, 100)
        hostiles.big_header()
        time.sleep(1.0)  # let them all be under way
        times = []
        for _ in range(5):
            started = time.monotonic()
            response, body = web.get(Accept=PROMETHEUS_ACCEPT)
            times.append(time.monotonic() - started)
            assert response.status == 200
            assert up_sample(body, "web") == "1"
        grown = web.rss_kib() - before
    finally:
        hostiles.close()
    assert max(times) < 1.0, times
    # The 10 MB header was refused early, not kept.
    assert hostiles.big_header_sent < BIG_HEADER
    assert grown < 30 * 1024, f"RSS grew by {grown} KiB"
    # And the exporter is still there for the next scraper.
    assert web.get()[0].status == 200


def test_a_body_is_not_kept(web: Exporter) -> None:
    """A GET with a large body is answered; the body is dropped, not spooled."""
    before = web.rss_kib()
    connection = http.client.HTTPConnection(LOOPBACK, web.port, timeout=PATIENCE)
    try:
        connection.request("GET", "/metrics", body=b"a" * (8 * 1024 * 1024))
        response = connection.getresponse()
        assert response.status == 200
        assert up_sample(response.read().decode(), "web") == "1"
    finally:
        connection.close()
    assert web.rss_kib() - before < 6 * 1024


# -- the command ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--listen", "nowhere"],
        ["--listen", "127.0.0.1:0"],
        ["--listen", "[::1]"],
        ["--watch-timeout", "0"],
        ["--watch-timeout"],
        ["--bogus"],
        ["--state-dir", ""],
        ["extra"],
    ],
)
def test_bad_command_lines(processes: Processes, argv: list[str]) -> None:
    done = processes.run([*command("ismon"), "exporter", *argv])
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ismon exporter: "), done.stderr


def test_ipv6_loopback(processes: Processes, tmp_path: Path) -> None:
    if not ipv6_loopback():
        pytest.skip("no IPv6 on the loopback interface")
    port = free_port("::1")
    process = processes.start(
        [*command("ismon"), "exporter", "--listen", f"[::1]:{port}", "--state-dir", str(tmp_path)],
        name="exporter6",
    )
    wait_for_port(port, "::1", process=process.process)
    connection = http.client.HTTPConnection("::1", port, timeout=PATIENCE)
    connection.request("GET", "/metrics")
    assert connection.getresponse().status == 200
    connection.close()
    assert f"serving http://[::1]:{port}/metrics" in process.output()


def test_a_port_in_use(processes: Processes, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = processes.run(
            [
                *command("ismon"),
                "exporter",
                "--listen",
                f"{LOOPBACK}:{port}",
                "--state-dir",
                str(tmp_path / "s"),
            ]
        )
    assert done.returncode == 4, done
    assert (
        done.stderr
        == f"ismon exporter: cannot listen on {LOOPBACK}:{port}: Address already in use\n"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_it_cleanly(processes: Processes, tmp_path: Path, sig: int) -> None:
    exporter = Exporter(processes, tmp_path / "state")
    assert exporter.get()[0].status == 200
    exporter.process.signal(sig)
    assert exporter.process.wait() == 0
    assert "Traceback" not in exporter.process.output()


def _twistd(processes: Processes, port: int, state: Path) -> WatchProcess:
    run = "import sys; from twisted.scripts.twistd import run; sys.exit(run())"
    return processes.start(
        [
            *(sys.executable, "-c", run, "-n", "--pidfile="),
            *("ismon-exporter", "--listen", f"{LOOPBACK}:{port}", "--state-dir", str(state)),
        ],
        name="twistd",
    )


def test_twistd_plugin(processes: Processes, tmp_path: Path) -> None:
    port = free_port()
    process = _twistd(processes, port, tmp_path / "state")
    wait_for_port(port, process=process.process)
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=PATIENCE)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Type")) == (200, CLASSIC_CONTENT_TYPE)
    connection.close()
    process.signal(signal.SIGTERM)
    process.wait()
    assert "Traceback" not in process.output()


def test_twistd_plugin_port_in_use(processes: Processes, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        process = _twistd(processes, port, tmp_path / "state")
        assert process.wait() == 4
    output = process.output()
    assert f"ismon exporter: cannot listen on {LOOPBACK}:{port}: Address already in use" in output
    assert "Traceback" not in output


def test_the_exporter_takes_no_watch_lock(
    processes: Processes, nginx: Nginx, tmp_path: Path
) -> None:
    """Scraped over and over while a watch starts: the watch always starts."""
    state = _state(tmp_path)
    exporter = Exporter(processes, state)
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            exporter.get()

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        for n in range(2):
            watch = processes.start(
                watch_argv("clp_httpmon", f"w{n}", LOOPBACK, nginx.port, state), name="w"
            )
            wait_until(
                lambda n=n: up_sample(exporter.get()[1], f"w{n}") == "1",  # type: ignore[misc]
                PATIENCE,
                f"w{n} up",
            )
            assert watch.running()
    finally:
        stop.set()
        thread.join(PATIENCE)
