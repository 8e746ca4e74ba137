"""
L{ismon.wire.tcp}: the C{--send} text, the C{--expect} regex it takes or
refuses (one line each, nothing on stderr), when a match counts (the same
verdict however the bytes were cut), the bound, and the engine's speed on
the patterns that make a backtracking engine take seconds.
"""

from __future__ import annotations

import os
import re
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ismon.wire.tcp import (
    MAX_EXPECT_BYTES,
    MAX_PATTERN_CHARS,
    MAX_SEND_BYTES,
    ExpectMatcher,
    ExpectOutcome,
    ExpectVerdict,
    TcpInputError,
    compile_expect,
    show_bytes,
    unescape_send,
)

# One RE2 search of 64 KiB takes well under a millisecond; this leaves room
# for a loaded 2-core machine.
FAST = 0.05


def run(pattern: str, *chunks: bytes, close: bool = False) -> ExpectVerdict | None:
    """Feed C{chunks} in turn; then, with C{close}, end the stream."""
    matcher = ExpectMatcher(compile_expect(pattern))
    for chunk in chunks:
        verdict = matcher.feed(chunk)
        if verdict is not None:
            return verdict
    return matcher.end() if close else None


# --------------------------------------------------------------------------
# --send


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        (r"PING\r\n", b"PING\r\n"),
        (r"a\\b", b"a\\b"),
        (r"\\r", b"\\r"),
        (r"\n", b"\n"),
        ("no escapes", b"no escapes"),
        ("héllo", "héllo".encode()),
        # A command-line argument that was not UTF-8 is sent as it was.
        (os.fsdecode(b"\xff\xfe"), b"\xff\xfe"),
    ],
)
def test_send_text(text: str, sent: bytes) -> None:
    assert unescape_send(text) == sent


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            r"a\tb",
            r"unknown escape \t at character 2 of 'a\\tb': only \r, \n and \\ are understood",
        ),
        (r"\x41", r"unknown escape \x at character 1"),
        (r"\0", r"unknown escape \0"),
        ("\\", "ends with a lone backslash"),
        ("PING\\r\\n" + "\\" * 5, "ends with a lone backslash"),
        ("", "the text to send is empty"),
        ("x" * (MAX_SEND_BYTES + 1), f"{MAX_SEND_BYTES + 1} bytes, over {MAX_SEND_BYTES}"),
    ],
    ids=lambda value: value[:20],
)
def test_send_text_refused(text: str, why: str) -> None:
    with pytest.raises(TcpInputError) as raised:
        unescape_send(text)
    assert why in str(raised.value)
    assert "\n" not in str(raised.value)


def test_send_text_at_the_bound() -> None:
    assert len(unescape_send("x" * MAX_SEND_BYTES)) == MAX_SEND_BYTES


# --------------------------------------------------------------------------
# --expect: what is refused


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "the regex is empty"),
        ("x" * (MAX_PATTERN_CHARS + 1), f"over {MAX_PATTERN_CHARS}"),
        ("café", "is not ASCII: the regex matches bytes, write other bytes as \\xHH"),
        ("(a)\\1", "invalid escape sequence: \\1 (back-references are not supported)"),
        ("(?P<n>a)(?P=n)", "(back-references are not supported)"),
        ("a(?=b)", "invalid perl operator: (?= (look-around is not supported)"),
        ("a(?!b)", "(look-around is not supported)"),
        ("(?<=a)b", "(look-around is not supported)"),
        ("(?<!a)b", "(look-around is not supported)"),
        ("a++", "bad repetition operator: ++ (possessive quantifiers are not supported)"),
        ("(?>a)", "(atomic groups are not supported)"),
        ("a\\Z", "invalid escape sequence: \\Z (write \\z for the end of the input)"),
        ("[a", "missing ]: [a"),
        ("a{1001}", "invalid repetition size"),
        ("\\x{100}", "invalid escape sequence"),
        ("a*", "matches the empty input: it would pass before the server sent anything"),
        ("^", "matches the empty input"),
        ("$", "matches the empty input"),
        ("(?m)^$", "matches the empty input"),
        ("\\B", "matches the empty input"),
    ],
    ids=lambda value: value[:20],
)
def test_expect_refused_in_one_line(
    pattern: str, why: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TcpInputError) as raised:
        compile_expect(pattern)
    message = str(raised.value)
    assert why in message
    assert "\n" not in message and message.isprintable()
    # RE2 would log its compile errors to stderr.
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    "pattern",
    [r"\+PONG", r"(?i)^220 .*esmtp", r"[\x00-\x08]", r"\xff\xfe", r"(?s)a.b", r"\bOK\b", r"\C"],
)
def test_expect_accepted(pattern: str) -> None:
    assert compile_expect(pattern).text == pattern


