#!/usr/bin/env python3
"""
Footprint of a watch: memory, CPU, start-up time, control round trip, and
whether a plain-HTTP watch loads the TLS stack -- compared, in the same run,
with a bare Twisted reactor process and with forking check_http per probe.

Everything runs on this machine against private servers on 127.0.0.1
(nginx from tests/servers.py, and a tiny accept-stamping server of our own
for start-up times).  In one run:

  TLS stack   a plain-HTTP watch (clp_httpmon, the real entry point): is
              pyOpenSSL / cryptography mapped (/proc/PID/maps: a path with
              /cryptography/ or _openssl or /OpenSSL/)?  And a watch run as
              ``python -m ismon http`` (through runpy, with an atexit hook):
              does sys.modules hold OpenSSL, cryptography or service_identity
              after start-up and a few probes?  The stdlib _ssl (libssl) is
              loaded by asyncio through Twisted and is not counted.  For
              contrast: a ``--tls --insecure`` watch and a bare reactor.
  bare        RSS of ``python -c pass`` (sleeping), of a bare Twisted reactor
              (``from twisted.internet import reactor; reactor.run()``) as is,
              and of the same with pyOpenSSL made unimportable (what the
              ismon entry points do for a plain watch).
  start-up    from exec to the first connection seen by the server: a watch
              (clp_httpmon), a bare Twisted process that connects once, and
              check_http; p50 / max over --startups runs (10).
  check_http  /usr/lib/nagios/plugins/check_http forked per probe against
              nginx: CPU per run (wait4 rusage of the child) and peak RSS
              (through /usr/bin/time -f %M: a child forked from this bench
              would inherit the bench's own RSS peak in ru_maxrss).
  probes 1k/10k  a real watch process whose probes fail at once and are
              retried at once (-h /missing answers 404, -c 10000
              --retry-interval 0: one probe every ~2 ms, the whole probe
              and failure-report path), frozen with SIGSTOP after 1000 and
              after 10000 probes (counted in nginx's access log) for RSS
              (/proc/PID/status) and CPU (/proc/PID/task/*/schedstat);
              an ``ismon pause``/``continue`` at ~500 probes resets its
              consecutive-failure count so that it lives past 10000.
  in-process  a child process runs ismon.watch.service.WatchService on a real
              reactor with a 1 ms interval against nginx (healthy probes,
              back to back): RSS at 1k and 10k probes, then tracemalloc over
              another 1k..10k window (traced growth and where it grew).
  1 Hz watch  a healthy watch at -i 1 for the whole run: RSS and CPU per
              probe (including its heartbeat and watchdog thread).
  control     wall time of ``ismon status ID`` as a subprocess (p50 over
              --status-runs, 20) and the AMP round trip alone
              (ismon.control.amp.status from a client process, p50 over 100).

Targets (issue 6): no growth (RSS growth 1k->10k <= 1 MiB in both the real
process and the in-process harness, traced Python memory growth <= 64 KiB
over 9000 probes); RSS no more than a bare Twisted process + 5 MB (the
like-for-like bare reactor, pyOpenSSL blocked as the watch does; the
default one is shown too); plain-HTTP watches do not load the TLS stack.

    python bench/footprint.py            # full run (~3 min)
    python bench/footprint.py --quick    # 200/1000 probes, fewer runs (~1 min)

The exit status is 0 unless something broke; a missed target prints FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/_common.py: run as python bench/NAME.py, this folder is sys.path[0];
# importing it also puts the checkout on sys.path (for tests.servers).
from _common import (
    STAMP_SERVER,
    BenchError,
    Interrupted,
    catch_signals,
    console_script,
    die_with_parent,
    end_process,
    ignore_signals,
    percentile,
    proc_cpu,
    wait_for_port_file,
)

MiB = 1024 * 1024
TARGET_OVER_BARE = 5 * 1000 * 1000  # "+5 MB"
TARGET_GROWTH_RSS = 1 * MiB
TARGET_GROWTH_TRACED = 64 * 1024
START_TIMEOUT = 20.0
CHECK_HTTP = Path(os.environ.get("ISMON_BENCH_PLUGINS", "/usr/lib/nagios/plugins")) / "check_http"
TLS_MAP_MARKERS = ("/cryptography/", "_openssl", "/OpenSSL/")
TLS_MODULES = ("OpenSSL", "cryptography", "service_identity")
_STARTED = "has started watching"


# --------------------------------------------------------------------------
# /proc


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of pid, in bytes."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                found[key] = int(rest.split()[0]) * 1024
    return found


def proc_maps_markers(pid: int) -> dict[str, list[str]]:
    """Which TLS markers (and _ssl) appear among the files mapped by pid."""
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    found = {m: sorted(p for p in paths if m in p) for m in TLS_MAP_MARKERS}
    found["_ssl (stdlib, not counted)"] = sorted(p for p in paths if "/_ssl." in p)
    return found


def mb(n: float) -> str:
    return f"{n / MiB:.1f}"


# --------------------------------------------------------------------------
# Processes


class Procs:
    """Every process this bench starts: ended by PID at the end, in reverse."""

    def __init__(self) -> None:
        self.items: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        argv: Sequence[str],
        stdout: Path | None,
        stderr: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        out = open(stdout, "wb") if stdout else subprocess.DEVNULL
        err = open(stderr, "wb") if stderr else subprocess.STDOUT
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=die_with_parent,
                env=env,
            )
        finally:
            for stream in (out, err):
                if hasattr(stream, "close"):
                    stream.close()  # type: ignore[union-attr]
        self.items.append(proc)
        return proc

    end = staticmethod(end_process)

    def end_all(self) -> None:
        for proc in reversed(self.items):
            self.end(proc)


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        if proc.poll() is not None:
            raise BenchError(f"{proc.args!r} exited {proc.returncode}:\n{content[-2000:]}")
        if time.monotonic() > deadline:
            raise BenchError(f"no {text!r} in {path} after {timeout:g} s:\n{content[-2000:]}")
        time.sleep(0.02)


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


_BLOCK_TLS = "import sys; sys.modules['OpenSSL'] = None; sys.modules['service_identity'] = None\n"

# A bare reactor that says when it runs (for RSS).  argv[1]: seconds to live.
_BARE_REACTOR = """
import sys
from twisted.internet import reactor
reactor.callWhenRunning(lambda: print("ready", flush=True))
reactor.callLater(float(sys.argv[1]), reactor.stop)
reactor.run()
"""

# A bare reactor that connects once to 127.0.0.1:argv[1] and stops (start-up).
_BARE_CONNECT = """
import sys
from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory, Protocol
class P(Protocol):
    def connectionMade(self):
        self.transport.loseConnection()
        reactor.stop()
