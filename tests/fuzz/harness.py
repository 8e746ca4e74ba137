"""
What every fuzz target shares, in the standard library alone (no ismon, no
atheris): the input envelope, whole-versus-split outcomes, retained-memory
checks, the side-effect guard and the per-input bounds.

The envelope (docs/fuzzing.md, "Inputs").  A stream arrives in pieces, so
the first byte of every input says how to cut the rest:

  - bits 0-2: how many size bytes follow (0-7); each is a piece length,
    1-256, and they are used in turn until the stream is cut;
  - bit 3: flood: repeat the stream until it is at least L{FLOOD_BYTES}
    long, so that small inputs reach the parsers' 64 KiB bounds;
  - bits 4-7: four flags the target reads (HEAD or GET, multi-line or not,
    which protocol's command line ...).

With no size bytes the stream is fed one byte at a time (the most
adversarial cut).  A flood is cut in pieces of 64 times the sizes, or of
L{FLOOD_PIECE} bytes: fine cuts are the small inputs' business, the
bounds the floods'.
Every stream target feeds the stream whole too and requires the same
outcome both ways: an incremental parser must not depend on where the
network cut its input.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

__all__ = [
    "FLOOD_BYTES",
    "FLOOD_PIECE",
    "READ_SIZE",
    "Envelope",
    "Forbidden",
    "HarnessFailure",
    "Refused",
    "argv_of",
    "check",
    "cut",
    "envelope",
    "guarded",
    "holds_at_most",
    "outcome",
    "overhead",
    "retained",
    "scratch_dir",
    "take_overhead",
    "unguarded",
    "utf8_safe",
]

#: A flooded stream is at least this long: past every parser's 64 KiB
#: reply bound, so the bounds themselves get exercised.
FLOOD_BYTES = 66 * 1024
#: Piece size of a flooded stream given no sizes (prime: the cuts wander).
FLOOD_PIECE = 1021
#: Streams up to this long are fed one byte at a time when no sizes are given.
BYTEWISE_LIMIT = 4096
#: What Twisted reads from a socket at once: a stream fed "whole" arrives
#: in pieces of this size, as it would from the best of networks.
READ_SIZE = 65536


class HarnessFailure(AssertionError):
    """A target's own check failed: a crash as much as an undeclared exception."""


_OVERHEAD = [0.0]


@contextlib.contextmanager
def overhead() -> Iterator[None]:
    """
    Time spent here is the harness's own (its checks, its reference
    parsers, writing the file under test): it does not count against an
    input's time bound (L{take_overhead}).
    """
    start = time.thread_time()
    try:
        yield
    finally:
        _OVERHEAD[0] += time.thread_time() - start


def take_overhead() -> float:
    """CPU seconds spent in L{overhead} blocks since the last call."""
    spent, _OVERHEAD[0] = _OVERHEAD[0], 0.0
    return spent


def check(condition: object, what: str) -> None:
    """Fail the input (a crash for libFuzzer) unless C{condition} holds."""
    if not condition:
        raise HarnessFailure(what)


@dataclass(frozen=True)
class Envelope:
    flags: int
    sizes: tuple[int, ...]
    flood: bool
    stream: bytes

    def pieces(self) -> list[bytes]:
        """The stream cut as the envelope says (see the module docstring)."""
        return cut(self.stream, self.sizes)