# --------------------------------------------------------------------------
# --expect: when a match counts


def test_a_match_split_over_one_byte_writes_is_found() -> None:
    matcher = ExpectMatcher(compile_expect(r"\+PONG\r\n"))
    stream = b"+PONG\r\n"
    verdicts = [matcher.feed(stream[i : i + 1]) for i in range(len(stream))]
    assert verdicts[:-1] == [None] * (len(stream) - 1)
    verdict = verdicts[-1]
    assert verdict is not None and verdict.ok
    assert verdict.outcome is ExpectOutcome.MATCHED
    assert verdict.reason == 'matched "+PONG\\r\\n" at byte 0'
    assert verdict.span == (0, 7) and verdict.received == 7
    assert matcher.searches == 7


def test_a_banner_matches_without_a_close() -> None:
    verdict = run(r"^220 ", b"220 mail.example.test ESMTP\r\n")
    assert verdict is not None and verdict.ok


def test_end_of_input_only_at_the_close() -> None:
    """C{$} and C{\\z} wait for the close: the server may send more."""
    assert run(r"^\+PONG$", b"+PONG") is None
    assert run(r"^\+PONG\z", b"+PONG") is None
    verdict = run(r"^\+PONG$", b"+PONG", close=True)
    assert verdict is not None and verdict.ok
    # Without (?m), $ is the end of the input: not before the CRLF.
    verdict = run(r"^\+PONG$", b"+PONG\r\n", close=True)
    assert verdict is not None and verdict.outcome is ExpectOutcome.CLOSED


def test_multiline_end_of_line_waits_for_the_lf() -> None:
    assert run(r"(?m)^\+PONG\r?$", b"+PONG", b"\r") is None
    verdict = run(r"(?m)^\+PONG\r?$", b"+PONG", b"\r", b"\n")
    assert verdict is not None and verdict.reason == 'matched "+PONG\\r" at byte 0'


def test_word_boundaries_wait_for_the_next_byte() -> None:
    assert run(r"OK\b", b"OK") is None
    assert run(r"OK\b", b"OK", b"AY") is None
    assert (v := run(r"OK\b", b"OK", b" ")) is not None and v.ok
    assert (v := run(r"OK\b", b"OK", close=True)) is not None and v.ok
    assert run(r"OK\B", b"OK") is None
    assert (v := run(r"OK\B", b"OK", b"AY")) is not None and v.ok
    assert (v := run(r"OK\B", b"OK", close=True)) is not None and not v.ok


def test_bytes_are_latin1_characters() -> None:
    """Each byte is one character: . and \\xHH see bytes, never UTF-8 sequences."""
    assert (v := run(r"^.\xa9$", "é".encode(), close=True)) is not None and v.ok
    assert (v := run(r"\xc3\xa9", "café".encode())) is not None and v.span == (3, 5)
    assert (v := run(r"[\x00-\x1f]", b"abc\x00")) is not None and v.span == (3, 4)
    assert run(r"a.b", b"a\nb", close=True) == ExpectVerdict(
        ExpectOutcome.CLOSED,
        'the connection closed after 3 bytes without a match: "a\\nb"',
        3,
    )
    assert (v := run(r"(?s)a.b", b"a\nb")) is not None and v.ok


