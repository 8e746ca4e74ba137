# -*- test-case-name: tests.test_prometheus -*-
"""
The exporter under the real Prometheus from Debian (C{/usr/bin/prometheus}),
and the shipped configuration and alert rules (docs/prometheus/) under
C{promtool}.

The Prometheus test: two watches, C{clp_httpmon} on a real nginx and
C{clp_smtpmon} on aiosmtpd, served by C{ismon exporter}; Prometheus scrapes
it every second and evaluates the shipped alert rules every second.
Through its HTTP API the test sees both probes succeed, stalls nginx with
SIGSTOP, sees the HTTP watch's failures climb, and once the watch has
exited, C{ismon_up} 0, C{ismon_last_exit_code} 1 and the watch-ended alert
firing.  Without Prometheus the tests skip, except as root in CI
(C{CI=true}), where C{scripts/test.sh} installed it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FreshServers
from tests.procs import wait_for_port, wait_until
from tests.servers import Aiosmtpd, free_port
from tests.watchproc import LOOPBACK, PATIENCE, Processes, command, watch_argv

DOCS = Path(__file__).resolve().parent.parent / "docs" / "prometheus"
RULES = DOCS / "ismon-alerts.yml"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(f"{reason}; scripts/test.sh installs it in CI")
        pytest.skip(reason)
    return found


def _promtool(*args: str) -> None:
    done = subprocess.run(
        [_tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shipped_scrape_config_is_valid() -> None:
    # It names the rules file, so this checks that one too.
    _promtool("check", "config", str(DOCS / "prometheus.yml"))


def test_the_shipped_alert_rules_are_valid() -> None:
    _promtool("check", "rules", str(RULES))


def test_the_alert_rules_fire_when_they_should() -> None:
    _promtool("test", "rules", str(DOCS / "ismon-alerts.test.yml"))


class Prometheus:
    """Prometheus's HTTP API on C{port}."""

    def __init__(self, port: int) -> None:
        self.base = f"http://{LOOPBACK}:{port}"

    def ready(self) -> bool:
        """Whether it serves queries yet (its port opens before that)."""
        try:
            with urllib.request.urlopen(self.base + "/-/ready", timeout=PATIENCE) as answer:
                return bool(answer.status == 200)
        except OSError:  # urllib's HTTPError (503 while starting) is one
            return False

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=PATIENCE) as answer:
            document = json.load(answer)
        assert document["status"] == "success", document
        return document["data"]

    def query(self, promql: str) -> dict[str, float]:
        """An instant query: the value of each series, by its C{watch} label."""
        data = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        return {r["metric"].get("watch", ""): float(r["value"][1]) for r in data["result"]}

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets, with their health and last error."""
        found: list[dict[str, Any]] = self._get("/api/v1/targets")["activeTargets"]
        return found

    def firing(self, alertname: str) -> list[dict[str, str]]:
        """The labels of the alerts named C{alertname} that fire."""
        alerts = self._get("/api/v1/alerts")["alerts"]
        return [
            a["labels"]
            for a in alerts
            if a["labels"].get("alertname") == alertname and a["state"] == "firing"
        ]


def _config(folder: Path, exporter_port: int) -> Path:
    config = folder / "prometheus.yml"
    # JSON is YAML: no YAML library needed to write it.
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "ismon",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [f"{LOOPBACK}:{exporter_port}"]}],
                    }
                ],
            }
        )
    )
    return config


@pytest.mark.slow
def test_prometheus_sees_a_watch_fail_and_end(
    processes: Processes, fresh_servers: FreshServers, aiosmtpd: Aiosmtpd, tmp_path: Path
) -> None:
    prometheus_binary = _tool("prometheus")
    nginx = fresh_servers.nginx(tls=False)
    state = tmp_path / "state"
    # Five retries a second apart: several scrapes see the failures climb.
    web = processes.start(
        watch_argv(
            "clp_httpmon",
            "web",
            LOOPBACK,
            nginx.port,
            state,
            timing=["-i", "1", "-c", "5", "-r", "1"],
        ),
        name="web",
    )
    processes.start(watch_argv("clp_smtpmon", "mail", LOOPBACK, aiosmtpd.port, state), name="mail")
    exporter_port = free_port()
    exporter = processes.start(
        [
            *command("ismon"),
            "exporter",
            "--listen",
            f"{LOOPBACK}:{exporter_port}",
            "--state-dir",
            str(state),
            "--watch-timeout",
            "0.5",
        ],
        name="exporter",
    )
    wait_for_port(exporter_port, process=exporter.process)
    port = free_port()
    server = processes.start(
        [
            prometheus_binary,
            f"--config.file={_config(tmp_path, exporter_port)}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=warn",
        ],
        name="prometheus",
    )
    wait_for_port(port, process=server.process)
    prometheus = Prometheus(port)
    wait_until(prometheus.ready, PATIENCE, "Prometheus to be ready")

    both = wait_until(
        lambda: (
            (found := prometheus.query("ismon_probe_success == 1")).keys() >= {"web", "mail"}
            and found
        ),
        PATIENCE,
        "ismon_probe_success == 1 for web and mail",
    )
    assert both == {"web": 1.0, "mail": 1.0}
    # Prometheus asks for OpenMetrics first (its scrape Accept header), so
    # this also proves the OpenMetrics text is ingested: the stateset's
    # series, and a scrape without error.
    assert prometheus.query('ismon_watch_state{ismon_watch_state="watching"} == 1') == both
    targets = prometheus.targets()
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")], targets

    nginx.stall()
    wait_until(
        lambda: prometheus.query('max_over_time(ismon_consecutive_failures{watch="web"}[1m]) >= 2'),
        PATIENCE,
        "web's consecutive failures to reach 2",
    )
    # Over a range: once the watch has exited its series are marked stale.
    assert prometheus.query('max_over_time(ismon_probe_failures_total{watch="web"}[1m]) >= 2')
    assert web.wait() == 1

    wait_until(
        lambda: (
            prometheus.query('ismon_up{watch="web"} == 0')
            and prometheus.query('ismon_last_exit_code{watch="web"} == 1')
        ),
        PATIENCE,
        "ismon_up 0 and ismon_last_exit_code 1 for web",
    )
    fired = wait_until(
        lambda: prometheus.firing("IsmonWatchEnded"), PATIENCE, "IsmonWatchEnded to fire"
    )
    assert [labels["watch"] for labels in fired] == ["web"]
    # The other watch goes on.
    assert prometheus.query("ismon_up == 1") == {"mail": 1.0}
