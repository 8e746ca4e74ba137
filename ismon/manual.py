# -*- test-case-name: tests.test_manual -*-
"""
The manual of C{clp_httpmon}, C{clp_smtpmon} and C{ismon}: one source for
both C{--help} and the man pages (C{man/man8/*.8}), so the two cannot drift.

The option lists are not written here: they are read from the very
L{twisted.python.usage.Options} classes that parse the command line (their
C{optFlags}, C{optParameters} and C{opt_*} methods).  Everything else a page
says -- synopsis, description, exit status, environment, files, examples --
is the data below.

Regenerate the committed pages after changing anything here or an option::

    python -m ismon.manual --write man/man8
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from twisted.python import usage

from ismon import __version__

if TYPE_CHECKING:
    from ismon.protocols import WatchProtocol

__all__ = [
    "MANUALS",
    "Manual",
    "OptionRow",
    "full_help",
    "help_text",
    "option_rows",
    "render_roff",
    "synopsis_text",
    "write_pages",
]


@attrs.frozen
class OptionRow:
    """One option as a user sees it: C{-s, --server=server  doc [default]}."""

    long: str
    short: str | None
    takes_value: bool
    doc: str
    default: str | None


@attrs.frozen
class Manual:
    """What C{--help} and the man page of one command say."""

    name: str
    summary: str  # the NAME line, after "name - "
    synopsis: tuple[str, ...]  # argument lists, without the command name
    description: tuple[str, ...]  # paragraphs
    # For ismon: (usage, meaning) of each sub-command.
    commands: tuple[tuple[str, str], ...] = ()
    # For ismon: options shown as written here (its control options).
    extra_options: tuple[OptionRow, ...] = ()
    examples: tuple[tuple[str, str], ...] = ()  # (what, command line)
    see_also: tuple[str, ...] = ()


# -- what every page shares ------------------------------------------------------

EXIT_STATUS: tuple[tuple[str, str], ...] = (
    (
        "0",
        "Stopped on request (--stop, ismon stop, SIGTERM, SIGINT); a control command is "
        "done; --check: the command line is valid.",
    ),
    (
        "1",
        "The server failed: the last retry failed too.  For --disp, --pause, --continue "
        "and ismon status: the watch is not running.",
    ),
    ("2", "Invalid parameter, or no watch ID (messages 11 and 13)."),
    ("3", "The watch ID is already in use (message 14); --del refused because the ID is alive."),
    ("4", "System error (message 42), or the monitor's own event loop stalled (message 97)."),
    (
        "5",
        "--stop: the watch did not end within the wait (message 15); with --kill-after, "
        "not even after SIGKILL.",
    ),
)

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (
        "ISMON_STATE_DIR",
        "The state folder, when --state-dir is not given.  A watch and the commands "
        "that control it must see the same folder.",
    ),
    (
        "XDG_RUNTIME_DIR",
        "For users other than root, the state folder is $XDG_RUNTIME_DIR/ismon "
        "(else /tmp/ismon-UID).",
    ),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "Set by systemd: the watch reports READY after its first probe, and pings the "
        "systemd watchdog from its event loop.",
    ),
)

FILES: tuple[tuple[str, str], ...] = (
    (
        "/run/ismon/ID.lock",
        "Held (flock) for the life of the watch ID; the state folder is /run/ismon for "
        "root, created mode 0700.",
    ),
    ("/run/ismon/ID.pid", "The PID of the watch."),
    ("/run/ismon/ID.sock", "The watch's control socket (AMP, mode 0600)."),
    ("/dev/log", "Where the catalogue messages go to syslog (facility daemon)."),
)

_WATCH_DESCRIPTION_END: tuple[str, ...] = (
    "The command line is {origin}: the watch ID comes first,{h} "
    "and -r is the probe timeout when starting "
    "and the time to wait for the exit with --stop.  A bad command line is refused "
    "before anything starts, with one line on standard error (message 11, or 13 when "
    "the ID is missing) and exit status 2.",
    "Probes start on a fixed grid of the monotonic clock.  A failed probe is retried "
    "retry-interval seconds after it started; when the first probe and all retries "
    "have failed, the watch logs the reason and exits with status 1, so that the "
    "cluster manager watching its PID fails the service over.  A stall is detected "
    "within interval + retries x max(retry-interval, timeout) + timeout seconds, a "
    "bound the watch prints when it starts.",
    "--check validates the command line as a start would (ranges, --ca-file read "
    "and parsed) and exits 0, without touching the state folder, syslog or the "
    "network; a bad one is refused as above, on standard error only.",
    "Control a running watch with the same command and its ID (--stop, --pause, "
    "--continue, --disp, --del) or with ismon(8).  With --kill-after s, a watch that "
    "has not ended within the --stop wait gets SIGTERM, then SIGKILL s seconds later, "
    "and the command waits s seconds more for its lock to be free; only the process "
    "that held the watch's lock when the stop began is signalled, never another one "
    "that reuses its PID.  It exits 0 once the watch has ended, and tells on standard "
    "error which signals it took.",
    "A pause lasts until --continue, unless the watch was started with --max-pause: "
    "then any pause ends by itself after that long, with message 101 naming the limit.  "
    "ismon pause ID --for duration sets a pause's own expiry (ismon(8)).",
    "The log holds only the message catalogue (README, Messages): one line per "
    "event on standard output, to syslog (facility daemon, ident {name}), and to "
    "--logfile and --json-log when given.  --debug adds Twisted's own events and "
    "each probe's result; errors that Twisted logs are always shown.",
)

_WATCH_SYNOPSIS = "ID [-s server] [-n port] [-i interval] [-c retries] [-r timeout]"
_CONTROL_SYNOPSIS = "ID --stop [-r wait] [--kill-after s] | --pause | --continue | --disp | --del"


def _watch_manual(
    name: str,
    protocol: str,
    extra: str,
    first: str,
    *,
    example: tuple[str, str] = ("mail1", "mx.example.com"),
) -> Manual:
    from ismon.protocols import by_command

    registered = by_command(name)
    assert registered is not None, name
    port, tls_port = registered.default_port, registered.tls_port
    watch_id, server = example
    article = "an" if protocol[0] in "AEFHIMNORSX" else "a"
    others = tuple(f"{p.command}(8)" for p in _registered() if p.command != name)
    return Manual(
        name=name,
        summary=f"watch {article} {protocol} daemon and exit when it stalls",
        synopsis=(
            f"{_WATCH_SYNOPSIS}{extra} [options]",
            _CONTROL_SYNOPSIS,
            "--help | --version",
        ),
        description=(
            first,
            *(
                p.format(
                    name=name,
                    h=" -h is the Request-URI (help is --help)," if extra else "",
                    origin=(
                        f"that of NEC CLUSTERPRO's {name}"
                        if name in ("clp_httpmon", "clp_smtpmon")
                        else "that of NEC CLUSTERPRO's clp_smtpmon"
                    ),
                )
                for p in _WATCH_DESCRIPTION_END
            ),
        ),
        examples=(
            (
                f"Watch the {protocol} daemon on this node, probing every 60 s:",
                f"{name} {watch_id} -s localhost -n {port}",
            ),
            (
                "The same over TLS, trusting a private CA:",
                f"{name} {watch_id} -s {server} -n {tls_port} --tls --ca-file /etc/ssl/my-ca.pem",
            ),
            ("Stop it, waiting up to 30 s for the exit:", f"{name} {watch_id} --stop -r 30"),
            (
                "The same, then SIGTERM, and SIGKILL 10 s later, if it has not ended:",
                f"{name} {watch_id} --stop -r 30 --kill-after 10",
            ),
            ("Check a command line without starting anything:", f"{name} {watch_id} -i 0 --check"),
            (
                "The same watch run by twistd (see README, Exit codes, for what twistd "
                "cannot report):",
                f"twistd -n --pidfile /run/ismon/{watch_id}.twistd.pid {registered.tapname} "
                f"{watch_id} -s localhost",
            ),
        ),
        see_also=("ismon(8)", *others),
    )


def _registered() -> list[WatchProtocol]:
    from ismon.protocols import PROTOCOLS

    return list(PROTOCOLS.values())


HTTP = _watch_manual(
    "clp_httpmon",
    "HTTP",
    " [-v 1.0|1.1] [-h Request-URI]",
    "clp_httpmon sends an HTTP HEAD request to a server every interval seconds.  A "
    "probe fails when no complete answer arrives within the timeout (name resolution, "
    "connect, TLS, request and the whole header block share one deadline), when the "
    "connection is refused or reset, when the answer does not begin with HTTP/, and, "
    "only when -h is not /, when the status is 400-599 (--expect-status replaces "
    "that rule).  With --method GET the body is read too, up to --max-body bytes under "
    "the same deadline; --expect-header, --expect-body and a 401 with --auth-file fail "
    "a probe with messages 84, 85 and 86.  There is no fallback from HEAD to GET.",
    example=("web1", "www.example.com"),
)
SMTP = _watch_manual(
    "clp_smtpmon",
    "SMTP",
    "",
    "clp_smtpmon connects to a mail server every interval seconds, reads its greeting "
    "and sends NOOP (then QUIT).  A probe fails when the greeting or the NOOP reply "
    "does not arrive complete within the timeout, when the connection is refused or "
    "reset, when the greeting is not 220 or the reply to NOOP is not 250, or when "
    "the text is not an SMTP reply.",
)
_LOGIN = (
    "  Nothing logs in by default; with --auth-file the watch logs in first "
    "(message 86 when refused).  --starttls upgrades after the greeting (message 94 "
    "when the server does not offer it); --tls speaks TLS from the first byte."
)
POP3 = _watch_manual(
    "clp_pop3mon",
    "POP3",
    "",
    "clp_pop3mon connects to a POP3 server every interval seconds, reads its greeting "
    "and sends CAPA (then QUIT, without waiting for the answer).  A probe fails when "
    "the greeting or the capability list does not arrive complete within the timeout, "
    "when the connection is refused or reset, on -ERR (message 87), or when the text "
    "is not a POP3 reply (message 83 with 0).  With --auth-file: USER, PASS, then STAT." + _LOGIN,
)
IMAP = _watch_manual(
    "clp_imapmon",
    "IMAP4",
    "",
    "clp_imapmon connects to an IMAP4 server every interval seconds, reads its greeting "
    "(* OK or * PREAUTH) and sends NOOP (then LOGOUT, without waiting for the answer).  "
    "A probe fails when the greeting or the tagged OK does not arrive within the "
    "timeout, when the connection is refused or reset, on * BYE, NO or BAD (message "
    "87), or when the text is not an IMAP4 reply (message 83 with 0).  With --auth-file: "
    "LOGIN, then NOOP." + _LOGIN,
)
FTP = _watch_manual(
    "clp_ftpmon",
    "FTP",
    "",
    "clp_ftpmon connects to an FTP server every interval seconds, reads its 220 "
    "greeting and sends NOOP (then QUIT, without waiting for the answer).  A probe "
    "fails when the greeting or the NOOP reply does not arrive complete within the "
    "timeout, when the connection is refused or reset, when the greeting is not 220 "
    "or the reply to NOOP is neither 200 nor 530 (login required), with message 83 "
    "and the code, or 0 for text that is not an FTP reply.  With --auth-file: USER, "
    "PASS (230), then NOOP, which must be 200." + _LOGIN,
    example=("ftp1", "ftp.example.com"),
)


def _row(
    long: str, short: str | None, value: bool, doc: str, default: str | None = None
) -> OptionRow:
    return OptionRow(long=long, short=short, takes_value=value, doc=doc, default=default)


ISMON = Manual(
    name="ismon",
    summary="Internet server monitor for HA clusters",
    synopsis=(
        "http|smtp|pop3|imap|ftp ID [options]",
        "stop ID [-r wait] [--kill-after s]",
        "pause ID [--for duration] [--reason text]",
        "continue|disp|del ID",
        "status [ID] [--json]",
        "--help | --version",
    ),
    description=(
        "ismon runs and controls watches of HTTP, SMTP, POP3, IMAP4 and FTP daemons.  A watch probes its "
        "server on a fixed schedule and exits when the server stalls or answers wrongly, "
        "so that the cluster manager watching its PID fails the service over.",
        "ismon http, smtp, pop3, imap and ftp take the same options as clp_httpmon(8), "
        "clp_smtpmon(8), clp_pop3mon(8), clp_imapmon(8) and clp_ftpmon(8); the other commands talk to a running watch through its "
        "control socket in the state folder.",
        "The same watches run under twistd(1) as twistd -n ismon-http ID [options], "
        "and likewise ismon-smtp, ismon-pop3, ismon-imap and ismon-ftp.",
    ),
    commands=(
        ("http ID [options]", "Watch an HTTP daemon (the options of clp_httpmon)."),
        ("smtp ID [options]", "Watch an SMTP daemon (the options of clp_smtpmon)."),
        ("pop3 ID [options]", "Watch a POP3 daemon (the options of clp_pop3mon)."),
        ("imap ID [options]", "Watch an IMAP4 daemon (the options of clp_imapmon)."),
        ("ftp ID [options]", "Watch an FTP daemon (the options of clp_ftpmon)."),
        (
            "stop ID [-r wait] [--kill-after s]",
            "Stop a watch; wait up to wait seconds (default 10) for its exit.  With "
            "--kill-after: then SIGTERM, SIGKILL s seconds later, and up to s seconds more "
            "for the exit; only the watch's own process is signalled (not a process that "
            "reuses its PID).",
        ),
        (
            "pause ID [--for duration] [--reason text]",
            "Suspend probing (message 7); with --for, until duration has passed (90, 90s, "
            "15m, 2h; 7 days at most), when probing resumes by itself (messages 8 and 101).  "
            "The reason (200 bytes at most, no control characters) and the expiry are logged "
            "(message 100) and shown by status.",
        ),
        ("continue ID", "Resume probing at once (message 8)."),
        ("status [ID] [--json]", "The state of one watch, or of every watch in the folder."),
        ("disp ID", "Print the PID of a running watch."),
        ("del ID", "Remove the leftover records of a watch that is not running."),
    ),
    extra_options=(
        _row("state-dir", None, True, "Folder of the watches' records (or ISMON_STATE_DIR)."),
        _row("timeout", "r", True, "With stop: seconds to wait for the exit.", "10"),
        _row(
            "kill-after",
            None,
            True,
            "With stop: SIGTERM a watch that did not end within the wait, SIGKILL it this "
            "many seconds later (1-10000).",
        ),
        _row("for", None, True, "With pause: end the pause by itself after this long."),
        _row("reason", None, True, "With pause: why; shown by status."),
        _row("json", None, False, "With status: print JSON."),
        _row("help", None, False, "Display this help and exit."),
        _row("version", None, False, "Print the ismon version and exit."),
    ),
    examples=(
        ("Watch a web server:", "ismon http web1 -s www.example.com -n 80 -i 30"),
        ("Every watch on this node, as JSON:", "ismon status --json"),
        ("Stop the watch web1:", "ismon stop web1"),
        (
            "Pause it for maintenance for 15 minutes:",
            "ismon pause web1 --for 15m --reason 'kernel update'",
        ),
        ("Stop it, by force if it hangs:", "ismon stop web1 -r 20 --kill-after 10"),
        ("Check a watch's command line:", "ismon http web1 -s www.example.com --check"),
    ),
    see_also=(
        "clp_httpmon(8)",
        "clp_smtpmon(8)",
        "clp_pop3mon(8)",
        "clp_imapmon(8)",
        "clp_ftpmon(8)",
        "twistd(1)",
    ),
)

MANUALS: dict[str, Manual] = {m.name: m for m in (HTTP, SMTP, POP3, IMAP, FTP, ISMON)}


def _options_class(name: str) -> type[usage.Options] | None:
    from ismon.protocols import by_command

    protocol = by_command(name)
    return None if protocol is None else protocol.options_class()


# -- the option table, read from the parser ---------------------------------------


def option_rows(options: usage.Options) -> list[OptionRow]:
    """
    The options of C{options} in the order C{--help} lists them, read the way
    L{usage.Options.getUsage} reads them (flags, parameters, C{opt_*}).
    """
    short_of: dict[str, str | None] = {}
    for key, long in options.synonyms.items():
        if key != long and len(key) == 1:
            short_of[long] = key
        else:
            short_of.setdefault(long, None)
    rows = []
    seen: set[str] = set()
    for name in options.longOpt:
        long = name.rstrip("=")
        # Twisted gathers the tables of the base classes too: list each once.
        if long in seen:
            continue
        seen.add(long)
        default = options.defaults.get(long)
        rows.append(
            OptionRow(
                long=long,
                short=short_of.get(long),
                takes_value=name.endswith("="),
                doc=" ".join(str(options.docs[long]).split()),
                # A flag's "default" is Twisted's 0 for "not given".
                default=None if default is None or not name.endswith("=") else str(default),
            )
        )
    return rows


def _rows_of(manual: Manual) -> list[OptionRow]:
    options_class = _options_class(manual.name)
    rows = list(manual.extra_options)
    if options_class is not None:
        rows += option_rows(options_class())
    return rows


# -- --help -----------------------------------------------------------------------


def synopsis_text(manual: Manual) -> str:
    """C{Usage: name ...} with one line per form."""
    lines = [f"Usage: {manual.name} {manual.synopsis[0]}"]
    lines += [f"       {manual.name} {form}" for form in manual.synopsis[1:]]
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "") -> str:
    return "\n".join(
        textwrap.wrap(
            text,
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    )


def _table(rows: Sequence[tuple[str, str]], width: int) -> str:
    column = max(len(left) for left, _ in rows) + 4
    lines = []
    for left, right in rows:
        wrapped = textwrap.wrap(right, max(20, width - column), break_on_hyphens=False)
        lines.append(f"  {left:<{column - 2}}{wrapped[0]}")
        lines += [" " * column + more for more in wrapped[1:]]
    return "\n".join(lines)


def help_text(manual: Manual, width: int = 80) -> str:
    """
    Everything C{--help} prints after the synopsis: the description, the
    options (formatted by Twisted, as for any usage.Options), the exit status
    and where the manual is.
    """
    parts = [_wrap(p, width) for p in manual.description]
    if manual.commands:
        parts.append("Commands:\n" + _table(manual.commands, width))
    rows = _rows_of(manual)
    chunks = usage.docMakeChunks(
        [
            {
                "long": row.long,
                "short": row.short,
                "doc": row.doc,
                "optType": "parameter" if row.takes_value else "flag",
                "default": row.default,
            }
            for row in rows
        ],
        width,
    )
    parts.append("Options:\n" + "".join(chunks).rstrip("\n"))
    parts.append("Exit status:\n" + _table(EXIT_STATUS, width))
    parts.append(f"See also: man {manual.name}; {', '.join(manual.see_also)}.")
    return "\n\n".join(parts) + "\n"


def full_help(name: str, width: int = 80) -> str:
    manual = MANUALS[name]
    return synopsis_text(manual) + "\n\n" + help_text(manual, width)


# -- roff ---------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, no control lines."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # A line that starts with . or ' would be read as a request.
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def _bold(text: str) -> str:
    return f"\\fB{_escape(text)}\\fR"


_KEYWORDS = frozenset(
    {"http", "smtp", "pop3", "imap", "ftp", "stop", "pause", "continue", "status", "disp", "del"}
)


def _synopsis_roff(text: str) -> str:
    """Options and keywords bold, placeholders italic, brackets plain."""
    words = []
    for token in re.split(r"(\s+|[\[\]|])", text):
        if not token or token.isspace() or token in "[]|" or re.fullmatch(r"[0-9.]+", token):
            words.append(_escape(token))
        elif token.startswith("-") or token in _KEYWORDS:
            words.append(_bold(token))
        else:
            words.append(f"\\fI{_escape(token)}\\fR")
    return "".join(words)


def _option_roff(row: OptionRow) -> list[str]:
    head = f"\\fB\\-\\-{_escape(row.long)}\\fR"
    if row.short:
        head = f"\\fB\\-{_escape(row.short)}\\fR, " + head
    if row.takes_value:
        head += f"=\\fI{_escape(row.long)}\\fR"
    doc = row.doc
    if row.default is not None:
        doc += f" [default: {row.default}]"
    return [".TP", head, _escape(doc)]


def _paragraphs(paragraphs: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        if i:
            lines.append(".PP")
        lines.append(_escape(paragraph))
    return lines


def _tagged(rows: Sequence[tuple[str, str]], bold: bool = True) -> list[str]:
    lines = []
    for tag, text in rows:
        lines += [".TP", _bold(tag) if bold else _escape(tag), _escape(text)]
    return lines


def render_roff(manual: Manual) -> str:
    """The man page of C{manual}, section 8, as roff (man macros)."""
    title = manual.name.upper()
    lines = [
        '.\\" Generated by python -m ismon.manual from ismon/manual.py and the',
        '.\\" command-line parser; edit those, not this file.',
        f'.TH {title} 8 "" "ismon {__version__}" "System Administration"',
        ".SH NAME",
        f"{_escape(manual.name)} \\- {_escape(manual.summary)}",
        ".SH SYNOPSIS",
    ]
    for i, form in enumerate(manual.synopsis):
        if i:
            lines.append(".br")
        lines.append(f"{_bold(manual.name)} {_synopsis_roff(form)}")
    lines += [".SH DESCRIPTION", *_paragraphs(manual.description)]
    if manual.commands:
        lines += [".SH COMMANDS", *(_tagged_command(c) for c in manual.commands)]
    lines.append(".SH OPTIONS")
    for row in _rows_of(manual):
        lines += _option_roff(row)
    lines += [".SH EXIT STATUS", *_tagged(EXIT_STATUS)]
    lines += [".SH ENVIRONMENT", *_tagged(ENVIRONMENT)]
    lines += [".SH FILES", *_tagged(FILES)]
    lines.append(".SH EXAMPLES")
    for i, (what, command) in enumerate(manual.examples):
        if i:
            lines.append(".PP")
        lines += [_escape(what), ".PP", ".RS 4", ".nf", _escape(command), ".fi", ".RE"]
    lines.append(".SH SEE ALSO")
    lines.append(",\n".join(_see_also(ref) for ref in manual.see_also))
    lines += [
        ".PP",
        "The README of ismon (options, timing, exit codes, the message catalogue) and "
        "docs/cluster.md (cluster wiring).",
    ]
    return "\n".join(lines) + "\n"


def _tagged_command(command: tuple[str, str]) -> str:
    usage_line, meaning = command
    return f".TP\n{_synopsis_roff(usage_line)}\n{_escape(meaning)}"


def _see_also(reference: str) -> str:
    name, section = reference.rstrip(")").split("(")
    return f".BR {name} ({section})"


def _page_name(manual: Manual) -> str:
    return f"{manual.name}.8"


def write_pages(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for manual in MANUALS.values():
        path = folder / _page_name(manual)
        path.write_text(render_roff(manual), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "--write":
        for path in write_pages(Path(argv[1])):
            print(f"wrote {path}")
        return 0
    if len(argv) == 1 and argv[0] in MANUALS:
        sys.stdout.write(render_roff(MANUALS[argv[0]]))
        return 0
    sys.stderr.write(
        "usage: python -m ismon.manual --write FOLDER | clp_httpmon|clp_smtpmon|clp_pop3mon|clp_imapmon|clp_ftpmon|ismon\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