# A few patterns, and streams of the letters they care about.
PATTERNS = [
    r"ab",
    r"a$",
    r"^b",
    r"(?m)^a$",
    r"(?m)b$",
    r"\bab\b",
    r"a\B",
    r"\Bb",
    r"a\z",
    r"(a|b)+c",
    r"a\r?\n",
    r"(?i)AB",
]


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    st.sampled_from(PATTERNS),
    st.binary(max_size=30).map(lambda b: bytes(b"ab c\r\nAB"[x % 8] for x in b)),
    st.lists(st.integers(1, 30), max_size=30),
)
def test_the_verdict_does_not_depend_on_how_the_bytes_were_cut(
    pattern: str, stream: bytes, cuts: list[int]
) -> None:
    """
    Whatever the cuts, the read passes exactly when the regex matches the
    whole stream at its close (a match counts only when no later byte can
    undo it).
    """
    compiled = compile_expect(pattern)
    matcher = ExpectMatcher(compiled)
    verdict = None
    at = 0
    for size in [*cuts, len(stream)]:
        verdict = matcher.feed(stream[at : at + size])
        at += size
        if verdict is not None or at >= len(stream):
            break
    if verdict is None:
        verdict = matcher.end()
    # RE2 itself on the whole stream, its true end included, is the oracle.
    whole = compiled.regex.search(stream) is not None
    assert verdict.ok is whole, (pattern, stream, cuts, verdict)


def test_after_a_verdict_nothing_changes() -> None:
    matcher = ExpectMatcher(compile_expect("x"))
    verdict = matcher.feed(b"x")
    assert verdict is not None
    assert matcher.feed(b"y" * 100) is verdict
    assert matcher.end() is verdict
    assert matcher.received == 101
    assert matcher.searches == 1


# --------------------------------------------------------------------------
# The bound


def test_no_match_in_the_first_64_kib() -> None:
    matcher = ExpectMatcher(compile_expect("x"))
    assert matcher.feed(b"a" * MAX_EXPECT_BYTES) is None  # the bound, not past it yet
    verdict = matcher.feed(b"a")
    assert verdict == ExpectVerdict(
        ExpectOutcome.LIMIT, "no match in the first 65536 bytes", MAX_EXPECT_BYTES
    )
    assert len(matcher.kept) == MAX_EXPECT_BYTES


def test_a_match_at_the_cut_is_judged_with_the_byte_after_it() -> None:
    fill = b"." * (MAX_EXPECT_BYTES - 2)
    verdict = run(r"ab\b", fill + b"ab" + b" rest")
    assert (
        verdict is not None
        and verdict.ok
        and verdict.span == (MAX_EXPECT_BYTES - 2, MAX_EXPECT_BYTES)
    )
    verdict = run(r"ab\b", fill + b"ab" + b"c rest")
    assert verdict is not None and verdict.outcome is ExpectOutcome.LIMIT
    # The cut is not the end of the input.
    verdict = run(r"ab\z", fill + b"ab" + b"c")
    assert verdict is not None and verdict.outcome is ExpectOutcome.LIMIT
    # A match beyond the bound is not looked for.
    verdict = run(r"x", b"." * MAX_EXPECT_BYTES + b"x")
    assert verdict is not None and verdict.outcome is ExpectOutcome.LIMIT


