# -*- test-case-name: tests.test_catalogue -*-
"""
The message catalogue: ids, texts, and the 400-byte line rule (README: Messages).

Ids 1-83 are the 2004 texts, kept verbatim because cluster scripts grep for
them.  Ids 90 and up are events the 2004 product did not have (TLS, the
monitor's own health); they follow the same sentence shape.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["MAX_LINE_BYTES", "MessageId", "fold", "render", "takes_detail"]

MAX_LINE_BYTES = 400


class MessageId(IntEnum):
    STARTED = 1
    WATCHING = 2
    STOPPING = 3
    TERMINATING = 6
    PAUSED = 7
    CONTINUED = 8
    INVALID_PARAMETER = 11
    NO_ID = 13
    ID_IN_USE = 14
    STOP_FAILED = 15
    SYSTEM_ERROR = 42
    SOCKET_ERROR = 71
    CONNECT_ERROR = 72
    SEND_ERROR = 73
    SELECT_ERROR = 74
    RECV_ERROR = 75
    RESOLVE_ERROR = 81
    INVALID_RESPONSE = 82
    INVALID_STATUS = 83
    # Added by ismon: HTTP checks and logins, negative replies (README "Running a watch").
    HEADER_MISSING = 84
    BODY_MISSING = 85
    AUTH_REFUSED = 86
    NEGATIVE_REPLY = 87
    # Added by ismon.
    TLS_HANDSHAKE_ERROR = 90
    TLS_VERIFY_ERROR = 91
    CERT_EXPIRES_SOON = 92
    TLS_NOT_VERIFIED = 93
    STARTTLS_UNAVAILABLE = 94
    RECOVERED = 95
    PROBE_FAILED_RETRYING = 96
    EVENT_LOOP_STALLED = 97
    SYSLOG_UNAVAILABLE = 98
    SCHEDULE = 99
    PAUSED_UNTIL = 100
    PAUSE_ENDED = 101
    RECORD_NOT_WRITTEN = 102
    RECORDS_GONE = 103


# {cmd} clp_httpmon|clp_smtpmon|..., {proto} HTTP|SMTP|POP3|IMAP4|FTP|DNS|TCP, {nn} number, {fn} function
# name, {detail} free text; every text ends with the watch ID tag.
_TEXTS: dict[MessageId, str] = {
    MessageId.STARTED: "The {cmd} has started watching {proto}.",
    MessageId.WATCHING: "The {cmd} is going to watch {proto} daemon.",
    MessageId.STOPPING: "The {cmd} will stop watching {proto} daemon.",
    MessageId.TERMINATING: "The {cmd} will terminate.",
    MessageId.PAUSED: "The {cmd} is going to stop monitoring.",
    MessageId.CONTINUED: "The {cmd} is going to monitor.",
    MessageId.INVALID_PARAMETER: "Invalid parameter in the {cmd}.",
    MessageId.NO_ID: "The monitor id is not specified at the {cmd} command.",
    MessageId.ID_IN_USE: "The specified monitor id is already under use in other processes.",
    MessageId.STOP_FAILED: "The {cmd} has not performed end processing.",
    MessageId.SYSTEM_ERROR: "The {cmd} has detected system error ({fn} {nn}).",
    MessageId.SOCKET_ERROR: "The {cmd} has detected network error(socket error[{nn}]).",
    MessageId.CONNECT_ERROR: "The {cmd} has detected network error(connect error[{nn}]).",
    MessageId.SEND_ERROR: "The {cmd} has detected network error(send error[{nn}]).",
    MessageId.SELECT_ERROR: "The {cmd} has detected network error(select error[{nn}]).",
    MessageId.RECV_ERROR: "The {cmd} has detected network error(recv error[{nn}]).",
    MessageId.RESOLVE_ERROR: "Failed to execute name resolution(error[{nn}]).",
    # The 2004 text names clp_httpmon even though only HTTP can produce it.
    MessageId.INVALID_RESPONSE: "The clp_httpmon has detected an error in HTTP(invalid response).",
    MessageId.INVALID_STATUS: "The {cmd} has detected an error in {proto}(invalid status code[{nn}]).",
    MessageId.HEADER_MISSING: "The {cmd} has detected an error in HTTP(expected header missing: {detail}).",
    MessageId.BODY_MISSING: "The {cmd} has detected an error in HTTP(expected body missing: {detail}).",
    MessageId.AUTH_REFUSED: "The {cmd} has detected an error in {proto}(authentication refused[{nn}]).",
    MessageId.NEGATIVE_REPLY: "The {cmd} has detected an error in {proto}(negative reply: {detail}).",
    MessageId.TLS_HANDSHAKE_ERROR: "The {cmd} has detected an error in TLS(handshake error: {detail}).",
    MessageId.TLS_VERIFY_ERROR: (
        "The {cmd} has detected an error in TLS(certificate not trusted: {detail})."
    ),
    MessageId.CERT_EXPIRES_SOON: (
        "The {cmd} has found that the {proto} server certificate expires in {nn} days."
    ),
    MessageId.TLS_NOT_VERIFIED: (
        "The {cmd} does not verify the {proto} server certificate (--insecure)."
    ),
    MessageId.STARTTLS_UNAVAILABLE: (
        "The {cmd} has detected an error in {proto}(STARTTLS not offered)."
    ),
    MessageId.RECOVERED: "The {cmd} has detected that {proto} answers again.",
    MessageId.PROBE_FAILED_RETRYING: "The {cmd} will retry watching {proto} ({detail}).",
    MessageId.EVENT_LOOP_STALLED: (
        "The {cmd} has detected that its own event loop stalled for {nn} seconds."
    ),
    MessageId.SYSLOG_UNAVAILABLE: "The {cmd} cannot reach syslog ({detail}); logging locally.",
    MessageId.SCHEDULE: "The {cmd} watches {proto} with {detail}.",
    MessageId.PAUSED_UNTIL: "The {cmd} has paused monitoring {proto} ({detail}).",
    MessageId.PAUSE_ENDED: "The {cmd} has ended its pause by itself ({detail}).",
    MessageId.RECORD_NOT_WRITTEN: "The {cmd} could not write its record ({detail}).",
    MessageId.RECORDS_GONE: "The {cmd} found its state folder gone ({detail}).",
}


def render(
    message: MessageId,
    *,
    command: str,
    watch_id: str,
    number: int | None = None,
    function: str = "",
    detail: str = "",
    protocol: str | None = None,
) -> str:
    """
    The catalogue text of C{message} for the watch C{watch_id}, on one line:
    C{command} is the command it names (C{clp_imapmon}), C{protocol} the
    protocol as messages name it (C{IMAP4}: L{ismon.core.protocols}).

    Control characters in the substituted values are replaced, so a hostile
    server reply cannot forge extra log lines.

    @raise ValueError: the text names the protocol and none was given.
    """
    template = _TEXTS[message]
    if protocol is None:
        if "{proto}" in template:
            raise ValueError(f"message {int(message)} names the protocol: give protocol=")
        protocol = ""
    text = template.format(
        cmd=command,
        proto=protocol,
        nn="" if number is None else number,
        fn=_printable(function),
        detail=_printable(detail),
    )
    return f"{text} [ID:{_printable(watch_id)}]"


def takes_detail(message: MessageId) -> bool:
    """Whether the text of C{message} has a place for free-text detail."""
    return "{detail}" in _TEXTS[message]


def _printable(value: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in value)


def fold(line: str, limit: int = MAX_LINE_BYTES) -> list[str]:
    """
    Split C{line} into pieces of at most C{limit} UTF-8 bytes, never inside a
    character, so that syslog relays that truncate at 400 bytes lose nothing.

    @raise ValueError: C{limit} is below 4 bytes, too small to hold every
        UTF-8 character (backing off to a boundary would never advance).
    """
    if limit < 4:
        raise ValueError(f"fold limit must be at least 4 bytes, not {limit}")
    encoded = line.encode("utf-8")
    if len(encoded) <= limit:
        return [line]
    pieces: list[str] = []
    start = 0
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        # Back off to a character boundary (continuation bytes are 10xxxxxx).
        while end < len(encoded) and end > start and (encoded[end] & 0xC0) == 0x80:
            end -= 1
        pieces.append(encoded[start:end].decode("utf-8"))
        start = end
    return pieces
