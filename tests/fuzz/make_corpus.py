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
# DNS answers from unbound 1.17.1 serving the test zone (tests/dns_server.py),
# captured on loopback 2026-12-06 for queries of ID 0x1092 (the dns target's
# DNS_ID); the _TCP ones as read from the stream, their length prefix first.
UNBOUND_A = bytes.fromhex(
    "109285800001000200000000037777770569736d6f6e04746573740000010001c00c000100010000012c"
    "00047f000001c00c000100010000012c00047f000002"
)
UNBOUND_AAAA = bytes.fromhex(
    "109285800001000100000000037777770569736d6f6e047465737400001c0001c00c001c00010000012c"
    "001000000000000000000000000000000001"
)
UNBOUND_MX = bytes.fromhex(
    "1092858000010001000000000569736d6f6e047465737400000f0001c00c000f00010000012c0009000a"
    "046d61696cc00c"
)
UNBOUND_TXT = bytes.fromhex(
    "109285800001000100000000037478740569736d6f6e04746573740000100001c00c001000010000012c"
    "000c0b763d73706631202d616c6c"
)
UNBOUND_SOA = bytes.fromhex(
    "1092858000010001000000000569736d6f6e04746573740000060001c00c000600010000012c0027036e"
    "7331c00c0a686f73746d6173746572c00c78a3f17500000e1000000258000151800000012c"
)
UNBOUND_SRV = bytes.fromhex(
    "109285800001000100000000045f736970045f7463700569736d6f6e04746573740000210001c00c0021"
    "00010000012c00160000000513c4037369700569736d6f6e047465737400"
)
UNBOUND_NS = bytes.fromhex(
    "1092858000010001000000000569736d6f6e04746573740000020001c00c000200010000012c0006036e7331c00c"
)
UNBOUND_PTR = bytes.fromhex(
    "109285800001000100000000023130013201300331393207696e2d61646472046172706100000c0001c0"
    "0c000c000100000e10001104686f73740569736d6f6e047465737400"
)
UNBOUND_CNAME_ONLY_A = bytes.fromhex(
    "10928580000100010000000005616c6961730569736d6f6e04746573740000010001c00c000500010000"
    "012c000603777777c012"
)
UNBOUND_CNAME = bytes.fromhex(
    "10928580000100010000000005616c6961730569736d6f6e04746573740000050001c00c000500010000"
    "012c000603777777c012"
)
UNBOUND_NXDOMAIN = bytes.fromhex(
    "109285830001000000010000076e6f74686572650569736d6f6e04746573740000010001c01400060001"
    "0000012c0027036e7331c0140a686f73746d6173746572c01478a3f17500000e10000002580001518000"
    "00012c"
)
UNBOUND_REFUSED = bytes.fromhex(
    "10928585000100000000000003777777077265667573656404746573740000010001"
)
UNBOUND_NODATA = bytes.fromhex(
    "109285800001000000010000037478740569736d6f6e04746573740000010001c010000600010000012c"
    "0027036e7331c0100a686f73746d6173746572c01078a3f17500000e1000000258000151800000012c"
)
UNBOUND_BIG_UDP_TC = bytes.fromhex(
    "109287800001000000000000036269670569736d6f6e04746573740000100001"
)
UNBOUND_A_TCP = bytes.fromhex(
    "0040109285800001000200000000037777770569736d6f6e04746573740000010001c00c000100010000"
    "012c00047f000001c00c000100010000012c00047f000002"
)
UNBOUND_MX_TCP = bytes.fromhex(
    "00311092858000010001000000000569736d6f6e047465737400000f0001c00c000f00010000012c0009"
    "000a046d61696cc00c"
)
# big.ismon.test TXT over TCP: 8 strings of 200 letters (1654 bytes).
UNBOUND_BIG_TCP = bytes.fromhex(
    "0674109285800001000100000000036269670569736d6f6e04746573740000100001c00c001000010000012c0648"
) + b"".join(b"\xc8" + bytes([letter]) * 200 for letter in b"abcdefgh")
# redis-server 7.0.15 (tests/redis_server.py), loopback, 2026-12-06: PING,
# INFO server, and HELLO 9 (refused).
REDIS_PONG = b"+PONG\r\n"
REDIS_INFO = (
    b"$609\r\n# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n"
    b"redis_git_dirty:0\r\nredis_build_id:ae4d7c971a948f0\r\n"
    b"redis_mode:standalone\r\nos:Linux 6.18.44-fc-v1300 x86_64\r\n"
    b"arch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\n"
    b"multiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\n"
    b"gcc_version:12.2.0\r\nprocess_id:16741\r\nprocess_supervised:no\r\n"
    b"run_id:1fc21578d22378f47a8b3ef5f4b66e7cfaa56a86\r\ntcp_port:33681\r\n"
    b"server_time_usec:1796586601445575\r\nuptime_in_seconds:1\r\n"
    b"uptime_in_days:0\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:1424489\r\n"
    b"executable:/usr/bin/redis-server\r\n"
    b"config_file:/tmp/tmpxpfxg7mm/r/redis.conf\r\nio_threads_active:0\r\n\r\n"
)
REDIS_ERROR = b"-NOPROTO unsupported protocol version\r\n"

