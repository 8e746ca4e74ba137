# -*- test-case-name: tests.test_options -*-
"""
The command line of a watch, one parser per protocol, shared by
C{clp_httpmon}/C{clp_smtpmon}, C{ismon http|smtp} and the twistd plugins.

The 2004 syntax is kept verbatim (README "Running a watch"): the ID comes
first, C{-h} is the Request-URI (C{--help} is help), C{-r} is the probe
timeout when starting and the stop wait with C{--stop}.
"""

from __future__ import annotations

import os
import re
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from twisted.python import usage

from ismon import __version__
from ismon.cmdline.auth_file import AuthFileError, read_auth_file
from ismon.cmdline.manual import help_text, synopsis_text
from ismon.cmdline.pages import MANUALS
from ismon.control.request import ControlRequest, duration_problem, parse_duration, reason_problem
from ismon.core.catalogue import MessageId
from ismon.core.config import WatchConfig
from ismon.core.protocols import PROTOCOLS
from ismon.core.requests import (
    DEFAULT_MAX_BODY,
    BasicCredentials,
    ConversationRequest,
    DnsRequest,
    Expectation,
    HeaderExpectation,
    HttpRequest,
    ProbeRequest,
    SmtpRequest,
    StatusSet,
    TcpRequest,
    TLSSettings,
)
from ismon.core.text import quote
from ismon.core.timing import Timing
from ismon.state.folder import InvalidWatchId, validate_watch_id

__all__ = [
    "OPTIONS",
    "Action",
    "ConversationOptions",
    "DnsOptions",
    "FtpOptions",
    "HttpOptions",
    "ImapOptions",
    "ParameterError",
    "Pop3Options",
    "SmtpOptions",
    "TcpOptions",
    "WatchOptions",
    "control_request",
    "plain_usage_error",
]


class Action(Enum):
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    CONTINUE = "continue"
    DISP = "disp"
    DEL = "del"
    # Validate the command line as a start would, then exit 0 (README).
    CHECK = "check"


class ParameterError(usage.UsageError):
    """A refused command line: catalogue message 11, or 13 when no ID."""

    def __init__(self, detail: str, message: MessageId = MessageId.INVALID_PARAMETER) -> None:
        super().__init__(detail)
        self.detail = detail
        self.message = message


def _integer(name: str, text: Any, low: int, high: int) -> int:
    raw = str(text)
    digits = raw.strip()
    value = int(digits) if digits.isascii() and digits.isdigit() else None
    if value is None or not low <= value <= high:
        raise ParameterError(
            f"{name} must be a whole number from {low} to {high}, not {quote(raw)}"
        )
    return value


def _text(name: str, text: str) -> str:
    size = len(text.encode("utf-8", "surrogateescape"))
    if size == 0:
        raise ParameterError(f"{name} must not be empty")
    if size > 255:
        raise ParameterError(f"{name} must be at most 255 bytes, not {size}")
    if not text.isascii() or not text.isprintable() or " " in text:
        raise ParameterError(f"{name} must be printable ASCII without spaces, not {quote(text)}")
    return text


def _watch_id_problem(text: str) -> str:
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > 255:
        return f"the watch ID must be at most 255 bytes, not {size}"
    return f"the watch ID must be ASCII letters and digits only, not {quote(text)}"


# getopt's own complaints (Python's wording), and how we say them.
_GETOPT_ERROR = re.compile(
    r"option (?P<option>-.*) (?P<what>not recognized|requires argument|"
    r"must not have an argument|not a unique prefix)",
    re.DOTALL,
)


def plain_usage_error(error: str, long_options: list[str]) -> str:
    """getopt's complaint in the words of our other refusals."""
    found = _GETOPT_ERROR.fullmatch(error)
    if found is None:
        return error
    option, what = found["option"], found["what"]
    if not option.isprintable():
        option = quote(option)
    if what == "not recognized":
        return f"unknown option {option}"
    if what == "requires argument":
        return f"option {option} needs a value"
    if what == "must not have an argument":
        return f"option {option} takes no value"
    prefix = option.lstrip("-")
    candidates = sorted("--" + name.rstrip("=") for name in long_options if name.startswith(prefix))
    *others, last = dict.fromkeys(candidates) or [prefix]
    return f"option {option} is ambiguous: {', '.join(others)} or {last}?"