def test_a_flood_keeps_memory_bounded() -> None:
    """10 MiB without a match: decided past the bound, memory never grows with it."""
    chunk = b"\x00flood" * 10_000
    matcher = ExpectMatcher(compile_expect(r"\+PONG"))
    tracemalloc.start()
    try:
        verdicts = [matcher.feed(chunk) for _ in range(10 * 1024 * 1024 // len(chunk))]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdicts[0] is None
    assert verdicts[-1] is not None and verdicts[-1].outcome is ExpectOutcome.LIMIT
    assert peak < 256 * 1024, peak
    assert matcher.received >= 10 * 1024 * 1024 - len(chunk)
    assert matcher.searches == 2


def test_a_smaller_bound() -> None:
    matcher = ExpectMatcher(compile_expect("x"), limit=10)
    assert matcher.feed(b"0123456789abc") == ExpectVerdict(
        ExpectOutcome.LIMIT, "no match in the first 10 bytes", 10
    )
    with pytest.raises(ValueError):
        ExpectMatcher(compile_expect("x"), limit=0)


def test_the_close_and_the_deadline_say_what_arrived() -> None:
    matcher = ExpectMatcher(compile_expect("x"))
    assert matcher.describe() == "nothing received"
    assert matcher.end() == ExpectVerdict(
        ExpectOutcome.CLOSED, "the connection closed before the server sent anything", 0
    )
    matcher = ExpectMatcher(compile_expect("x"))
    matcher.feed(b"-ERR \x1b[31m\r\n")
    assert matcher.describe() == 'no match in the 12 bytes received: "-ERR \\x1b[31m\\r\\n"'
    verdict = matcher.end()
    assert verdict.reason == (
        'the connection closed after 12 bytes without a match: "-ERR \\x1b[31m\\r\\n"'
    )
    assert not verdict.ok


def test_show_bytes() -> None:
    assert show_bytes(b'a\\b"\t\x7f\xff') == 'a\\\\b"\\t\\x7f\\xff'
    assert show_bytes(b"x" * 100) == "x" * 80 + "..."
    assert show_bytes(b"\x00" * 30, limit=8) == "\\x00\\x00..."


# --------------------------------------------------------------------------
# The engine: linear on hostile patterns and input


# Classic catastrophic-backtracking patterns, each with an input that makes
# a backtracking engine explore every way to split it.
HOSTILE = [
    (r"(a+)+$", b"a" * (MAX_EXPECT_BYTES - 1) + b"b"),
    (r"(a|aa)+$", b"a" * (MAX_EXPECT_BYTES - 1) + b"b"),
    (r"(a|a?)+b", b"a" * MAX_EXPECT_BYTES),
    (r"(x+x+)+y", b"x" * MAX_EXPECT_BYTES),
    (r"^(\w+\s?)+$", b"word " * (MAX_EXPECT_BYTES // 5) + b"!"),
    (r"(.*a){20}", b"a" * MAX_EXPECT_BYTES),
    (r"(?s)(.*){1,1000}x", b"y" * MAX_EXPECT_BYTES),
    # A DFA blow-up: 2^20 states (RE2 caps its cache and stays linear).
    (
        r"[a-q][^u-z]{20}x",
        bytes(b"abcdefghijklmnopqrstuvwxyz"[(i * 7919) % 26] for i in range(MAX_EXPECT_BYTES)),
    ),
]


@pytest.mark.parametrize(("pattern", "stream"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_patterns_stay_fast(pattern: str, stream: bytes) -> None:
    """One search of 64 KiB of the worst input, through the matcher: under FAST seconds."""
    matcher = ExpectMatcher(compile_expect(pattern))
    start = time.perf_counter()
    matcher.feed(stream)
    matcher.end()
    assert time.perf_counter() - start < FAST
    assert matcher.searches <= 2


def test_a_backtracking_engine_is_slower_on_a_few_bytes_than_re2_on_64_kib() -> None:
    """
    Python's re on 22 bytes of the first hostile case against RE2 on 64 KiB
    of it: re loses (it doubles with each byte; bench/regex_cost.py shows
    seconds from about 25 bytes on).
    """
    pattern, stream = HOSTILE[0]
    start = time.perf_counter()
    assert re.search(pattern.encode(), b"a" * 21 + b"b") is None
    backtracking = time.perf_counter() - start
    matcher = ExpectMatcher(compile_expect(pattern))
    start = time.perf_counter()
    matcher.feed(stream)
    assert matcher.end().outcome is ExpectOutcome.CLOSED
    linear = time.perf_counter() - start
    assert backtracking > 5 * linear, (backtracking, linear)


def test_a_byte_at_a_time_costs_one_search_per_byte() -> None:
    """
    The cost of a trickle: one search per arrival, each linear in what was
    kept.  8 KiB one byte at a time against the worst pattern stays well
    under a second (the full 64 KiB bound: bench/regex_cost.py).
    """
    matcher = ExpectMatcher(compile_expect(r"(x+x+)+y"), limit=8192)
    start = time.process_time()
    for _ in range(8192):
        assert matcher.feed(b"x") is None
    verdict = matcher.feed(b"x")
    assert time.process_time() - start < 2.0
    assert verdict is not None and verdict.outcome is ExpectOutcome.LIMIT
    assert matcher.searches == 8193