# Crafted DNS answers, for what unbound does not send, from its A answer
# (header, then the question www.ismon.test IN A, 32 bytes).
_A_HEAD = UNBOUND_A[:32]
_A_RECORD = bytes.fromhex("000100010000012c00047f000001")
DNS_POINTER_LOOP = (
    bytes.fromhex("109285800001000100000000") + _A_HEAD[12:] + b"\xc0\x20" + _A_RECORD
)
DNS_WRONG_ID = b"\x10\x93" + UNBOUND_A[2:]
DNS_NO_QR = UNBOUND_A[:2] + b"\x05" + UNBOUND_A[3:]
DNS_EMPTY = bytes.fromhex("109285800001000000000000") + _A_HEAD[12:]
DNS_TC_CUT_SHORT = UNBOUND_A[:2] + b"\x87" + UNBOUND_A[3:50]
# alias.ismon.test A: the CNAME to www.ismon.test (at byte 46), then its A.
DNS_CNAME_CHAIN = (
    bytes.fromhex("109285800001000200000000") + UNBOUND_CNAME_ONLY_A[12:] + b"\xc0\x2e" + _A_RECORD
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


# The dns target's queries, by their index in tests.fuzz.targets._DNS_QUERIES
# (the stream's first byte), and its flags: bit 0 over TCP, bit 1 --expect.
(Q_A, Q_AAAA, Q_MX, Q_TXT, Q_SOA, Q_SRV, Q_CNAME, Q_NS, Q_PTR) = range(9)
(Q_ALIAS_A, Q_NXDOMAIN, Q_BIG_TXT, Q_REFUSED, Q_NODATA, Q_ROOT_NS, Q_CASE_A) = range(9, 16)
TCP, EXPECT = 0b01, 0b10
# The tcp target's flags: bits 0-2 the regex (7: the stream's, up to a NUL), bit 3 a clean close.
CLOSES = 0b1000


def dns(
    flags: int, query: int, stream: bytes, sizes: tuple[int, ...] = (), flood: bool = False
) -> bytes:
    return env(flags, bytes([query]) + stream, sizes, flood)


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
        "dns": {
            "unbound-a-expect": dns(EXPECT, Q_A, UNBOUND_A),
            "unbound-aaaa-expect": dns(EXPECT, Q_AAAA, UNBOUND_AAAA),
            "unbound-mx-expect": dns(EXPECT, Q_MX, UNBOUND_MX),
            "unbound-txt": dns(0, Q_TXT, UNBOUND_TXT),
            "unbound-soa-expect": dns(EXPECT, Q_SOA, UNBOUND_SOA),
            "unbound-srv-expect": dns(EXPECT, Q_SRV, UNBOUND_SRV),
            "unbound-cname-expect": dns(EXPECT, Q_CNAME, UNBOUND_CNAME),
            "unbound-ns": dns(0, Q_NS, UNBOUND_NS),
            "unbound-ptr-expect": dns(EXPECT, Q_PTR, UNBOUND_PTR),
            "unbound-cname-only": dns(0, Q_ALIAS_A, UNBOUND_CNAME_ONLY_A),
            "unbound-nxdomain": dns(0, Q_NXDOMAIN, UNBOUND_NXDOMAIN),
            "unbound-truncated": dns(0, Q_BIG_TXT, UNBOUND_BIG_UDP_TC),
            "unbound-refused": dns(0, Q_REFUSED, UNBOUND_REFUSED),
            "unbound-nodata": dns(0, Q_NODATA, UNBOUND_NODATA),
            "unbound-big-tcp-split": dns(TCP | EXPECT, Q_BIG_TXT, UNBOUND_BIG_TCP, (100, 3)),
            "unbound-a-tcp-bytewise": dns(TCP | EXPECT, Q_A, UNBOUND_A_TCP),
            "unbound-mx-tcp-then-more": dns(TCP, Q_MX, UNBOUND_MX_TCP + UNBOUND_A_TCP, (30,)),
            "unbound-a-any-case": dns(0, Q_CASE_A, UNBOUND_A),
            "crafted-pointer-loop": dns(0, Q_A, DNS_POINTER_LOOP),
            "crafted-wrong-id": dns(EXPECT, Q_A, DNS_WRONG_ID),
            "crafted-no-qr": dns(0, Q_A, DNS_NO_QR),
            "crafted-empty-answer": dns(0, Q_A, DNS_EMPTY),
            "crafted-tc-cut-short": dns(0, Q_A, DNS_TC_CUT_SHORT),
            "crafted-cname-chain-expect": dns(EXPECT, Q_ALIAS_A, DNS_CNAME_CHAIN),
            "crafted-tcp-closed-early": dns(TCP, Q_A, UNBOUND_A_TCP[:40], (7,)),
            "crafted-tcp-flood": dns(TCP, Q_A, b"\xff\xff\xc0\x0c", flood=True),
        },
        "tcp": {
            "redis-pong": env(CLOSES | 0, REDIS_PONG),
            "redis-pong-anchored-bytewise": env(CLOSES | 1, REDIS_PONG),
            "redis-pong-multiline-reset": env(2, REDIS_PONG),
            "redis-info-split": env(CLOSES | 3, REDIS_INFO, (13, 200)),
            "redis-error-closed": env(CLOSES | 0, REDIS_ERROR),
            "crafted-smtp-banner": env(CLOSES | 4, b"220 mail.example.com ESMTP Postfix\r\n"),
            "crafted-ssh-banner": env(5, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", (4,)),
            "crafted-word-ok": env(6, b"+OK\r\n"),
            "crafted-flood-no-match": env(CLOSES | 0, REDIS_ERROR, flood=True),
            "crafted-own-regex-end": env(CLOSES | 7, rb"^\+PONG\r\n$" + b"\x00" + REDIS_PONG),
            "crafted-own-regex-refused": env(7, rb"(a)\1" + b"\x00aa"),
            "crafted-own-regex-word-at-cut": env(7, rb"PONG\b" + b"\x00+PONG", (5,)),
        },
        "tcp_send": {
            "redis-ping": env(0, rb"PING\r\n"),
            "two-commands": env(0, rb"HELLO 3\r\nAUTH watcher pw\r\n"),
            "backslash": env(0, rb"back\\slash\n"),
            "unknown-escape": env(0, rb"bad \t escape"),
            "lone-backslash": env(0, b"lone\\"),
            "not-utf8": env(0, b"caf\xe9\\r\\n"),
            "many-line-ends": env(0, rb"\r\n" * 1000),
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