def _columns() -> int:
    # As Twisted's own getUsage: the terminal width when the shell exports it.
    try:
        return max(40, int(os.environ.get("COLUMNS", "80")))
    except ValueError:
        return 80


def _valid_watch_id(given: str | None, command: str) -> str:
    if given is None:
        raise ParameterError(f"the watch ID comes first: {command} ID [options]", MessageId.NO_ID)
    try:
        return validate_watch_id(given)
    except InvalidWatchId:
        raise ParameterError(_watch_id_problem(given)) from None


def _state_dir(value: str | None) -> Path | None:
    if value is None:
        return None
    if not value or "\0" in value:
        raise ParameterError("--state-dir must be a path, not " + quote(value, limit=300))
    return Path(value)


def _duration(name: str, text: str | None) -> int | None:
    """A DURATION (README "Maintenance pauses") in whole seconds."""
    if text is None:
        return None
    seconds = parse_duration(text)
    if seconds is None:
        raise ParameterError(duration_problem(name, text))
    return seconds


def _reason(text: str | None) -> str | None:
    if text is None:
        return None
    why = reason_problem(text)
    if why is not None:
        raise ParameterError(why)
    return text


def control_request(
    command: str,
    watch_id: str | None,
    action: str | None,
    *,
    stop_wait: str,
    state_dir: str | None,
    kill_after: str | None = None,
    as_json: bool = False,
    pause_for: str | None = None,
    pause_reason: str | None = None,
    every: bool = False,
) -> ControlRequest:
    """
    A control command for one watch (or, with C{every}, the status of every
    watch), validated as the watch command lines are (same refusals):
    C{action} one of C{ismon.control.request.VERBS}, or None for status.

    @raise ParameterError: with the reason.
    """
    valid_id = None if every else _valid_watch_id(watch_id, command)
    wait = _integer("-r (timeout)" if action is None else "-r (stop wait)", stop_wait, 1, 10000)
    if kill_after is not None and action != "stop":
        raise ParameterError("--kill-after goes with --stop")
    if (pause_for is not None or pause_reason is not None) and action != "pause":
        raise ParameterError("--for and --reason go with pause")
    return ControlRequest(
        command=command,
        watch_id=valid_id,
        action=action,
        stop_wait=wait,
        kill_after=None if kill_after is None else _integer("--kill-after", kill_after, 1, 10000),
        state_dir=_state_dir(state_dir),
        as_json=as_json,
        pause_for=_duration("--for", pause_for),
        pause_reason=_reason(pause_reason),
    )


#: The parser of each protocol's command line, by protocol name: each
#: L{WatchOptions} subclass that names its protocol registers itself here.
OPTIONS: dict[str, type[WatchOptions]] = {}


