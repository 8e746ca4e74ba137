"""
Tests for L{ismon.cmdline.options}: the 2004 command line, every range edge, and
the refusals (message 11 / 13).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ismon.cmdline.options import HttpOptions, ParameterError, SmtpOptions
from ismon.control.request import ControlRequest
from ismon.core.catalogue import MessageId
from ismon.core.config import WatchConfig
from ismon.core.requests import HttpRequest, SmtpRequest
from ismon.core.text import quote


def parse_http(*args: str) -> WatchConfig:
    options = HttpOptions()
    options.parseOptions(list(args))
    assert options.config is not None
    return options.config


def parse_control(*args: str) -> ControlRequest:
    options = HttpOptions()
    options.parseOptions(list(args))
    assert options.config is None and options.control is not None
    return options.control


def parse_smtp(*args: str) -> WatchConfig:
    options = SmtpOptions()
    options.parseOptions(list(args))
    assert options.config is not None
    return options.config


class HttpCommandLineTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = parse_http("web1")
        self.assertEqual(config.watch_id, "web1")
        self.assertEqual(config.request, HttpRequest(host="localhost", port=80, timeout=10))
        self.assertEqual(
            (config.timing.interval, config.timing.retries, config.timing.timeout), (60, 3, 10)
        )
        self.assertEqual(config.timing.retry_gap, 60)

    def test_2004_syntax_id_first(self) -> None:
        config = parse_http(
            "web1",
            "-s",
            "www.example",
            "-n",
            "8080",
            "-i",
            "5",
            "-c",
            "2",
            "-r",
            "3",
            "-v",
            "1.0",
            "-h",
            "/index.html",
        )
        request = config.request
        assert isinstance(request, HttpRequest)
        self.assertEqual(
            (request.host, request.port, request.version, request.uri, request.timeout),
            ("www.example", 8080, "1.0", "/index.html", 3),
        )
        self.assertEqual((config.timing.interval, config.timing.retries), (5, 2))

    def test_id_after_options(self) -> None:
        self.assertEqual(parse_http("-i", "5", "web2").watch_id, "web2")

    def test_range_edges(self) -> None:
        for flag, low, high in (
            ("-n", 1, 65535),
            ("-i", 1, 10000),
            ("-c", 1, 10000),
            ("-r", 1, 10000),
        ):
            parse_http("w", flag, str(low))
            parse_http("w", flag, str(high))
            for bad in (str(low - 1), str(high + 1), "x", "1.5", "", " "):
                with self.assertRaises(ParameterError, msg=f"{flag} {bad!r}") as caught:
                    parse_http("w", flag, bad)
                self.assertEqual(caught.exception.message, MessageId.INVALID_PARAMETER)

    def test_new_option_ranges(self) -> None:
        self.assertEqual(parse_http("w", "--retry-interval", "0").timing.retry_gap, 0)
        parse_http("w", "--retry-interval", "10000")
        parse_http("w", "--grace", "0")
        for flag, bad in (
            ("--retry-interval", "-1"),
            ("--retry-interval", "10001"),
            ("--grace", "10001"),
        ):
            with self.assertRaises(ParameterError):
                parse_http("w", flag, bad)

    def test_version(self) -> None:
        for bad in ("1.2", "2", "HTTP/1.1", ""):
            with self.assertRaises(ParameterError):
                parse_http("w", "-v", bad)

    def test_uri(self) -> None:
        parse_http("w", "-h", "/" + "a" * 254)
        for bad in ("/" + "a" * 255, "", "/a b", "/a\r\nX: y", "/a\n", "/\x00", "/\u00e9"):
            with self.assertRaises(ParameterError, msg=repr(bad)):
                parse_http("w", "-h", bad)

    def test_server(self) -> None:
        parse_http("w", "-s", "a" * 255)
        parse_http("w", "-s", "::1")
        for bad in ("a" * 256, "", "a b", "a\tb"):
            with self.assertRaises(ParameterError):
                parse_http("w", "-s", bad)

    def test_watch_id(self) -> None:
        parse_http("a" * 255)
        for bad in ("a" * 256, "a/b", "..", "a.b", "a-b", "\u00e9t\u00e9"):
            with self.assertRaises(ParameterError, msg=repr(bad)) as caught:
                parse_http(bad)
            self.assertEqual(caught.exception.message, MessageId.INVALID_PARAMETER)

    def test_missing_id_is_message_13(self) -> None:
        with self.assertRaises(ParameterError) as caught:
            parse_http("-i", "5")
        self.assertEqual(caught.exception.message, MessageId.NO_ID)

    def test_extra_argument(self) -> None:
        with self.assertRaises(ParameterError):
            parse_http("w", "x")

    def test_stop_uses_r_as_wait(self) -> None:
        self.assertEqual(
            parse_control("w", "--stop", "-r", "30"),
            ControlRequest("clp_httpmon", "w", "stop", stop_wait=30),
        )

    def test_one_action_only(self) -> None:
        with self.assertRaises(ParameterError):
            parse_http("w", "--stop", "--pause")

    def test_actions(self) -> None:
        for flag, action in (
            ("--pause", "pause"),
            ("--continue", "continue"),
            ("--disp", "disp"),
            ("--del", "del"),
        ):
            self.assertEqual(parse_control("w", flag).action, action)

    def test_expect_status(self) -> None:
        request = parse_http("w", "--expect-status", "200-299,401").request
        assert isinstance(request, HttpRequest) and request.expect_status is not None
        self.assertIn(401, request.expect_status)
        with self.assertRaises(ParameterError):
            parse_http("w", "--expect-status", "2xx")

    def test_tls_defaults_port_443(self) -> None:
        request = parse_http("w", "--tls").request
        assert isinstance(request, HttpRequest) and request.tls is not None
        self.assertEqual((request.port, request.tls.servername), (443, "localhost"))

    def test_tls_options_need_tls(self) -> None:
        for args in (("--insecure",), ("--servername", "x"), ("--ca-file", "/etc/hostname")):
            with self.assertRaises(ParameterError):
                parse_http("w", *args)

    def test_unreadable_ca_file(self) -> None:
        with self.assertRaises(ParameterError):
            parse_http("w", "--tls", "--ca-file", "/nonexistent/ca.pem")
        with self.assertRaises(ParameterError):
            parse_http("w", "--tls", "--ca-file", "/etc/hostname")

    def test_a_protocol_without_a_standard_port_needs_n(self) -> None:
        """A table entry with port 0 (plain TCP has none) makes -n compulsory, --tls too."""

        class NoStandardPort(HttpOptions):
            default_port = 0
            tls_port = 0

        for args in ((), ("--tls",)):
            options = NoStandardPort()
            with self.assertRaises(ParameterError) as refused:
                options.parseOptions(["w", *args])
            self.assertEqual(
                refused.exception.detail, "-n (port) must be given: HTTP has no standard port"
            )
        options = NoStandardPort()
        options.parseOptions(["w", "-n", "6379"])
        assert options.config is not None
        self.assertEqual(options.config.request.port, 6379)
        # Stop and the other control commands need no port.
        options = NoStandardPort()
        options.parseOptions(["w", "--stop"])
        self.assertIsNotNone(options.control)

    def test_h_is_not_help(self) -> None:
        request = parse_http("w", "-h", "/x").request
        assert isinstance(request, HttpRequest)
        self.assertEqual(request.uri, "/x")


class SmtpCommandLineTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = parse_smtp("mail1")
        self.assertEqual(config.request, SmtpRequest(host="localhost", port=25, timeout=10))
        self.assertEqual(config.command, "clp_smtpmon")

    def test_no_http_options(self) -> None:
        for args in (("-v", "1.0"), ("-h", "/")):
            with self.assertRaises(usage.UsageError):
                parse_smtp("w", *args)

    def test_starttls_and_tls(self) -> None:
        request = parse_smtp("w", "--starttls").request
        assert isinstance(request, SmtpRequest)
        self.assertTrue(request.starttls)
        self.assertEqual(request.port, 25)
        request = parse_smtp("w", "--tls").request
        assert isinstance(request, SmtpRequest)
        self.assertEqual(request.port, 465)
        with self.assertRaises(ParameterError):
            parse_smtp("w", "--tls", "--starttls")


class RefusalTextTests(SynchronousTestCase):
    """The reasons given after message 11 (all of them: tests/test_cli_params.py)."""

    def detail(self, *args: str) -> str:
        with self.assertRaises(ParameterError) as caught:
            parse_http(*args)
        return caught.exception.detail

    def test_quote_escapes_control_characters_and_cuts(self) -> None:
        self.assertEqual(quote("a\r\nb\x00"), '"a\\r\\nb\\x00"')
        self.assertEqual(quote("x" * 70, limit=5), '"xxxxx..."')

    def test_getopt_complaints_are_reworded(self) -> None:
        self.assertEqual(self.detail("w", "--bogus"), "unknown option --bogus")
        self.assertEqual(self.detail("w", "-i"), "option -i needs a value")
        self.assertEqual(self.detail("w", "--tls=1"), "option --tls takes no value")
        self.assertEqual(
            self.detail("w", "--st"), "option --st is ambiguous: --state-dir or --stop?"
        )

    def test_ca_file_that_is_not_pem(self) -> None:
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "ca.pem")
        with open(path, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        self.assertEqual(
            self.detail("w", "--tls", "--ca-file", path),
            f'--ca-file "{path}" holds no usable PEM certificate',
        )

    def test_no_python_reprs(self) -> None:
        for args in (("a'b",), ("w", "-v", "x'y"), ("w", "-s", "a\tb"), ("w", "x", "y")):
            self.assertNotIn("'", self.detail(*args).replace("x'y", "").replace("a'b", ""))


class DebugOptionTests(SynchronousTestCase):
    def test_debug_is_off_unless_asked(self) -> None:
        self.assertFalse(parse_http("w").debug)
        self.assertTrue(parse_http("w", "--debug").debug)
        self.assertTrue(parse_smtp("w", "--debug").debug)