f = ClientFactory()
f.protocol = P
reactor.connectTCP("127.0.0.1", int(sys.argv[1]), f)
reactor.callLater(10, reactor.stop)
reactor.run()
"""

_PYTHON_IDLE = """
import sys, time
print("ready", flush=True)
time.sleep(float(sys.argv[1]))
"""


# --------------------------------------------------------------------------
# Child modes (run in a fresh interpreter by the bench)


def child_harness(port: int, first: int, second: int, state_dir: str) -> int:
    """WatchService on a real reactor, 1 ms interval; prints one JSON line."""
    for name in ("OpenSSL", "service_identity"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import gc
    import tracemalloc

    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from ismon.cmdline.process import use_monotonic_clock
    from ismon.core.config import WatchConfig
    from ismon.core.requests import HttpRequest
    from ismon.core.timing import Timing
    from ismon.probes.table import make_probe
    from ismon.watch.service import WatchService

    use_monotonic_clock(reactor)
    devnull = open(os.devnull, "w")
    # As run_watch does: info and up to a log file (here /dev/null).  Without
    # an observer Twisted would buffer every event in memory.
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(devnull),
                [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)],
            )
        ],
        redirectStandardIO=False,
    )
    config = WatchConfig(
        watch_id="harness",
        protocol="http",
        command="clp_httpmon",
        request=HttpRequest(host="127.0.0.1", port=port, timeout=5),
        timing=Timing(interval=0.001, retries=3, timeout=5),
        state_dir=Path(state_dir),
        syslog_socket=None,
    )
    out: dict[str, Any] = {}
    codes: list[int] = []
    service = WatchService(config, reactor, make_probe=make_probe, on_exit=codes.append)
    me = os.getpid()
    plan = [first, second, second + first, 2 * second]
    snapshots: list[Any] = []

    def checkpoint(index: int, probes: int) -> None:
        gc.collect()
        mem = proc_memory(me)
        out[f"cp{index}"] = {
            "probes": probes,
            "rss": mem["VmRSS"],
            "anon": mem["RssAnon"],
            "cpu": proc_cpu(me),
            "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        }
        if index == 1:
            tracemalloc.start(10)
        if index >= 2:
            snapshots.append(tracemalloc.take_snapshot())

    def tick() -> None:
        status = service.status()
        probes = int(status["probes"])  # type: ignore[call-overload]
        while plan and probes >= plan[0]:
            checkpoint(4 - len(plan), probes)
            plan.pop(0)
        if not plan:
            out["failures"] = status["failures"]
            watcher.stop()
            tracemalloc.stop()
            d = service.stopService()
            if d is not None:
                d.addBoth(lambda _: reactor.stop())
            else:
                reactor.stop()

    def too_long() -> None:
        out["error"] = "time limit"
        reactor.stop()

    watcher = LoopingCall(tick)
    reactor.callWhenRunning(service.startService)
    reactor.callWhenRunning(watcher.start, 0.005, now=False)
    reactor.callLater(60 + second * 0.05, too_long)
    reactor.run()
    if len(snapshots) == 2:
        stats = snapshots[1].compare_to(snapshots[0], "lineno")
        out["top_growth"] = [
            f"{stat.size_diff:+d} B in {stat.count_diff:+d} blocks: {stat.traceback[0]}"
            for stat in stats[:6]
        ]
    print(json.dumps(out), flush=True)
    return 0 if "error" not in out else 1


def child_amp(socket_path: str, count: int) -> int:
    """count sequential ismon.control.amp.status calls; prints one JSON line of seconds."""
    for name in ("OpenSSL", "service_identity"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from ismon.control import amp as control

    times: list[float] = []
    errors: list[str] = []

    async def run() -> None:
        for _ in range(count):
            start = time.perf_counter()
            await control.status(reactor, Path(socket_path), timeout=5)
            times.append(time.perf_counter() - start)

    def go() -> None:
        d = Deferred.fromCoroutine(run())
        d.addErrback(lambda f: errors.append(f.getErrorMessage()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.callLater(120, reactor.stop)
    reactor.run()
    print(json.dumps({"times": times, "errors": errors}), flush=True)
    return 0 if not errors and len(times) == count else 1


# --------------------------------------------------------------------------
# The bench


@dataclass
class Figures:
    tls: dict[str, Any] = field(default_factory=dict)
    bare: dict[str, dict[str, int]] = field(default_factory=dict)
    startup: dict[str, list[float]] = field(default_factory=dict)
    check_http: dict[str, float] = field(default_factory=dict)
    fast: dict[str, Any] = field(default_factory=dict)
    harness: dict[str, Any] = field(default_factory=dict)
    slow: dict[str, Any] = field(default_factory=dict)
    control: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.procs = Procs()
        self.state = work / "state"
        self.state.mkdir(mode=0o700)
        self.clp_httpmon = console_script("clp_httpmon")
        self.ismon = console_script("ismon")
        self.figures = Figures()
        self.servers: list[Any] = []

    def say(self, text: str) -> None:
        print(text, flush=True)

    def watch_argv(self, watch_id: str, port: int, *extra: str) -> list[str]:
        return [
            self.clp_httpmon,
            watch_id,
            "-s",
            "127.0.0.1",
            "-n",
            str(port),
            *extra,
            "--state-dir",
            str(self.state),
            "--syslog-socket",
            "none",
        ]

    def status(self, watch_id: str) -> dict[str, Any]:
        done = subprocess.run(
            [self.ismon, "status", watch_id, "--json", "--state-dir", str(self.state)],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if done.returncode != 0:
            raise BenchError(f"ismon status {watch_id}: exit {done.returncode} {done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    # -- servers --------------------------------------------------------

    def start_servers(self) -> None:
        from tests.servers import start_nginx

        self.nginx = start_nginx(self.work / "nginx", ipv6=False)
        self.nginx_fast = start_nginx(self.work / "nginx-fast", ipv6=False)
        self.servers += [self.nginx, self.nginx_fast]
        port_file = self.work / "stamp.port"
        self.stamps = self.work / "stamps"
        self.stamp_server = self.procs.spawn(
            [sys.executable, "-c", STAMP_SERVER, str(port_file), str(self.stamps), "1800"],
            self.work / "stamp.log",
        )
        self.stamp_port = wait_for_port_file(
            port_file, self.stamp_server, "the stamping server", START_TIMEOUT
        )

    # -- phases ---------------------------------------------------------

    def start_slow_watch(self) -> None:
        """The healthy 1 Hz watch that lives for the whole run."""
        log = self.work / "slow.log"
        self.slow = self.procs.spawn(
            self.watch_argv("fpslow", self.nginx.port, "-i", "1", "-c", "3", "-r", "5"), log
        )
        wait_for_text(log, _STARTED, self.slow, START_TIMEOUT)

    def tls_check(self) -> None:
        self.say("TLS stack check ...")
        f = self.figures
        time.sleep(1.5)  # a probe or two
        f.tls["plain maps"] = proc_maps_markers(self.slow.pid)
        # Which modules the watch really holds: `python -m ismon http` run
        # through runpy, listing sys.modules on the way out (a module blocked
        # by the entry point is None there, not loaded).  The watch ends with
        # os._exit, which runs no atexit hook: the wrapper hooks os._exit.
        out = self.work / "modules.out"
        dump = self.work / "modules.json"
        wrapper = (
            "import atexit, json, os, runpy, sys\n"
            "def dump():\n"
            f"    with open({str(dump)!r}, 'w') as f:\n"
            "        json.dump(sorted(k for k, v in sys.modules.items() if v is not None), f)\n"
            "atexit.register(dump)\n"
            "_exit = os._exit\n"
            "def _dump_then_exit(code):\n"
            "    dump()\n"
            "    _exit(code)\n"
            "os._exit = _dump_then_exit\n"
            "sys.argv = ['ismon'] + sys.argv[1:]\n"
            "runpy.run_module('ismon', run_name='__main__', alter_sys=True)\n"
        )
        proc = self.procs.spawn(
            [
                sys.executable,
                "-c",
                wrapper,
                "http",
                "fpmodules",
                "-s",
                "127.0.0.1",
                "-n",
                str(self.nginx.port),
                "-i",
                "1",
                "--state-dir",
                str(self.state),
                "--syslog-socket",
                "none",
            ],
            out,
        )
        wait_for_text(out, _STARTED, proc, START_TIMEOUT)
        time.sleep(2.5)  # a few probes
        code = self.procs.end(proc)
        if not dump.exists():
            raise BenchError(f"the module dump is missing (exit {code}):\n{log_tail(out)}")
        modules = json.loads(dump.read_text())
        f.tls["plain imports"] = sorted(
            m for m in modules if any(m == t or m.startswith(t + ".") for t in TLS_MODULES)
        )
        f.tls["plain twisted tls"] = sorted(
            m for m in modules if m in ("twisted.internet.ssl", "twisted.internet._sslverify")
        )
        f.tls["plain modules"] = len(modules)
        # Contrast: a --tls watch (its probes fail against plain HTTP; -c 100 keeps it up).
        log = self.work / "tlswatch.log"
        proc = self.procs.spawn(
            self.watch_argv(
                "fptls", self.nginx.port, "-i", "1", "-c", "100", "-r", "5", "--tls", "--insecure"
            ),
            log,
        )
        wait_for_text(log, _STARTED, proc, START_TIMEOUT)
        time.sleep(1.5)
        f.tls["tls maps"] = proc_maps_markers(proc.pid)
        f.tls["tls rss"] = proc_memory(proc.pid)["VmRSS"]
        self.procs.end(proc)

    def bare(self) -> None:
        self.say("bare processes ...")
        kinds = {
            "python -c pass (sleeping)": _PYTHON_IDLE,
            "bare Twisted reactor": _BARE_REACTOR,
            "bare Twisted reactor, pyOpenSSL blocked": _BLOCK_TLS + _BARE_REACTOR,
        }
        for name, code in kinds.items():
            log = self.work / f"bare{len(self.figures.bare)}.log"
            proc = self.procs.spawn([sys.executable, "-c", code, "20"], log)
            wait_for_text(log, "ready", proc, START_TIMEOUT)
            time.sleep(0.5)
            mem = proc_memory(proc.pid)
            maps = proc_maps_markers(proc.pid)
            mem["tls"] = int(any(maps[m] for m in TLS_MAP_MARKERS))
            self.figures.bare[name] = mem
            self.procs.end(proc)

    def first_stamp_after(self, t: float, timeout: float = START_TIMEOUT) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stamps.read_text().splitlines() if self.stamps.exists() else []:
                stamp = float(line)
                if stamp > t:
                    return stamp
            time.sleep(0.005)
        raise BenchError("no connection reached the stamping server in time")

    def startup(self) -> None:
        self.say(f"start-up to first probe ({self.args.startups} runs each) ...")
        s = self.figures.startup
        port = str(self.stamp_port)
        commands: dict[str, list[str]] = {
            "ismon watch (clp_httpmon)": [],
            "bare Twisted, connect once (pyOpenSSL blocked)": [
                sys.executable,
                "-c",
                _BLOCK_TLS + _BARE_CONNECT,
                port,
            ],
            "bare Twisted, connect once": [sys.executable, "-c", _BARE_CONNECT, port],
        }
        if CHECK_HTTP.exists():
            commands["check_http (fork + exec)"] = [
                str(CHECK_HTTP),
                "-H",
                "127.0.0.1",
                "-p",
                port,
            ]
        for run in range(self.args.startups):
            for name, argv in commands.items():
                if not argv:
                    argv = self.watch_argv(f"fpstart{run}", self.stamp_port, "-i", "60")
                t0 = time.monotonic()
                proc = self.procs.spawn(argv, self.work / "startup.log")
                stamp = self.first_stamp_after(t0)
                s.setdefault(name, []).append(stamp - t0)
                if name.startswith("ismon"):
                    self.procs.end(proc)
                else:
                    proc.wait(10)
                self.procs.items.remove(proc)

    def check_http(self) -> None:
        if not CHECK_HTTP.exists():
            self.figures.notes.append(
                f"{CHECK_HTTP} missing: apt-get install monitoring-plugins-basic"
            )
            return
        runs = self.args.check_http_runs
        self.say(f"check_http x {runs} ...")
        rss: list[int] = []
        cpu: list[float] = []
        wall: list[float] = []
        bad = 0
        argv = [str(CHECK_HTTP), "-H", "127.0.0.1", "-p", str(self.nginx.port)]
        for _ in range(runs):
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall.append(time.monotonic() - t0)
            cpu.append(usage.ru_utime + usage.ru_stime)
            bad += proc.returncode != 0
        gnu_time = Path("/usr/bin/time")
        if gnu_time.exists():
            report_file = self.work / "time.out"
            for _ in range(max(5, runs // 10)):
                subprocess.run(
                    [str(gnu_time), "-f", "%M", "-o", str(report_file), *argv],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=20,
                )
                rss.append(int(report_file.read_text().split()[-1]) * 1024)
        else:
            self.figures.notes.append("no /usr/bin/time: check_http peak RSS not measured")
        self.figures.check_http = {
            "runs": runs,
            "failed": bad,
            "maxrss_p50": percentile(rss, 50) if rss else math.nan,
            "cpu_mean": sum(cpu) / runs,
            "wall_p50": percentile(wall, 50),
        }

    def fast_watch(self) -> None:
        first, second = self.args.first, self.args.second
        self.say(f"real watch, failing probes back to back: {first} / {second} probes ...")
        log = self.work / "fast.log"
        access = self.nginx_fast.access_log
        proc = self.procs.spawn(
            self.watch_argv(
                "fpfast",
                self.nginx_fast.port,
                "-h",
                "/missing",
                "-i",
                "1",
                "-c",
                "10000",
                "--retry-interval",
                "0",
                "-r",
                "5",
            ),
            log,
        )
        wait_for_text(log, _STARTED, proc, START_TIMEOUT)
        reset_at = min(500, first // 2)
        points = {"reset": reset_at, "first": first, "second": second}
        deadline = time.monotonic() + 60 + second * 0.05
        fast = self.figures.fast
        for name, target in points.items():
            while count_lines(access) < target:
                if proc.poll() is not None:
                    raise BenchError(f"the fast watch exited {proc.returncode}:\n{log_tail(log)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"the fast watch made {count_lines(access)} probes in time")
                time.sleep(0.005)
            if name == "reset":
                for verb in ("pause", "continue"):
                    subprocess.run(
                        [self.ismon, verb, "fpfast", "--state-dir", str(self.state)],
                        capture_output=True,
                        timeout=20,
                        check=True,
                    )
                continue
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                probes = count_lines(access)
                time.sleep(0.05)  # a request in flight finishes its log line
                probes = max(probes, count_lines(access))
                fast[name] = {
                    "probes": probes,
                    **proc_memory(proc.pid),
                    "cpu": proc_cpu(proc.pid),
                    "t": time.monotonic(),
                }
            finally:
                os.kill(proc.pid, signal.SIGCONT)
        # SIGTERM (0) unless it spent its 10000 retries first (1): both fine here.
        fast["exit"] = self.procs.end(proc)

    def harness(self) -> None:
        first, second = self.args.first, self.args.second
        self.say(f"in-process WatchService harness: {first} / {second} / +{second} probes ...")
        state = self.work / "hstate"
        state.mkdir(mode=0o700)
        out = self.work / "harness.out"
        proc = self.procs.spawn(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                "harness",
                "--port",
                str(self.nginx.port),
                "--first",
                str(first),
                "--second",
                str(second),
                "--state",
                str(state),
            ],
            out,
            self.work / "harness.err",
        )
        try:
            proc.wait(120 + second * 0.1)
        except subprocess.TimeoutExpired:
            raise BenchError("the harness child did not finish in time") from None
        lines = out.read_text().splitlines()
        if proc.returncode != 0 or not lines:
            raise BenchError(
                f"harness child exit {proc.returncode}:\n{(self.work / 'harness.err').read_text()}"
            )
        self.figures.harness = json.loads(lines[-1])

    def slow_sample(self, name: str) -> None:
        status = self.status("fpslow")
        self.figures.slow[name] = {
            "probes": status["probes"],
            "failures": status["failures"],
            **proc_memory(self.slow.pid),
            "cpu": proc_cpu(self.slow.pid),
            "t": time.monotonic(),
        }

    def control(self) -> None:
        runs = self.args.status_runs
        self.say(f"control round trips: ismon status x {runs}, AMP x {self.args.amp_runs} ...")
        walls: list[float] = []
        for _ in range(runs):
            t0 = time.monotonic()
            subprocess.run(
                [self.ismon, "status", "fpslow", "--state-dir", str(self.state)],
                capture_output=True,
                timeout=20,
                check=True,
            )
            walls.append(time.monotonic() - t0)
        self.figures.control["ismon status (subprocess)"] = walls
        walls = []
        for _ in range(max(3, runs // 4)):
            t0 = time.monotonic()
            subprocess.run(
                [sys.executable, "-c", _BLOCK_TLS + "from twisted.internet import reactor"],
                check=True,
                timeout=20,
            )
            walls.append(time.monotonic() - t0)
        self.figures.control["python + import reactor (for scale)"] = walls
        out = self.work / "amp.out"
        proc = self.procs.spawn(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                "amp",
                "--socket",
                str(self.state / "fpslow.sock"),
                "--count",
                str(self.args.amp_runs),
            ],
            out,
            self.work / "amp.err",
        )
        proc.wait(180)
        lines = out.read_text().splitlines()
        if proc.returncode != 0 or not lines:
            raise BenchError(
                f"AMP child exit {proc.returncode}: {(self.work / 'amp.err').read_text()}"
            )
        answer = json.loads(lines[-1])
        self.figures.control["AMP status round trip (in-process client)"] = answer["times"]

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        self.procs.end_all()


def log_tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Report


def report(f: Figures, args: argparse.Namespace) -> None:
    print()
    print("=== Footprint ===")
    bare = f.bare
    bare_like = bare["bare Twisted reactor, pyOpenSSL blocked"]["VmRSS"]
    bare_default = bare["bare Twisted reactor"]["VmRSS"]

    # Memory table.
    print()
    print(f"{'process':52} {'RSS MiB':>8} {'anon MiB':>9} {'TLS mapped':>11}")
    for name, mem in bare.items():
        print(
            f"{name:52} {mb(mem['VmRSS']):>8} {mb(mem['RssAnon']):>9} "
            f"{'yes' if mem['tls'] else 'no':>11}"
        )
    fast = f.fast
    for key in ("first", "second"):
        m = fast[key]
        print(
            f"{'ismon watch after ' + str(m['probes']) + ' probes (failing, back to back)':52} "
            f"{mb(m['VmRSS']):>8} {mb(m['RssAnon']):>9} {'':>11}"
        )
    slow_end = f.slow["end"]
    plain_tls = any(f.tls["plain maps"][m] for m in TLS_MAP_MARKERS)
    print(
        f"{'ismon watch -i 1 after ' + str(slow_end['probes']) + ' probes (healthy)':52} "
        f"{mb(slow_end['VmRSS']):>8} {mb(slow_end['RssAnon']):>9} "
        f"{'yes' if plain_tls else 'no':>11}"
    )
    print(
        f"{'ismon watch --tls --insecure (contrast)':52} {mb(f.tls['tls rss']):>8} {'':>9} {'yes' if any(f.tls['tls maps'][m] for m in TLS_MAP_MARKERS) else 'no':>11}"
    )
    h = f.harness
    for key in ("cp0", "cp1"):
        print(
            f"{'in-process harness at ' + str(h[key]['probes']) + ' probes':52} "
            f"{mb(h[key]['rss']):>8} {mb(h[key]['anon']):>9} {'':>11}"
        )
    if f.check_http:
        c = f.check_http
        print(
            f"{'check_http, peak per run (p50, ' + str(c['runs']) + ' runs)':52} {mb(c['maxrss_p50']):>8}"
        )

    # Growth.
    print()
    fr = fast["second"]["VmRSS"] - fast["first"]["VmRSS"]
    fn = fast["second"]["probes"] - fast["first"]["probes"]
    hr = h["cp1"]["rss"] - h["cp0"]["rss"]
    hn = h["cp1"]["probes"] - h["cp0"]["probes"]
    traced = h["cp3"]["traced"] - h["cp2"]["traced"]
    tn = h["cp3"]["probes"] - h["cp2"]["probes"]
    print("growth between the two checkpoints:")
    print(f"  real watch, failing probes:  RSS {fr / 1024:+.0f} KiB over {fn} probes")
    print(f"  in-process harness, healthy: RSS {hr / 1024:+.0f} KiB over {hn} probes")
    print(
        f"  in-process harness, tracemalloc: {traced / 1024:+.1f} KiB over {tn} probes "
        f"({traced / max(tn, 1):+.2f} B/probe)"
    )
    for line in h.get("top_growth", [])[:5]:
        print(f"      {line}")
    print(f"  harness probes failed: {h.get('failures')}")

    # CPU.
    print()
    print("CPU per probe:")
    fast_cpu = (fast["second"]["cpu"] - fast["first"]["cpu"]) / max(fn, 1)
    h_cpu = (h["cp1"]["cpu"] - h["cp0"]["cpu"]) / max(hn, 1)
    s0, s1 = f.slow["start"], f.slow["end"]
    slow_n = s1["probes"] - s0["probes"]
    slow_cpu = (s1["cpu"] - s0["cpu"]) / max(slow_n, 1)
    print(
        f"  ismon watch -i 1, healthy (all its CPU / probes, over {slow_n}): {slow_cpu * 1000:.2f} ms"
    )
    print(f"  ismon in-process harness, healthy, back to back:      {h_cpu * 1000:.2f} ms")
    print(f"  ismon watch, failing probes back to back (+2 log lines): {fast_cpu * 1000:.2f} ms")
    if f.check_http:
        print(
            f"  check_http forked (child CPU only):                   {f.check_http['cpu_mean'] * 1000:.2f} ms"
        )

    # Start-up.
    print()
    print(f"{'start-up: exec -> first connection at the server':52} {'p50 ms':>8} {'max ms':>8}")
    for name, values in f.startup.items():
        print(f"{name:52} {percentile(values, 50) * 1000:>8.0f} {max(values) * 1000:>8.0f}")

    # Control.
    print()
    print(f"{'control round trip':52} {'p50 ms':>8} {'p99 ms':>8} {'n':>5}")
    for name, values in f.control.items():
        print(
            f"{name:52} {percentile(values, 50) * 1000:>8.2f} "
            f"{percentile(values, 99) * 1000:>8.2f} {len(values):>5}"
        )

    # TLS.
    print()
    print("TLS stack in a plain-HTTP watch:")
    for marker in TLS_MAP_MARKERS:
        print(f"  /proc/PID/maps {marker!r}: {f.tls['plain maps'][marker] or 'not mapped'}")
    print(
        f"  /proc/PID/maps _ssl (stdlib, not counted): {'mapped' if f.tls['plain maps']['_ssl (stdlib, not counted)'] else 'not mapped'}"
    )
    print(
        f"  python -m ismon http, sys.modules at exit after a few probes "
        f"({f.tls['plain modules']} modules): OpenSSL / cryptography / service_identity: "
        f"{f.tls['plain imports'] or 'none'}; Twisted's own TLS wrappers: "
        f"{f.tls['plain twisted tls'] or 'none'} (they import without pyOpenSSL)"
    )
    tls_maps = f.tls["tls maps"]
    print(f"  contrast, --tls watch maps cryptography: {bool(tls_maps['/cryptography/'])}")
    for note in f.notes:
        print(f"note: {note}")

    # Targets.
    print()
    growth_ok = (
        fr <= TARGET_GROWTH_RSS and hr <= TARGET_GROWTH_RSS and traced <= TARGET_GROWTH_TRACED
    )
    print(
        f"target: no growth (RSS <= {TARGET_GROWTH_RSS // 1024} KiB real and in-process, "
        f"traced <= {TARGET_GROWTH_TRACED // 1024} KiB): real {fr / 1024:+.0f} KiB, "
        f"in-process {hr / 1024:+.0f} KiB, traced {traced / 1024:+.1f} KiB -> "
        f"{'PASS' if growth_ok else 'FAIL'}"
    )
    worst = max(fast["first"]["VmRSS"], fast["second"]["VmRSS"], slow_end["VmRSS"])
    over = worst - bare_like
    print(
        f"target: RSS <= bare Twisted + 5 MB: largest watch {mb(worst)} MiB vs bare "
        f"(pyOpenSSL blocked, like the watch) {mb(bare_like)} MiB: {over / 1e6:+.1f} MB -> "
        f"{'PASS' if over <= TARGET_OVER_BARE else 'FAIL'}"
        f"   (vs default bare {mb(bare_default)} MiB: {(worst - bare_default) / 1e6:+.1f} MB)"
    )
    tls_ok = not plain_tls and not f.tls["plain imports"]
    print(f"target: plain-HTTP watch does not load the TLS stack: {'PASS' if tls_ok else 'FAIL'}")


# --------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (~1 min)")
    parser.add_argument("--first", type=int, default=1000, help="first checkpoint (1000)")
    parser.add_argument("--second", type=int, default=10000, help="second checkpoint (10000)")
    parser.add_argument("--startups", type=int, default=10, help="start-up runs each (10)")
    parser.add_argument("--check-http-runs", type=int, default=100, help="(100)")
    parser.add_argument("--status-runs", type=int, default=20, help="ismon status runs (20)")
    parser.add_argument("--amp-runs", type=int, default=100, help="AMP round trips (100)")
    parser.add_argument(
        "--healthy-probes",
        type=int,
        default=120,
        help="let the -i 1 watch make at least this many probes (120)",
    )
    parser.add_argument("--child", choices=("harness", "amp"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.first, args.second = 200, 1000
        args.startups, args.check_http_runs = 3, 20
        args.status_runs, args.amp_runs = 5, 100
        args.healthy_probes = 10
    if not 10 <= args.first < args.second or args.second > 9000 + args.first:
        parser.error("need 10 <= --first < --second <= --first + 9000 (the -c 10000 limit)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.child == "harness":
        return child_harness(args.port, args.first, args.second, args.state)
    if args.child == "amp":
        return child_amp(args.socket, args.count)
    catch_signals()
    work = Path(tempfile.mkdtemp(prefix="ismon-footprint-"))
    bench: Bench | None = None
    started = time.monotonic()
    try:
        bench = Bench(work, args)
        bench.start_servers()
        bench.start_slow_watch()
        bench.tls_check()
        bench.slow_sample("start")
        bench.bare()
        bench.startup()
        bench.check_http()
        bench.fast_watch()
        bench.harness()
        deadline = time.monotonic() + args.healthy_probes + 30
        while (
            bench.status("fpslow")["probes"]
            < args.healthy_probes + bench.figures.slow["start"]["probes"]
        ):
            if time.monotonic() > deadline:
                raise BenchError("the 1 Hz watch fell behind")
            time.sleep(2)
        bench.slow_sample("end")
        bench.control()
        bench.slow_sample("after control")
        report(bench.figures, args)
        print(f"(run time {time.monotonic() - started:.0f} s)")
        return 0
    except BenchError as e:
        print(f"footprint: broken: {e}", file=sys.stderr)
        return 1
    except Interrupted:
        print("footprint: interrupted", file=sys.stderr)
        return 130
    finally:
        ignore_signals()
        if bench is not None:
            bench.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