def cut(stream: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    """
    C{stream} in pieces of C{sizes}, used in turn; with no sizes, one byte
    at a time.  A stream longer than L{BYTEWISE_LIMIT} (a flood) is cut in
    pieces of 64 x the sizes, or of L{FLOOD_PIECE} bytes with none.
    """
    if len(stream) > BYTEWISE_LIMIT:
        # A flood: 64 x the sizes (64 bytes to 16 KiB), so that it takes a
        # thousand feeds or so, not 66 thousand of the harness's own costs.
        sizes = tuple(64 * size for size in sizes) or (FLOOD_PIECE,)
    elif not sizes:
        sizes = (1,)
    pieces: list[bytes] = []
    at = 0
    turn = 0
    while at < len(stream):
        size = sizes[turn % len(sizes)]
        pieces.append(stream[at : at + size])
        at += size
        turn += 1
    return pieces


def envelope(data: bytes, *, flood: bool = True) -> Envelope:
    """
    Read the envelope of one fuzz input (see the module docstring).  A
    target whose input is no network stream (a command line) passes
    C{flood=False}: the bit is then ignored.
    """
    if not data:
        return Envelope(0, (), False, b"")
    head = data[0]
    count = head & 0x07
    sizes = tuple(size + 1 for size in data[1 : 1 + count])
    stream = data[1 + count :]
    flood = flood and bool(head & 0x08)
    if flood and stream:
        stream = stream * (FLOOD_BYTES // len(stream) + 1)
    return Envelope(head >> 4, sizes, flood, stream)


@dataclass(frozen=True)
class Refused:
    """
    A declared refusal, as compared between the whole and the split run:
    by its type only.  Its reason may name the first fault in arrival
    order, which a different cut may legitimately change (a NUL byte or a
    bad start: both refused); when the refusal comes (while reading, or
    only at the close) is part of what a reader returns and compared.
    """

    kind: str
    reason: str = field(compare=False)


def outcome(run: Callable[[], Any], declared: tuple[type[BaseException], ...]) -> Any:
    """
    What C{run()} returned, or a L{Refused} for a declared exception (its
    type and its C{reason} attribute, else its text).  Anything else
    propagates: a crash.
    """
    try:
        return run()
    except declared as e:
        return Refused(type(e).__name__, str(getattr(e, "reason", e)))


def holds_at_most(obj: object, bound: int, what: str) -> None:
    """C{obj} retains at most C{bound} bytes (L{retained}); the check is overhead."""
    with overhead():
        held = retained(obj)
    check(held <= bound, f"{what} holds {held} bytes (bound {bound})")


def retained(obj: object, _depth: int = 0) -> int:
    """
    Bytes and characters an object holds in its attributes: the lengths of
    every bytes/str value, in lists, tuples and dicts too (two levels
    deep).  A bound on this after each feed is the parser's memory bound,
    checked without knowing its attribute names.
    """
    if isinstance(obj, bytes | bytearray | str):
        return len(obj)
    if _depth > 3:
        return 0
    if isinstance(obj, list | tuple):
        if all(map(isinstance, obj, repeat(bytes | str))):
            return sum(map(len, obj))  # lines of text: the common case, in C
        return sum(retained(item, _depth + 1) for item in obj)
    if isinstance(obj, dict):
        return sum(retained(k, _depth + 1) + retained(v, _depth + 1) for k, v in obj.items())
    if _depth > 0:
        return 0
    fields: dict[str, Any] = {}
    with contextlib.suppress(TypeError):
        fields.update(vars(obj))
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                fields[name] = getattr(obj, name)
    return sum(retained(value, 1) for value in fields.values())


def utf8_safe(text: str, what: str) -> None:
    """Text a command prints must encode (a lone surrogate would raise in print)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise HarnessFailure(f"{what} cannot be printed as UTF-8: {e}") from None


def argv_of(stream: bytes) -> list[str]:
    """A command line from bytes: NUL-separated arguments, decoded as Python decodes argv."""
    if not stream:
        return []
    return [os.fsdecode(arg) for arg in stream.split(b"\x00")]


# -- the scratch folder and the side-effect guard -----------------------------

_SCRATCH: Path | None = None


def scratch_dir() -> Path:
    """
    This process's private folder for the files a target writes (the
    --auth-file, --ca-file and .last under test): the one named by
    C{ISMON_FUZZ_SCRATCH} (a fuzzing process: libFuzzer's exit skips
    at-exit code, so its driver removes it), else a new one removed at exit.
    """
    global _SCRATCH
    given = os.environ.get("ISMON_FUZZ_SCRATCH")
    if _SCRATCH is None and given:
        # The driver's (tests.fuzz.__main__): it removes the folder after the job.
        _SCRATCH = Path(given)
        _SCRATCH.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _SCRATCH is None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        _SCRATCH = Path(tempfile.mkdtemp(prefix="ismon-fuzz-", dir=base))
        import atexit
        import shutil

        atexit.register(shutil.rmtree, _SCRATCH, True)
    return _SCRATCH


class Forbidden(HarnessFailure):
    """A target did something a parser must never do (network, processes, files)."""


_GUARDING = False
_HOOKED = False
# Events a parser must never cause.  Audit events are documented in the
# Python library reference, "Audit events table".
_NEVER = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.kill",
    "os.killpg",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.utime",
    "shutil.",
    "pty.",
    "urllib.",
    "http.client.",
    "ftplib.",
    "smtplib.",
    "syslog.",
    "ctypes.",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _readable_roots() -> tuple[str, ...]:
    """Where a guarded target may read: the scratch folder and Python's own code."""
    roots = {str(scratch_dir()), sys.prefix, sys.base_prefix, sys.exec_prefix}
    roots.update(entry for entry in sys.path if entry and os.path.isabs(entry))
    roots.add(str(Path(__file__).resolve().parents[2]))  # the checkout
    return tuple(sorted(roots))


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _GUARDING:
        return
    if event.startswith(_NEVER):
        raise Forbidden(f"a fuzz target caused the audit event {event} {args!r:.200}")
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], str | bytes):
        path = os.fsdecode(args[0])
        mode = args[1] if event == "open" and len(args) > 1 else None
        flags = args[2] if event == "open" and len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        scratch = (str(scratch_dir()),)
        if writes and not _inside(path, scratch):
            raise Forbidden(f"a fuzz target opened {path!r} for writing")
        if not writes and not _inside(path, _ROOTS):
            raise Forbidden(f"a fuzz target read {path!r} (outside its scratch folder)")


_ROOTS: tuple[str, ...] = ()


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """
    While inside, any network use, process start, signal, file change, or a
    read outside the scratch folder and Python's own code raises
    L{Forbidden} (an audit hook: PEP 578).  The hook, once added, stays for
    the process's life, idle outside this block.
    """
    global _GUARDING, _HOOKED, _ROOTS
    if not _HOOKED:
        _ROOTS = _readable_roots()
        sys.addaudithook(_hook)
        _HOOKED = True
    outer = _GUARDING
    _GUARDING = True
    try:
        yield
    finally:
        _GUARDING = outer


@contextlib.contextmanager
def unguarded() -> Iterator[None]:
    """The harness's own file writes (the file under test) inside a guarded target."""
    global _GUARDING
    outer = _GUARDING
    _GUARDING = False
    try:
        yield
    finally:
        _GUARDING = outer
