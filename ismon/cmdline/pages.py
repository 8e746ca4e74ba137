# -*- test-case-name: tests.test_manual -*-
"""
What the manual of C{ismon} and of each C{clp_*mon} command says: one
source for both C{--help} and the man pages (C{man/man8/*.8}), so the two
cannot drift.  The renderers are L{ismon.cmdline.manual}; the option lists
are not written here but read from the very option parsers
(L{ismon.cmdline.options}).  Everything else a page says -- synopsis,
description, exit status, environment, files, examples -- is the data
below; the protocols come from L{ismon.core.protocols}.

Regenerate the committed pages after changing anything here or an option::

    python -m ismon.cmdline.manpages --write man/man8
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ismon.core.protocols import PROTOCOLS, by_command

__all__ = ["ENVIRONMENT", "EXIT_STATUS", "FILES", "MANUALS", "Manual", "OptionRow"]

_PROTOCOLS = list(PROTOCOLS.values())


def _a(label: str) -> str:
    """C{label} with its article: an HTTP, a POP3."""
    return ("an " if label[0] in "AEFHILMNORSX" else "a ") + label


def _listed(names: Iterable[str]) -> str:
    """C{a, b and c}."""
    *others, last = names
    return f"{', '.join(others)} and {last}" if others else last


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
        "The server failed: the last retry failed too (and no failure of the run was the "
        "monitor's own).  For --disp, --pause, --continue and ismon status: the watch is "
        "not running.",
    ),
    ("2", "Invalid parameter, or no watch ID (messages 11 and 13)."),
    ("3", "The watch ID is already in use (message 14); --del refused because the ID is alive."),
    (
        "4",
        "The monitor itself failed, not the server: system error (message 42: its state "
        "folder, no room to start, no thread, out of descriptors or memory while watching), "
        "or its own event loop stalled (message 97).  Restart the watch; do not fail the "
        "service over.",
    ),
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
    needs: str = "",
    ports: tuple[int, int] | None = None,
) -> Manual:
    """
    The page of a watch command.  The examples are C{name ID -s server -n
    port}, then C{needs} (what a start must give besides, e.g. C{--query
    NAME}); C{ports}, the plain and TLS ports they show, for a protocol
    without standard ones (the table's).
    """
    registered = by_command(name)
    assert registered is not None, name
    port, tls_port = ports or (registered.default_port, registered.tls_port)
    watch_id, server = example
    needs = f" {needs}" if needs else ""
    others = tuple(f"{p.command}(8)" for p in _PROTOCOLS if p.command != name)
    return Manual(
        name=name,
        summary=f"watch {_a(protocol)} daemon and exit when it stalls",
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
                    h=" -h is the Request-URI (help is --help)," if name == "clp_httpmon" else "",
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
                f"{name} {watch_id} -s localhost -n {port}{needs}",
            ),
            (
                "The same over TLS, trusting a private CA:",
                f"{name} {watch_id} -s {server} -n {tls_port} --tls --ca-file /etc/ssl/my-ca.pem"
                f"{needs}",
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
                f"{watch_id} -s localhost{f' -n {port}' if ports else ''}{needs}",
            ),
        ),
        see_also=("ismon(8)", *others),
    )


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
    "the text is not an SMTP reply.  With --auth-file the watch sends EHLO and logs in "
    "before NOOP, with AUTH PLAIN, or AUTH LOGIN when the server offers only that "
    "(message 86 with the server's code when refused, with 0 when it offers neither); "
    "only over --tls or --starttls, unless --insecure allows the password in the clear.",
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


DNS = _watch_manual(
    "clp_dnsmon",
    "DNS",
    " --query name [--type type] [--expect value ...] [--tcp]",
    "clp_dnsmon asks a DNS server one question every interval seconds: --query, of "
    "--type (A by default; AAAA, MX, NS, SOA, TXT, CNAME, PTR, SRV), class IN, over UDP; "
    "an answer truncated over UDP (TC) is asked again over TCP inside the same deadline; "
    "--tcp asks over TCP, --tls over TLS (DNS over TLS, port 853).  The probe passes when "
    "the answer has RCODE NOERROR, the query's ID and question, and a record of the asked "
    "type for the name (or the name its CNAME records lead to); with --expect, one of "
    "those records must also equal one of the expected values (an address compares as an "
    "address, a name in any case; MX, SRV and SOA as the fields given).  A probe fails "
    "when no answer arrives within the timeout, on an error RCODE such as NXDOMAIN, "
    "SERVFAIL or REFUSED (message 83 with the RCODE), when the record or the expected "
    "value is missing (message 87), when the answer is malformed, not a response, or "
    "for another ID or question (message 83 with 0), and when the server refuses "
    "(message 72).  An answer after the deadline never counts.",
    example=("dns1", "ns1.example.com"),
    needs="--query www.example.com",
)


TCP = _watch_manual(
    "clp_tcpmon",
    "TCP",
    " [--send text] [--expect regex]",
    "clp_tcpmon connects to a TCP server every interval seconds (-n is required: plain TCP "
    "has no standard port; --tls adds a verified TLS handshake, checked against the "
    "certificate's IP address entry when -s is an address).  With neither --send nor "
    "--expect the probe passes once connected; --send writes its text (\\r, \\n and "
    "\\\\ are CR, LF and a backslash) and, without --expect, passes once it is written.  "
    "With --expect, the bytes read (after --send, or a banner) must match the regex "
    "before the deadline; the regex is RE2's (no look-around or back-references), runs "
    "in time linear in the input, and sees each byte as one Latin-1 character; $ and \\z "
    "match only once the server has closed the connection.  At most 65536 bytes are "
    "read: more without a match is message 83 with 0.  A probe also fails when the "
    "connection is refused (message 72), closed before a match (message 75 with 0), "
    "reset (75), or when nothing matches within the timeout (message 74).",
    example=("redis1", "redis.example.com"),
    needs="--send 'PING\\r\\n' --expect '\\+PONG'",
    ports=(6379, 6380),
)


def _row(
    long: str, short: str | None, value: bool, doc: str, default: str | None = None
) -> OptionRow:
    return OptionRow(long=long, short=short, takes_value=value, doc=doc, default=default)


ISMON = Manual(
    name="ismon",
    summary="Internet server monitor for HA clusters",
    synopsis=(
        f"{'|'.join(PROTOCOLS)} ID [options]",
        "stop ID [-r wait] [--kill-after s]",
        "pause ID [--for duration] [--reason text]",
        "continue|disp|del ID",
        "status [ID] [--json]",
        "metrics [--openmetrics] [--textfile dir]",
        "exporter [--listen addr:port] [--watch-timeout s]",
        "--help | --version",
    ),
    description=(
        f"ismon runs and controls watches of {_listed(p.label for p in _PROTOCOLS)} daemons.  "
        "A watch probes its server on a fixed schedule and exits when the server stalls or "
        "answers wrongly, so that the cluster manager watching its PID fails the service over.",
        f"ismon {_listed(PROTOCOLS)} take the same options as "
        f"{_listed(f'{p.command}(8)' for p in _PROTOCOLS)}; the other commands talk to a "
        "running watch through its control socket in the state folder.",
        "The same watches run under twistd(1) as twistd -n ismon-http ID [options], "
        f"and likewise {_listed(p.tapname for p in _PROTOCOLS[1:])}.",
    ),
    commands=(
        *(
            (f"{p.name} ID [options]", f"Watch {_a(p.label)} daemon (the options of {p.command}).")
            for p in _PROTOCOLS
        ),
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
        (
            "metrics [--openmetrics] [--textfile dir]",
            "Every watch in the folder as Prometheus metrics: the running ones asked over "
            "their control sockets (side by side, 2 s at most), the ended ones from their "
            "last-exit records; the classic text format, or OpenMetrics 1.0.  With --textfile, "
            "written to dir/ismon.prom atomically for node_exporter's textfile collector.",
        ),
        (
            "exporter [--listen addr:port] [--watch-timeout s]",
            "Serve the same metrics on http://addr:port/metrics (default 127.0.0.1:9785) "
            "until SIGTERM, asking every watch at each scrape within s seconds (default 2); "
            "also twistd -n ismon-exporter.  ismon exporter --help lists its options; "
            "docs/prometheus.md has a scrape configuration and alert rules.",
        ),
        (
            "del ID",
            "Remove the leftovers of a watch that is not running, and the record of its "
            "last exit (ID.last).",
        ),
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
        _row("openmetrics", None, False, "With metrics: print OpenMetrics 1.0."),
        _row("textfile", None, True, "With metrics: write dir/ismon.prom instead (mode 0644)."),
        _row("help", None, False, "Display this help and exit."),
        _row("version", None, False, "Print the ismon version and exit."),
    ),
    examples=(
        ("Watch a web server:", "ismon http web1 -s www.example.com -n 80 -i 30"),
        ("Every watch on this node, as JSON:", "ismon status --json"),
        (
            "Their metrics, for node_exporter's textfile collector:",
            "ismon metrics --textfile /var/lib/prometheus/node-exporter",
        ),
        ("Stop the watch web1:", "ismon stop web1"),
        (
            "Pause it for maintenance for 15 minutes:",
            "ismon pause web1 --for 15m --reason 'kernel update'",
        ),
        ("Stop it, by force if it hangs:", "ismon stop web1 -r 20 --kill-after 10"),
        ("Check a watch's command line:", "ismon http web1 -s www.example.com --check"),
    ),
    see_also=(*(f"{p.command}(8)" for p in _PROTOCOLS), "twistd(1)"),
)


MANUALS: dict[str, Manual] = {m.name: m for m in (HTTP, SMTP, POP3, IMAP, FTP, DNS, TCP, ISMON)}
