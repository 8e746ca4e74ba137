"""
The public names of each ismon module are pinned here, so that a change to
the public surface is a deliberate one.
"""

from __future__ import annotations

import importlib

from twisted.trial.unittest import SynchronousTestCase

from tests.test_layers import LAYERS

PUBLIC = {
    "ismon": ["__version__"],
    "ismon.catalogue": ["MAX_LINE_BYTES", "MessageId", "fold", "render", "takes_detail"],
    "ismon.result": [
        "Phase",
        "ProbeResult",
        "StatusSet",
        "judge_http_body",
        "judge_http_headers",
        "judge_http_status",
        "judge_smtp_reply",
        "timed_out",
    ],
    "ismon.probe": [
        "REPLY_LIMIT",
        "Address",
        "ConversationProbe",
        "IProbe",
        "ITLSClient",
        "ProbeProtocol",
        "Resolver",
        "lost_failure",
        "run_probe",
        "system_resolver",
    ],
    "ismon.requests": [
        "DEFAULT_MAX_BODY",
        "BasicCredentials",
        "ConversationRequest",
        "Expectation",
        "HeaderExpectation",
        "HttpRequest",
        "ProbeRequest",
        "SmtpRequest",
        "TLSSettings",
    ],
    "ismon.timing": ["Timing"],
    "ismon.ca_file": ["read_ca_file"],
    "ismon.config": ["WatchConfig"],
    "ismon.http": ["HttpProbe", "build_request"],
    "ismon.smtp": ["SmtpProbe"],
    "ismon.pop3": ["Pop3Probe"],
    "ismon.imap": ["ImapProbe"],
    "ismon.ftp": ["FtpProbe"],
    "ismon.tls": [
        "certificate_days_left",
        "certificate_not_after",
        "client_tls",
        "connection_creator",
        "describe_tls_failure",
        "load_trust_root",
    ],
    "ismon.schedule": ["Schedule", "WatchState"],
    "ismon.options": [
        "Action",
        "ConversationOptions",
        "FtpOptions",
        "HttpOptions",
        "ImapOptions",
        "ParameterError",
        "Pop3Options",
        "SmtpOptions",
        "WatchOptions",
        "control_request",
        "plain_usage_error",
        "quote",
    ],
    "ismon.protocols": ["PROTOCOLS", "WatchProtocol", "by_command", "register"],
    "ismon.status": ["WatchStatus", "result_fields"],
    "ismon.metrics": [
        "CLASSIC_CONTENT_TYPE",
        "FAMILIES",
        "Family",
        "OPENMETRICS_CONTENT_TYPE",
        "WatchSnapshot",
        "render",
    ],
    "ismon.records": ["WatchRecords"],
    "ismon.log_routing": ["LogRouting"],
    "ismon.health": [
        "EXIT_DEADLINE",
        "IMonitorHealth",
        "LoopHealth",
        "LoopWatchdog",
        "SystemdHealth",
        "loop_watchdog_limit",
        "release_freed_memory",
    ],
    "ismon.service": ["WatchService", "make_probe"],
    "ismon.process": ["exit_now", "make_twistd_service", "use_monotonic_clock"],
    "ismon.cli": ["clp", "main", "run_command"],
    "ismon.report": [
        "CatalogueFilter",
        "JsonLinesObserver",
        "Reporter",
        "SyslogObserver",
        "event_line",
        "shows",
    ],
    "ismon.manual": [
        "MANUALS",
        "Manual",
        "OptionRow",
        "full_help",
        "help_text",
        "option_rows",
        "render_roff",
        "synopsis_text",
        "write_pages",
    ],
    "ismon.entry": [
        "clp",
        "clp_ftpmon",
        "clp_httpmon",
        "clp_imapmon",
        "clp_pop3mon",
        "clp_smtpmon",
        "main",
    ],
    "ismon.exit_status": ["ExitStatus"],
    "ismon.ampbox": [
        "ANSWER",
        "ASK",
        "BoxReader",
        "COMMAND",
        "ERROR",
        "ERROR_CODE",
        "ERROR_DESCRIPTION",
        "MAX_KEY_LENGTH",
        "MAX_VALUE_LENGTH",
        "MalformedBox",
        "encode_box",
    ],
    "ismon.control_client": [
        "ControlError",
        "ControlRefused",
        "ControlUnavailable",
        "call",
        "pause",
        "resume",
        "status",
        "stop",
    ],
    "ismon.testing": [
        "STALL",
        "Answer",
        "FakeProbe",
        "FakeWatch",
        "FakeWatchControl",
        "Stall",
        "Step",
        "answered",
        "refused",
    ],
    "ismon.control_commands": [
        "ControlRequest",
        "MAX_PAUSE_SECONDS",
        "MAX_REASON_BYTES",
        "METRICS_WATCH_TIMEOUT",
        "duration_problem",
        "ended_snapshot",
        "format_status",
        "metric_snapshots",
        "metrics",
        "metrics_and_exit",
        "parse_duration",
        "pause_detail",
        "reason_problem",
        "recognise",
        "run",
        "run_and_exit",
        "system_error",
    ],
}

# Modules that must not import the reactor or any Twisted networking: the
# pure rooms of the design, the lowest layer of tests/test_layers.py.
PURE = [name for name in LAYERS[0][1] if name != "ismon"]


class ExportsTests(SynchronousTestCase):
    def test_public_names(self) -> None:
        for name, expected in PUBLIC.items():
            module = importlib.import_module(name)
            self.assertEqual(sorted(module.__all__), sorted(expected), name)
            for attribute in expected:
                self.assertTrue(hasattr(module, attribute), f"{name}.{attribute}")

    def test_pure_rooms_do_not_import_twisted(self) -> None:
        import subprocess
        import sys

        for name in PURE:
            code = (
                f"import sys, {name}; "
                "bad = [m for m in sys.modules if m.startswith('twisted.internet')]; "
                "sys.exit(1 if bad else 0)"
            )
            done = subprocess.run([sys.executable, "-c", code], check=False)
            self.assertEqual(done.returncode, 0, f"{name} imports twisted.internet")
