"""
The public names of each ismon module are pinned here, so that a change to
the public surface is a deliberate one.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.test_layers import LAYERS, ROOT, layer_of, sources

PUBLIC = {
    "ismon": ["__version__"],
    "ismon.cmdline.auth_file": [
        "AuthFileError",
        "MAX_AUTH_FILE_BYTES",
        "parse_auth_file",
        "read_auth_file",
    ],
    "ismon.cmdline.cli": ["clp", "main", "run_command"],
    "ismon.cmdline.exporter": [
        "ExporterOptions",
        "main",
        "parse_listen",
        "parse_watch_timeout",
        "run",
    ],
    "ismon.cmdline.manpages": ["full_help_of", "main", "page", "write_pages"],
    "ismon.cmdline.manual": [
        "full_help",
        "help_text",
        "option_rows",
        "render_roff",
        "synopsis_text",
    ],
    "ismon.cmdline.options": [
        "Action",
        "ConversationOptions",
        "DnsOptions",
        "FtpOptions",
        "HttpOptions",
        "ImapOptions",
        "OPTIONS",
        "ParameterError",
        "Pop3Options",
        "SmtpOptions",
        "TcpOptions",
        "WatchOptions",
        "control_request",
        "plain_usage_error",
    ],
    "ismon.cmdline.pages": [
        "ENVIRONMENT",
        "EXIT_STATUS",
        "FILES",
        "MANUALS",
        "Manual",
        "OptionRow",
    ],
    "ismon.cmdline.process": ["exit_now", "use_monotonic_clock"],
    "ismon.cmdline.room": [
        "MEMORY_TO_RUN",
        "MEMORY_TO_START",
        "PROBE_DESCRIPTORS",
        "Shortfall",
        "WATCH_DESCRIPTORS",
        "descriptor_shortfall",
        "memory_shortfall",
        "refusal",
    ],
    "ismon.cmdline.startup": [
        "CONTROL_MODULES",
        "TLS_MODULES",
        "defer_cookiejar",
        "leave_out_tls_stack",
        "run_if_fast",
    ],
    "ismon.cmdline.twistd": [
        "ExporterMaker",
        "WatchMaker",
        "make_twistd_service",
        "twistd_log_observer",
    ],
    "ismon.control.amp": [
        "Continue",
        "ControlError",
        "ControlFactory",
        "ControlProtocol",
        "ControlRefused",
        "ControlUnavailable",
        "IWatchControl",
        "Pause",
        "Status",
        "Stop",
        "call",
        "control_factory",
        "listen_control",
        "pause",
        "peer_allowed",
        "peer_credentials",
        "resume",
        "status",
        "stop",
    ],
    "ismon.control.client": [
        "ControlError",
        "ControlRefused",
        "ControlUnavailable",
        "call",
        "pause",
        "resume",
        "status",
        "stop",
    ],
    "ismon.control.commands": [
        "exit_with",
        "format_status",
        "open_folder",
        "run",
        "run_and_exit",
        "system_error",
    ],
    "ismon.control.recognise": ["recognise"],
    "ismon.control.request": [
        "ControlRequest",
        "MAX_PAUSE_SECONDS",
        "MAX_REASON_BYTES",
        "VERBS",
        "duration_problem",
        "parse_duration",
        "pause_detail",
        "reason_problem",
    ],
    "ismon.control.stop": ["stop"],
    "ismon.core.catalogue": ["MAX_LINE_BYTES", "MessageId", "fold", "render", "takes_detail"],
    "ismon.core.config": ["WatchConfig"],
    "ismon.core.exit_status": ["ExitStatus", "exit_meaning"],
    "ismon.core.protocols": ["PROTOCOLS", "WatchProtocol", "by_command", "label_of"],
    "ismon.core.requests": [
        "BasicCredentials",
        "ConversationRequest",
        "DEFAULT_MAX_BODY",
        "DnsRequest",
        "Expectation",
        "HeaderExpectation",
        "HttpRequest",
        "ProbeRequest",
        "SmtpRequest",
        "StatusSet",
        "TLSSettings",
        "TcpRequest",
    ],
    "ismon.core.resources": [
        "MONITOR_ERRNOS",
        "THREAD_STACK_BYTES",
        "ThreadUnavailable",
        "start_thread",
    ],
    "ismon.core.result": ["Phase", "ProbeResult", "monitor_failure", "timed_out"],
    "ismon.core.status": ["WatchStatus", "result_fields"],
    "ismon.core.text": ["local_time", "printable", "quote", "shown", "shown_number"],
    "ismon.core.timing": ["Timing"],
    "ismon.demo": ["main", "serve"],
    "ismon.entry": [
        "clp",
        "clp_dnsmon",
        "clp_ftpmon",
        "clp_httpmon",
        "clp_imapmon",
        "clp_pop3mon",
        "clp_smtpmon",
        "clp_tcpmon",
        "main",
    ],
    "ismon.metrics.collector": ["Collector", "MAX_PARALLEL_ASKS"],
    "ismon.metrics.command": ["TEXTFILE_NAME", "metrics", "metrics_and_exit", "wants_help"],
    "ismon.metrics.exporter": [
        "DEFAULT_LISTEN",
        "DEFAULT_PORT",
        "DEFAULT_WATCH_TIMEOUT",
        "Exporter",
        "ExporterConfig",
        "Listen",
        "MAX_WATCH_TIMEOUT",
        "MIN_WATCH_TIMEOUT",
        "listen_failure",
        "wants_openmetrics",
    ],
    "ismon.metrics.render": [
        "CLASSIC_CONTENT_TYPE",
        "FAMILIES",
        "Family",
        "OPENMETRICS_CONTENT_TYPE",
        "WatchSnapshot",
        "render",
    ],
    "ismon.metrics.site": [
        "GuardedSite",
        "IDLE_TIMEOUT",
        "MAX_CONNECTIONS",
        "MAX_HEAD_BYTES",
        "REQUEST_DEADLINE",
        "plain",
    ],
    "ismon.metrics.snapshots": ["METRICS_WATCH_TIMEOUT", "ended_snapshot", "metric_snapshots"],
    "ismon.probes.ca_file": ["read_ca_file"],
    "ismon.probes.conversation": [
        "ConversationProbe",
        "LineConversation",
        "LineProbe",
        "StartTLSRequest",
    ],
    "ismon.probes.dns": ["DnsProbe"],
    "ismon.probes.ftp": ["FtpProbe"],
    "ismon.probes.http": ["HttpProbe", "build_request"],
    "ismon.probes.imap": ["ImapProbe"],
    "ismon.probes.pop3": ["Pop3Probe"],
    "ismon.probes.probe": [
        "DatagramProbeProtocol",
        "IProbe",
        "ITLSClient",
        "MAX_DATAGRAM_BYTES",
        "ProbeProtocol",
        "REPLY_LIMIT",
        "ReactorType",
        "lost_failure",
        "run_datagram_probe",
        "run_probe",
    ],
    "ismon.probes.resolve": [
        "Address",
        "MAX_PENDING_LOOKUPS",
        "ResolveError",
        "Resolver",
        "ResolverUnavailable",
        "system_resolver",
    ],
    "ismon.probes.smtp": ["SmtpProbe"],
    "ismon.probes.table": ["PROBES", "ProbeFactory", "make_probe"],
    "ismon.probes.tcp": ["SEARCH_GAP", "TcpProbe"],
    "ismon.probes.tls": [
        "certificate_days_left",
        "certificate_not_after",
        "client_tls",
        "connection_creator",
        "describe_tls_failure",
        "load_trust_root",
    ],
    "ismon.state.files": [
        "read_pid",
        "remove_stale_temporaries",
        "replace_file",
        "temporary_name",
        "unlink",
    ],
    "ismon.state.folder": [
        "InvalidWatchId",
        "MAX_WATCH_ID",
        "StateDir",
        "StateDirError",
        "default_state_dir",
        "file_stem",
        "is_watch_id",
        "validate_watch_id",
    ],
    "ismon.state.listing": ["list_watch_ids"],
    "ismon.state.lock": [
        "AlreadyRunning",
        "WatchLock",
        "lock_holder_pid",
        "remove_leftovers",
        "running_or_ended",
        "running_pid",
        "timed_wait",
    ],
    "ismon.state.record": [
        "MAX_RECORD_SIZE",
        "PreparedRecord",
        "RecordPending",
        "RecordUnreadable",
        "ended_fields",
        "ended_without_record",
        "prepare_record",
        "read_last_exit",
        "read_record",
        "write_last_exit",
    ],
    "ismon.testing": [
        "Answer",
        "FakeProbe",
        "FakeWatch",
        "FakeWatchControl",
        "STALL",
        "Stall",
        "Step",
        "answered",
        "refused",
    ],
    "ismon.watch.health": [
        "ALARM_SLACK",
        "EXIT_DEADLINE",
        "IMonitorHealth",
        "LoopHealth",
        "LoopWatchdog",
        "SystemdHealth",
        "loop_watchdog_limit",
        "release_freed_memory",
    ],
    "ismon.watch.log_routing": ["LogRouting"],
    "ismon.watch.notify": ["MAX_STATUS_BYTES", "SystemdNotifier"],
    "ismon.watch.records": ["WatchRecords"],
    "ismon.watch.report": [
        "CatalogueFilter",
        "JsonLinesObserver",
        "Reporter",
        "SyslogObserver",
        "event_line",
        "shows",
    ],
    "ismon.watch.schedule": ["Schedule", "WatchState"],
    "ismon.watch.service": ["ProbeMaker", "WatchService"],
    "ismon.wire.ampbox": [
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
    "ismon.wire.dns": [
        "DnsInputError",
        "DnsQuery",
        "DnsStreamReader",
        "DnsVerdict",
        "Expected",
        "MAX_DECODE_STEPS",
        "MAX_MESSAGE_BYTES",
        "MalformedMessage",
        "Outcome",
        "RCODE_NAMES",
        "RecordType",
        "build_query",
        "decode_message",
        "judge",
        "parse_expected",
        "query_name",
        "reverse_name",
    ],
    "ismon.wire.tcp": [
        "ExpectMatcher",
        "ExpectOutcome",
        "ExpectPattern",
        "ExpectVerdict",
        "MAX_EXPECT_BYTES",
        "MAX_PATTERN_CHARS",
        "MAX_SEND_BYTES",
        "TcpInputError",
        "compile_expect",
        "show_bytes",
        "unescape_send",
    ],
    "ismon.wire.errors": ["InvalidReply", "line_over", "unfinished_over"],
    "ismon.wire.ftp": [
        "FtpReply",
        "FtpReplyParser",
        "InvalidReply",
        "MAX_FTP_LINE_BYTES",
        "MAX_FTP_REPLY_BYTES",
    ],
    "ismon.wire.http": [
        "BodyFraming",
        "HttpBodyReader",
        "HttpHeadParser",
        "InvalidResponse",
        "MAX_HEADER_BYTES",
        "MAX_LINE_BYTES",
        "StatusLine",
        "body_framing",
        "judge_http_body",
        "judge_http_headers",
        "judge_http_status",
        "parse_status_line",
    ],
    "ismon.wire.imap": [
        "CONDITIONS",
        "ImapResponse",
        "ImapResponseParser",
        "InvalidImapResponse",
        "Kind",
        "MAX_IMAP_LINE_BYTES",
        "MAX_IMAP_RESPONSES",
        "MAX_IMAP_RESPONSE_BYTES",
        "capabilities",
        "quoted",
    ],
    "ismon.wire.pop3": [
        "InvalidReply",
        "MAX_POP3_LINE_BYTES",
        "MAX_POP3_REPLY_BYTES",
        "Pop3Reply",
        "Pop3ReplyParser",
        "capabilities",
    ],
    "ismon.wire.smtp": [
        "InvalidReply",
        "MAX_SMTP_LINE_BYTES",
        "MAX_SMTP_REPLY_BYTES",
        "SmtpReply",
        "SmtpReplyParser",
        "judge_smtp_reply",
    ],
}

#: The layers below the probes never load a reactor or a transport: parsing
#: and the state folder need none (ismon.wire.dns uses Twisted Names'
#: message codec, which imports Deferreds and protocols, nothing more).
PURE = sorted(name for name in sources() if name.startswith("ismon.") and 0 <= layer_of(name) <= 2)


class ExportsTests(SynchronousTestCase):
    def test_public_names(self) -> None:
        for name, expected in PUBLIC.items():
            module = importlib.import_module(name)
            self.assertEqual(sorted(module.__all__), sorted(expected), name)
            for attribute in expected:
                self.assertTrue(hasattr(module, attribute), f"{name}.{attribute}")

    def test_every_module_is_pinned(self) -> None:
        modules = {
            name
            for name in sources()
            if name.startswith("ismon")
            and name not in ("ismon.__main__",)
            and not (name.count(".") == 1 and (ROOT / name.replace(".", "/")).is_dir())
        }
        self.assertEqual(sorted(modules - set(PUBLIC)), [])

    def test_pure_layers_load_no_reactor(self) -> None:
        self.assertEqual([LAYERS[layer_of(name)][0] for name in PURE][:1], ["core"])
        code = (
            f"import re, sys, {', '.join(PURE)}; "
            "bad = sorted(m for m in sys.modules if re.fullmatch("
            "r'twisted\\.internet\\.(\\w*reactor|base|tcp|udp|unix|endpoints|_newtls)', m)); "
            "print(bad); sys.exit(1 if bad else 0)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
