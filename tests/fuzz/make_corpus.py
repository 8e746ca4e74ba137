"""
Writes the seed corpus, tests/fuzz/corpus/<target>/<name>, from the table
below: real server replies (captured from the servers the suite starts,
on loopback, 2026-12-06: nginx 1.22.1, aiosmtpd 1.4.6, OpenSMTPD 6.8,
dovecot 2.3, vsftpd 3.0.3) and a few crafted inputs for what those servers
did not send (chunked bodies, literals, interim answers, long bundles).

    python -m tests.fuzz.make_corpus          # rewrites the folders it owns

Each seed is an input as the target reads it: for the stream targets, the
envelope byte of tests/fuzz/harness.py first (flags in the high nibble,
the count of piece sizes in the low bits), then the sizes, then the
stream.  Keep seeds few and small: libFuzzer grows the corpus itself.
The ca_file seeds are public test certificates (tests/certs.py made them;
their keys were never kept).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def env(flags: int, stream: bytes, sizes: tuple[int, ...] = (), flood: bool = False) -> bytes:
    """An input of the envelope: flags 0-15, up to 7 piece sizes 1-256, the stream."""
    assert 0 <= flags <= 15 and len(sizes) <= 7 and all(1 <= s <= 256 for s in sizes)
    head = flags << 4 | len(sizes) | (0x08 if flood else 0)
    return bytes([head, *(s - 1 for s in sizes)]) + stream


def argv(*args: str) -> bytes:
    return b"\x00".join(a.encode() for a in args)


def amp(box: dict[bytes, bytes]) -> bytes:
    # As ismon.wire.ampbox.encode_box, spelled out: this module imports no ismon.
    out = b""
    for key, value in sorted(box.items()):
        out += len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value
    return out + b"\x00\x00"


NGINX_HEAD = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 16:25:24 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
)
NGINX_GET = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 16:25:24 GMT\r\n"
    b"Content-Type: text/html\r\nContent-Length: 44\r\nLast-Modified: Sun, 06 Dec 2026 "
    b'16:25:23 GMT\r\nConnection: close\r\nETag: "6b158c73-2c"\r\nAccept-Ranges: bytes\r\n\r\n'
    b"<html><body>ismon-page-marker</body></html>\n"
)
NGINX_401 = (
    b"HTTP/1.1 401 Unauthorized\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 16:25:25 GMT"
    b"\r\nContent-Type: text/html\r\nContent-Length: 179\r\nConnection: close\r\n"
    b'WWW-Authenticate: Basic realm="ismon"\r\n\r\n'
)
NGINX_404 = (
    b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 16:25:25 GMT\r\n"
    b"Content-Type: text/html\r\nContent-Length: 153\r\nConnection: close\r\n\r\n<html>\r\n"
    b"<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1>"
    b"</center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: ok\r\n\r\n"
)
EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
)
AIOSMTPD = (
    b"220 localhost Python SMTP 1.4.6\r\n250-localhost\r\n250-8BITMIME\r\n250 HELP\r\n"
    b"250 OK\r\n221 Bye\r\n"
)
OPENSMTPD = (
    b"220 localhost ESMTP OpenSMTPD\r\n250-localhost Hello fuzz [127.0.0.1], pleased to meet you"
    b"\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 36700160\r\n250-DSN\r\n"
    b"250 HELP\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"
)
DOVECOT_POP3 = (
    b"+OK Dovecot (Debian) ready.\r\n+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
    b"AUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n+OK\r\n"
    b"-ERR [AUTH] Authentication failed.\r\n+OK Logging out\r\n"
)
DOVECOT_IMAP = (
    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
    b"AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n* CAPABILITY IMAP4rev1 SASL-IR "
    b"LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN\r\n"
    b"A1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
    b"A2 OK NOOP completed.\r\n"
)
VSFTPD = (
    b"220 (vsFTPd 3.0.3)\r\n211-Features:\r\n AUTH TLS\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n"
    b" PBSZ\r\n PROT\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n211 End\r\n"
    b"530 Please login with USER and PASS.\r\n221 Goodbye.\r\n"
)
STATUS = {
    "watch_id": "web",
    "protocol": "http",
    "command": "clp_httpmon",
    "pid": 4242,
    "target": "http://127.0.0.1:8080/ HTTP/1.1",
    "state": "watching",
    "paused_since": None,
    "consecutive_failures": 0,
    "probes": 12,
    "failures": 1,
    "skipped_ticks": 0,
    "last_probe": {
        "time": 1796000000.25,
        "ok": True,
        "message_id": None,
        "number": None,
        "phase": None,
        "latency": 0.000812,
        "reply": "HTTP/1.1 200 OK",
        "detail": "",
        "address": "127.0.0.1",
        "cert_days_left": None,
        "summary": "ok in 0.8 ms (HTTP/1.1 200 OK)",
    },
    "interval": 1,
    "timeout": 1,
    "retries": 2,
    "retry_interval": 1,
    "detection_bound": 4,
    "started": 1795999988.0,
    "uptime": 12.3,
    "paused_until": None,
    "pause_reason": None,
    "failures_by_message": {"74": 1},
    "http_status_code": 200,
    "cert_not_after": None,
}
PAUSED = {
    **STATUS,
    "state": "paused",
    "paused_since": 1796000001.0,
    "paused_until": 1796000901.0,
    "pause_reason": "kernel update",
}
# A record as ismon.watch.records writes it: the watch's own fields, then the exit's.
RECORD = {
    **{key: STATUS[key] for key in ("watch_id", "command", "protocol", "pid", "target")},
    "exit_code": 1,
    "meaning": "the server failed",
    "time": 1796000000.5,
    "last_failure": "The clp_httpmon has detected network error(select error[110]). [ID:web]",
    **{key: STATUS[key] for key in ("probes", "failures", "started", "uptime")},
}


def _json(document: object) -> bytes:
    return (json.dumps(document, sort_keys=True) + "\n").encode()


def seeds(ca_pems: list[bytes]) -> dict[str, dict[str, bytes]]:
    return {
        "http": {
            "nginx-head": env(0, NGINX_HEAD),
            "nginx-get": env(0b0101, NGINX_GET),
            "nginx-401-split": env(0, NGINX_401, (17, 5, 200)),
            "nginx-404-get-limit16": env(0b0001, NGINX_404, (64, 1, 256)),
            "crafted-chunked-get": env(0b0101, CHUNKED, (40,)),
            "crafted-early-hints": env(0b0101, EARLY_HINTS),
            "crafted-http10-close": env(0b0011, b"HTTP/1.0 200\r\n\r\nbody until close"),
            "crafted-header-flood": env(0, b"X-A: b\r\n", flood=True),
        },
        "http_body": {
            "chunked-extensions": env(0b1000, b"4;name=v\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"),
            "chunked-trailer-split": env(0b0000, b"a\r\n0123456789\r\n0\r\nT: 1\r\n\r\n", (3, 7)),
            "length": env(0b1001, b"\x00\x05hello"),
            "close": env(0b0110, b"<html>until the close</html>\n"),
            "chunked-flood": env(0b1000, b"1\r\nx\r\n", flood=True),
        },
        "smtp": {
            "aiosmtpd": env(0, AIOSMTPD),
            "opensmtpd-split": env(0, OPENSMTPD, (5, 64)),
            "crafted-421": env(0, b"421-4.3.2 Shutting down\r\n421 4.3.2 try later\r\n"),
            "crafted-flood": env(0, b"250-x\r\n", flood=True),
        },
        "pop3": {
            # Replies: greeting, CAPA (multi-line), USER, PASS, QUIT: pattern 0b0010.
            "dovecot": env(0b0010, DOVECOT_POP3),
            "dovecot-split": env(0b0010, DOVECOT_POP3, (7, 1, 30)),
            "crafted-dot-stuffed": env(0b0010, b"+OK hi\r\n+OK\r\n..dot\r\nX\r\n.\r\n"),
            "crafted-flood": env(0b1111, b"+OK\r\nline\r\n", flood=True),
        },
        "imap": {
            "dovecot": env(0, DOVECOT_IMAP),
            "dovecot-split": env(0, DOVECOT_IMAP, (2, 50)),
            "crafted-login-echo": env(
                0, b'* BAD echo A1 LOGIN watcher "pa\\"ss\\\\w0rd"\r\nA1 NO pa"ss\\w0rd\r\n'
            ),
            "crafted-literal": env(0, b"* 1 FETCH (BODY[] {5}\r\nhello)\r\nA2 OK done\r\n"),
            "crafted-continuation": env(0, b"+ idling\r\n* 3 EXISTS\r\nA3 OK IDLE done\r\n"),
        },
        "ftp": {
            "vsftpd": env(0, VSFTPD),
            "vsftpd-split": env(0, VSFTPD, (9, 3)),
            "crafted-banner": env(0, b"220-Welcome\r\nfree text\r\n220-more\r\n220 ready\r\n"),
            "crafted-flood": env(0, b"220-x\r\n", flood=True),
        },
        "ampbox": {
            "status-answer": env(0, amp({b"_answer": b"1", b"status": _json(STATUS)})),
            "error": env(
                0,
                amp(
                    {
                        b"_error": b"1",
                        b"_error_code": b"REFUSED",
                        b"_error_description": b"no",
                    }
                ),
            ),
            "two-boxes-split": env(
                0, amp({b"_ask": b"2", b"_command": b"x"}) + amp({b"_answer": b"1"}), (3,)
            ),
            "small-bound": env(0b0001, amp({b"k": b"v" * 100})),
        },
        "control_answer": {
            "stop": env(0b0000, amp({b"_answer": b"1"})),
            "pause": env(0b0001, amp({b"_answer": b"1", b"changed": b"True"})),
            "continue-refused": env(
                0b0010,
                amp({b"_error": b"1", b"_error_code": b"REFUSED", b"_error_description": b"no"}),
            ),
            "status-split": env(0b0011, amp({b"_answer": b"1", b"status": _json(STATUS)}), (5,)),
            "other-tag-first": env(
                0b0010, amp({b"_answer": b"7"}) + amp({b"_answer": b"1", b"changed": b"False"})
            ),
        },
        "status_document": {
            "watching": env(0, _json(STATUS)),
            "paused-split": env(0, _json(PAUSED), (100, 3)),
            "crafted-types": env(0, b'{"uptime": "x", "detection_bound": null, "last_probe": 1}'),
        },
        "last_record": {
            "ended": _json(RECORD),
            "stopped": _json({**RECORD, "exit_code": 0, "meaning": "stopped on request"}),
            "crafted-old": b'{"exit_code": 4, "time": 1, "command": "clp_smtpmon"}',
        },
        "control_command_line": {
            "clp-stop": env(1, argv("web", "--stop", "-r", "20")),
            "clp-kill-after": env(1, argv("web", "--stop", "-r", "20", "--kill-after", "10")),
            "clp-smtp-disp": env(2, argv("--disp", "mail")),
            "ismon-status-json": env(0, argv("status", "web", "--json")),
            "ismon-pause-for": env(0, argv("pause", "web", "--for", "15m", "--reason", "update")),
            "ismon-status-all": env(0, argv("status", "--state-dir", "/tmp/x")),
        },
        "watch_command_line": {
            "http-2004": env(
                0,
                argv("web1", "-s", "www.example.com", "-n", "80", "-i", "60", "-c", "3")
                + b"\x00"
                + argv("-r", "10", "-h", "/index.html"),
            ),
            "http-checks": env(
                0,
                argv("web", "--method", "GET", "--expect-body", "ok", "--expect-header")
                + b"\x00"
                + argv("Server: nginx", "--expect-status", "200-399,401", "--max-body", "1024")
                + b"\x00"
                + argv("--host-header", "example.com:8080", "--auth-file", "a", "--check"),
            ),
            "http-tls": env(0, argv("web", "--tls", "--ca-file", "ca.pem", "--servername", "x")),
            "smtp-starttls": env(1, argv("mail", "--starttls", "--helo", "me", "--grace", "5")),
            "pop3-auth": env(2, argv("pop", "--auth-file", "f", "--starttls", "--max-pause", "2h")),
            "imap-stop": env(3, argv("imap", "--stop", "-r", "20", "--kill-after", "10")),
            "ftp-help": env(4, argv("--help")),
            "http-version": env(0, argv("--version")),
            "http-bad": env(0, argv("web", "-i", "0", "--retry-interval", "0")),
        },
        "auth_file": {
            "good": env(0, b"watcher:ismon-Pw-7f3a9c2e\n"),
            "crlf-0400": env(1, b"user:pass word\r\n"),
            "open-mode": env(2, b"watcher:secret\n"),
            "latin1": env(0, b"user:p\xe4ss\n"),
        },
        "ca_file": {
            **{f"real-test-ca-{n}.pem": pem for n, pem in enumerate(ca_pems[:1])},
            "real-bundle.pem": b"# two CAs\n" + b"\n".join(ca_pems[:2]),
            "crafted-no-cert.pem": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        },
    }


def main() -> None:
    from tempfile import TemporaryDirectory

    from tests.certs import make_test_certs

    with TemporaryDirectory() as folder:
        certs = make_test_certs(Path(folder))
        pems = [certs.ca.read_bytes(), certs.self_signed.cert.read_bytes()]
    for target, files in seeds(pems).items():
        where = CORPUS / target
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        for name, data in files.items():
            (where / name).write_bytes(data)
        print(f"{where.relative_to(HERE.parent.parent)}: {len(files)} seeds")


if __name__ == "__main__":
    main()