class WatchOptions(usage.Options):
    """Options shared by every protocol (ismon.core.protocols); each adds its own."""

    protocol: ClassVar[str] = ""
    command: ClassVar[str] = ""
    # 0: the protocol has no standard port (plain TCP), so -n must be given.
    default_port: ClassVar[int] = 0
    tls_port: ClassVar[int] = 0
    #: What a start of this protocol must give besides the ID, with example
    #: values (C{("--query", "www.example.com")} for DNS): the fakes
    #: (L{ismon.testing}) and the tests build the shortest valid command
    #: line of every protocol with it.
    example_arguments: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, protocol: str | None = None, **kwargs: Any) -> None:
        """
        C{class HttpOptions(WatchOptions, protocol="http")}: the name,
        command and ports come from ismon.core.protocols, the one table of
        them, and the class becomes the protocol's parser in L{OPTIONS}.
        """
        super().__init_subclass__(**kwargs)
        if protocol is not None:
            entry = PROTOCOLS[protocol]
            if protocol in OPTIONS:
                raise ValueError(f"{protocol} has a parser already: {OPTIONS[protocol]}")
            cls.protocol, cls.command = entry.name, entry.command
            cls.default_port, cls.tls_port = entry.default_port, entry.tls_port
            OPTIONS[protocol] = cls

    optFlags: ClassVar[list[list[str | None]]] = [
        ["stop", None, "Stop the running watch ID; -r then is the wait (s)."],
        ["pause", None, "Suspend probing (message 7)."],
        ["continue", None, "Resume probing (message 8)."],
        ["disp", None, "Print the PID of the running watch ID."],
        [
            "del",
            None,
            "Remove the leftovers of ID and the record of its last exit (ID.last);"
            " refused while it runs.",
        ],
        [
            "check",
            None,
            "Validate the command line as a start would, start nothing, and exit 0 (or 2).",
        ],
        ["tls", None, "Speak TLS from the first byte (HTTPS, SMTPS)."],
        ["insecure", None, "Do not verify the server certificate (logged)."],
        ["debug", None, "Also log Twisted's own events and each probe's result."],
    ]
    optParameters: ClassVar[list[list[Any]]] = [
        ["server", "s", "localhost", "Server name or address (1-255 bytes)."],
        ["port", "n", None, "TCP port (1-65535)."],
        ["interval", "i", "60", "Seconds between probes (1-10000)."],
        ["retries", "c", "3", "Retries after a failed probe before exiting (1-10000)."],
        [
            "timeout",
            "r",
            "10",
            "Seconds a probe may take (1-10000); with --stop, seconds to wait for the exit.",
        ],
        [
            "retry-interval",
            None,
            None,
            "Seconds from a failed probe's start to its retry (0-10000; default: interval).",
        ],
        ["grace", None, "0", "Seconds to wait before the first probe (0-10000)."],
        [
            "kill-after",
            None,
            None,
            "With --stop: SIGTERM a watch that did not end within the wait, "
            "SIGKILL it this many seconds later (1-10000).",
        ],
        [
            "max-pause",
            None,
            None,
            "End any pause by itself after this long: 90, 90s, 15m, 2h (up to 7 days).",
        ],
        ["ca-file", None, None, "PEM file of CA certificates to trust (TLS)."],
        ["servername", None, None, "Name for SNI and certificate verification (TLS)."],
        ["cert-warn-days", None, "14", "Warn when the certificate expires sooner (0-3650)."],
        ["state-dir", None, None, "Folder for the lock, pidfile and control socket."],
        ["syslog-socket", None, "/dev/log", "Syslog socket; 'none' to disable syslog."],
        ["logfile", None, None, "Also append the log to this file."],
        ["json-log", None, None, "Append messages as JSON lines to this file."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.watch_id: str | None = None
        self._leading_id: str | None = None
        # After parsing, exactly one of these: a watch to run, or a control
        # command for a running one.
        self.config: WatchConfig | None = None
        self.control: ControlRequest | None = None
        # --check: the config is valid; nothing is to be started.
        self.check = False

    def opt_version(self) -> None:
        """Print the ismon version and exit."""
        print(f"{self.command} (ismon) {__version__}")
        raise SystemExit(0)

    # --help and the man pages are both rendered from the manual's pages.
    def getSynopsis(self) -> str:
        return synopsis_text(MANUALS[self.command])

    def getUsage(self, width: int | None = None) -> str:
        # Twisted prints getSynopsis() + "\n" + getUsage() with print().
        return "\n" + help_text(MANUALS[self.command], self, width or _columns()).rstrip("\n")

    def parseOptions(self, options: list[str] | None = None) -> None:
        args = list(options if options is not None else [])
        # getopt stops at the first positional argument, but the 2004 syntax
        # puts the ID first: take it, then parse the options after it (so a
        # trailing option without its value is refused, not fed the ID).
        self._leading_id = None
        if args and not args[0].startswith("-"):
            self._leading_id, args = args[0], args[1:]
            self.watch_id = self._leading_id  # named in errors from getopt too
        try:
            super().parseOptions(args)
        except ParameterError:
            raise
        except usage.UsageError as e:
            raise ParameterError(self._plain(str(e))) from None

    def _plain(self, error: str) -> str:
        return plain_usage_error(error, self.longOpt)

    def parseArgs(self, *args: str) -> None:
        given = [self._leading_id, *args] if self._leading_id is not None else list(args)
        self.watch_id = given[0] if given else None
        if len(given) > 1:
            extra = " ".join(quote(arg) for arg in given[1:])
            noun = "argument" if len(given) == 2 else "arguments"
            raise ParameterError(f"unexpected {noun} {extra}: give one watch ID")

    def postOptions(self) -> None:
        watch_id = _valid_watch_id(self.watch_id, self.command)
        actions = [a for a in Action if a is not Action.START and self[a.value]]
        if len(actions) > 1:
            given = " and ".join(f"--{a.value}" for a in actions)
            raise ParameterError(f"{given} cannot be combined: give one action")
        action = actions[0] if actions else Action.START
        if action not in (Action.START, Action.CHECK):
            self.control = control_request(
                self.command,
                watch_id,
                action.value,
                stop_wait=self["timeout"],
                state_dir=self["state-dir"],
                kill_after=self["kill-after"],
            )
            return
        if self["kill-after"] is not None:
            raise ParameterError("--kill-after goes with --stop")
        self.check = action is Action.CHECK
        timeout = _integer("-r (timeout)", self["timeout"], 1, 10000)
        server = _text("-s (server)", self["server"])
        tls = self._tls(server)
        port = self._port()
        interval = _integer("-i (interval)", self["interval"], 1, 10000)
        retries = _integer("-c (retries)", self["retries"], 1, 10000)
        retry_interval = (
            None
            if self["retry-interval"] is None
            else _integer("--retry-interval", self["retry-interval"], 0, 10000)
        )
        timing = Timing(
            interval=interval,
            retries=retries,
            timeout=timeout,
            retry_interval=retry_interval,
            grace=_integer("--grace", self["grace"], 0, 10000),
        )
        syslog: str | None = self["syslog-socket"]
        if syslog in ("", "none"):
            syslog = None
        self.config = WatchConfig(
            watch_id=watch_id,
            protocol=self.protocol,
            command=self.command,
            request=self._request(server, port, timeout, tls),
            timing=timing,
            cert_warn_days=_integer("--cert-warn-days", self["cert-warn-days"], 0, 3650),
            state_dir=_state_dir(self["state-dir"]),
            syslog_socket=syslog,
            logfile=self["logfile"],
            json_log=self["json-log"],
            debug=bool(self["debug"]),
            max_pause=_duration("--max-pause", self["max-pause"]),
        )

    def _port(self) -> int:
        """-n, else the protocol's standard port (with --tls, its TLS port)."""
        if self["port"] is not None:
            return _integer("-n (port)", self["port"], 1, 65535)
        port = self.tls_port if self["tls"] else self.default_port
        if not port:
            label = PROTOCOLS[self.protocol].label
            raise ParameterError(f"-n (port) must be given: {label} has no standard port")
        return port

    def _uses_tls(self) -> bool:
        # A protocol that has --starttls (SMTP, POP3, IMAP4, FTP) upgrades
        # with it; a key of these options only where its class declares it.
        starttls = bool(self.get("starttls"))
        if self["tls"] and starttls:
            raise ParameterError("--tls and --starttls cannot be combined: give one")
        return bool(self["tls"]) or starttls

    def _tls(self, server: str) -> TLSSettings | None:
        if not self._uses_tls():
            for name in ("ca-file", "servername"):
                if self[name] is not None:
                    raise ParameterError(f"--{name} needs --tls{self._tls_alternatives()}")
            if self["insecure"]:
                raise ParameterError(f"--insecure needs --tls{self._tls_alternatives()}")
            return None
        servername = _text("--servername", self["servername"] or server)
        ca_file = self["ca-file"]
        if ca_file is not None:
            from ismon.probes.ca_file import read_ca_file

            try:
                read_ca_file(ca_file)
            except OSError as e:
                reason = e.strerror or str(e)
                raise ParameterError(
                    f"--ca-file {quote(ca_file, limit=300)} cannot be read: {reason}"
                ) from None
            except Exception:  # no certificate, or one OpenSSL cannot parse
                raise ParameterError(
                    f"--ca-file {quote(ca_file, limit=300)} holds no usable PEM certificate"
                ) from None
        return TLSSettings(servername=servername, ca_file=ca_file, insecure=bool(self["insecure"]))

    def _tls_alternatives(self) -> str:
        return " or --starttls" if "starttls" in self else ""

    def _request(
        self, server: str, port: int, timeout: int, tls: TLSSettings | None
    ) -> ProbeRequest:
        raise NotImplementedError


class HttpOptions(WatchOptions, protocol="http"):
    """C{clp_httpmon} / C{ismon http} / C{twistd ismon-http}."""

    longdesc = "Watch an HTTP daemon with HEAD requests."

    optParameters: ClassVar[list[list[Any]]] = [
        *WatchOptions.optParameters,
        ["http-version", "v", "1.1", "HTTP version sent: 1.0 or 1.1."],
        ["uri", "h", "/", "Request-URI of the HEAD (1-255 bytes); NOT help: use --help."],
        [
            "expect-status",
            None,
            None,
            "Acceptable status codes, e.g. 200-399,401 (also judged for '/').",
        ],
        [
            "method",
            None,
            "HEAD",
            "Request method: HEAD or GET (no fallback from one to the other).",
        ],
        [
            "max-body",
            None,
            None,
            "With GET: bytes of the body read at most, then the connection is closed "
            f"(1-16777216; default {DEFAULT_MAX_BODY}).",
        ],
        [
            "expect-body",
            None,
            None,
            "With GET: a regular expression the body (its first --max-body bytes) must match.",
        ],
        ["host-header", None, None, "Host header sent, host[:port] (default: -s and -n)."],
        [
            "auth-file",
            None,
            None,
            "File holding user:password for Basic authentication (mode 0600 or 0400).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["expect-header"] = []

    def opt_expect_header(self, value: str) -> None:
        """A header field the answer must have, 'Name: REGEX' (repeatable)."""
        self["expect-header"].append(value)

    def _request(
        self, server: str, port: int, timeout: int, tls: TLSSettings | None
    ) -> HttpRequest:
        version = self["http-version"]
        if version not in ("1.0", "1.1"):
            raise ParameterError(f"-v (HTTP version) must be 1.0 or 1.1, not {quote(version)}")
        uri = _text("-h (Request-URI)", self["uri"])
        expect = None
        if self["expect-status"] is not None:
            try:
                expect = StatusSet.parse(self["expect-status"])
            except ValueError:
                raise ParameterError(
                    "--expect-status must be status codes or ranges within 100-599 "
                    f"such as 200-399,401, not {quote(self['expect-status'])}"
                ) from None
        method = self["method"]
        if method not in ("HEAD", "GET"):
            raise ParameterError(f"--method must be HEAD or GET, not {quote(method)}")
        headers = tuple(_header_expectation(text) for text in self["expect-header"])
        body = None
        if self["expect-body"] is not None:
            if method != "GET":
                raise ParameterError("--expect-body needs --method GET")
            body = _expectation("--expect-body", self["expect-body"])
        max_body = DEFAULT_MAX_BODY
        if self["max-body"] is not None:
            # HEAD reads no body: a bound on it would silently do nothing.
            if method != "GET":
                raise ParameterError("--max-body needs --method GET")
            max_body = _integer("--max-body", self["max-body"], 1, 16 * 1024 * 1024)
        host_header = self["host-header"]
        if host_header is not None and _HOST_HEADER.fullmatch(host_header) is None:
            raise ParameterError(
                f"--host-header must be a host name or address with an optional :port, "
                f"not {quote(host_header)}"
            )
        return HttpRequest(
            host=server,
            port=port,
            timeout=timeout,
            version=version,
            uri=uri,
            expect_status=expect,
            tls=tls,
            method=method,
            max_body=max_body,
            expect_headers=headers,
            expect_body=body,
            host_header=host_header,
            credentials=_credentials(self["auth-file"]),
        )


# A Host header value (RFC 9110 §7.2): reg-name, IPv4 or [IPv6], optional port.
_HOST_HEADER = re.compile(
    r"(?:[A-Za-z0-9._~!$&'()*+,;=%-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?"
)


def _expectation(name: str, text: str) -> Expectation:
    try:
        return Expectation.compile(text)
    except (re.error, OverflowError) as e:  # "a{4294967296}": a repetition past re's limit
        raise ParameterError(f"{name} {quote(text)} is not a regular expression: {e}") from None


def _header_expectation(text: str) -> HeaderExpectation:
    try:
        return HeaderExpectation.parse(text)
    except (re.error, OverflowError) as e:  # as _expectation
        raise ParameterError(
            f"--expect-header {quote(text)} is not a regular expression: {e}"
        ) from None
    except ValueError:
        raise ParameterError(f"--expect-header must be 'Name: REGEX', not {quote(text)}") from None


def _credentials(path: str | None) -> BasicCredentials | None:
    """The credentials of --auth-file, read once, at start-up."""
    if path is None:
        return None
    try:
        return read_auth_file(path)
    except AuthFileError as e:
        raise ParameterError(str(e)) from None


class SmtpOptions(WatchOptions, protocol="smtp"):
    """C{clp_smtpmon} / C{ismon smtp} / C{twistd ismon-smtp}."""

    longdesc = "Watch an SMTP daemon with NOOP."

    optFlags: ClassVar[list[list[str | None]]] = [
        *WatchOptions.optFlags,
        ["starttls", None, "Upgrade to TLS with STARTTLS after EHLO (verified)."],
    ]
    optParameters: ClassVar[list[list[Any]]] = [
        *WatchOptions.optParameters,
        ["helo", None, None, "Name sent with EHLO (default: this host's name)."],
        [
            "auth-file",
            None,
            None,
            "File holding user:password to log in with, AUTH PLAIN or LOGIN (mode 0600 or "
            "0400; default: no login); only over --tls or --starttls unless --insecure.",
        ],
    ]

    def _clear_login(self) -> bool:
        """A login without TLS, which --insecure allows (the password crosses in the clear)."""
        return self["auth-file"] is not None and bool(self["insecure"]) and not self._uses_tls()

    def _tls(self, server: str) -> TLSSettings | None:
        if self._clear_login():
            for name in ("ca-file", "servername"):
                if self[name] is not None:
                    raise ParameterError(f"--{name} needs --tls or --starttls")
            return None
        return super()._tls(server)

    def _request(
        self, server: str, port: int, timeout: int, tls: TLSSettings | None
    ) -> SmtpRequest:
        helo = self["helo"]
        if helo is not None:
            helo = _text("--helo", helo)
        if self["auth-file"] is not None and tls is None and not self._clear_login():
            raise ParameterError(
                "--auth-file needs --tls or --starttls (the password would cross the network"
                " in the clear), or --insecure to allow that"
            )
        return SmtpRequest(
            host=server,
            port=port,
            timeout=timeout,
            tls=tls,
            starttls=bool(self["starttls"]),
            helo_name=helo or "",
            credentials=_credentials(self["auth-file"]),
        )


class ConversationOptions(WatchOptions):
    """
    The options of the watches that read a greeting and send one command
    (POP3, IMAP4, FTP): the clp_smtpmon syntax, STARTTLS, and an optional
    login from --auth-file (README "Running a watch").
    """

    optFlags: ClassVar[list[list[str | None]]] = [
        *WatchOptions.optFlags,
        ["starttls", None, "Upgrade to TLS after the greeting (verified)."],
    ]
    optParameters: ClassVar[list[list[Any]]] = [
        *WatchOptions.optParameters,
        [
            "auth-file",
            None,
            None,
            "File holding user:password to log in with (mode 0600 or 0400; default: no login).",
        ],
    ]

    def _request(
        self, server: str, port: int, timeout: int, tls: TLSSettings | None
    ) -> ConversationRequest:
        return ConversationRequest(
            host=server,
            port=port,
            timeout=timeout,
            tls=tls,
            starttls=bool(self["starttls"]),
            credentials=_credentials(self["auth-file"]),
        )


class Pop3Options(ConversationOptions, protocol="pop3"):
    """C{clp_pop3mon} / C{ismon pop3} / C{twistd ismon-pop3}."""

    longdesc = "Watch a POP3 daemon with CAPA."


class ImapOptions(ConversationOptions, protocol="imap"):
    """C{clp_imapmon} / C{ismon imap} / C{twistd ismon-imap}."""

    longdesc = "Watch an IMAP4 daemon with NOOP."


class FtpOptions(ConversationOptions, protocol="ftp"):
    """C{clp_ftpmon} / C{ismon ftp} / C{twistd ismon-ftp}."""

    longdesc = "Watch an FTP daemon with NOOP."


#: --expect values a DNS watch takes at most, and bytes each may have.
MAX_DNS_EXPECT = 16
MAX_DNS_EXPECT_BYTES = 1024


class DnsOptions(WatchOptions, protocol="dns"):
    """C{clp_dnsmon} / C{ismon dns} / C{twistd ismon-dns}."""

    longdesc = "Watch a DNS server with one query."

    example_arguments = ("--query", "www.example.com")

    optFlags: ClassVar[list[list[str | None]]] = [
        *WatchOptions.optFlags,
        ["tcp", None, "Ask over TCP instead of UDP (with --tls: DNS over TLS)."],
    ]
    optParameters: ClassVar[list[list[Any]]] = [
        *WatchOptions.optParameters,
        ["query", None, None, "The name to ask for (required), e.g. www.example.com."],
        ["type", None, "A", "Record type asked: A, AAAA, MX, NS, SOA, TXT, CNAME, PTR or SRV."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["expect"] = []

    def opt_expect(self, value: str) -> None:
        """A value one of the answer's records must equal (repeatable; any one will do)."""
        self["expect"].append(value)

    def _request(self, server: str, port: int, timeout: int, tls: TLSSettings | None) -> DnsRequest:
        # Imported here: only a DNS watch loads Twisted Names.
        from ismon.wire.dns import DnsInputError, RecordType, parse_expected, query_name

        query = self["query"]
        if query is None:
            raise ParameterError("--query must be given: the name to ask for")
        try:
            query_name(query)
        except DnsInputError as e:
            raise ParameterError(f"--query: {e}") from None
        try:
            record_type = RecordType.parse(self["type"])
        except DnsInputError as e:
            raise ParameterError(f"--type: {e}") from None
        expected: list[str] = self["expect"]
        if len(expected) > MAX_DNS_EXPECT:
            raise ParameterError(
                f"--expect is given {len(expected)} times, at most {MAX_DNS_EXPECT}"
            )
        for value in expected:
            size = len(value.encode("utf-8", "surrogateescape"))
            if not value or size > MAX_DNS_EXPECT_BYTES or not value.isprintable():
                raise ParameterError(
                    f"--expect must be 1-{MAX_DNS_EXPECT_BYTES} bytes of printable text,"
                    f" not {quote(value)}"
                )
            try:
                parse_expected(record_type, value)
            except DnsInputError as e:
                raise ParameterError(f"--expect: {e}") from None
        return DnsRequest(
            host=server,
            port=port,
            timeout=timeout,
            tls=tls,
            query=query,
            record_type=record_type.name,
            expect=tuple(expected),
            tcp=bool(self["tcp"]),
        )


class TcpOptions(WatchOptions, protocol="tcp"):
    """C{clp_tcpmon} / C{ismon tcp} / C{twistd ismon-tcp}."""

    longdesc = "Watch a TCP daemon: connect, send a text, expect a regex."

    example_arguments = ("-n", "6379")

    optParameters: ClassVar[list[list[Any]]] = [
        *WatchOptions.optParameters,
        [
            "send",
            None,
            None,
            "Text written once connected; \\r, \\n and \\\\ are CR, LF and a backslash.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["expect"] = None

    def opt_expect(self, value: str) -> None:
        """A regex (RE2) the bytes read must match before the deadline (64 KiB at most)."""
        if self["expect"] is not None:
            raise ParameterError("--expect is given twice: give one regex (a|b for either)")
        self["expect"] = value

    def _request(self, server: str, port: int, timeout: int, tls: TLSSettings | None) -> TcpRequest:
        # Imported here: only a TCP watch loads RE2.
        from ismon.wire.tcp import TcpInputError, compile_expect, unescape_send

        send, expect = self["send"], self["expect"]
        try:
            if send is not None:
                unescape_send(send)
        except TcpInputError as e:
            raise ParameterError(f"--send: {e}") from None
        try:
            if expect is not None:
                compile_expect(expect)
        except TcpInputError as e:
            raise ParameterError(f"--expect: {e}") from None
        return TcpRequest(
            host=server, port=port, timeout=timeout, tls=tls, send=send, expect=expect
        )
