# -*- test-case-name: tests.test_metrics -*-
"""
The watches as Prometheus metrics (docs/metrics.md): one pure renderer
that every face shares, C{ismon metrics} (L{ismon.control.commands}), its
textfile and the C{ismon exporter}.

A face builds one L{WatchSnapshot} per watch ID of the state folder: the
status document of a running watch that answered its control socket (the
C{ismon status --json} object, L{ismon.core.status.WatchStatus.as_dict}), or,
for a watch that does not run, the record of its last exit (C{ID.last},
L{ismon.state.record.read_last_exit}); neither when a running watch did not
answer in time or an ended one left no usable record.  L{render} turns
them into the classic text format (C{version=0.0.4}) or OpenMetrics 1.0.

The names follow blackbox_exporter's (C{probe_success},
C{probe_duration_seconds}, C{probe_http_status_code}) with an C{ismon_}
prefix, and every series has the labels C{watch}, C{protocol} and
C{target}.  A status document comes over a socket, so any value in it may
be missing or of the wrong type: such a value gives no sample, never an
exception, and the text stays valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence

# Neither attrs nor typing: `ismon metrics` runs on the control commands'
# fast path, which imports neither (docs/performance.md, "Control
# commands"); these names serve only annotations.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CLASSIC_CONTENT_TYPE",
    "FAMILIES",
    "OPENMETRICS_CONTENT_TYPE",
    "Family",
    "WatchSnapshot",
    "render",
]

CLASSIC_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

#: The states of the C{ismon_watch_state} stateset (ismon.watch.schedule.WatchState values).
WATCH_STATES = ("watching", "retrying", "paused")


class WatchSnapshot:
    """
    One watch ID of the state folder, as a face found it.  A frozen value,
    written out by hand as L{ismon.state.folder.StateDir} is (no attrs on the fast
    path).

    @ivar watch_id: the ID (the C{watch} label).
    @ivar status: the status document of the running watch, when it answered.
    @ivar last_exit: the record of its last exit, when it does not run and
        left one.  A face passes it only for a watch that does not run: the
        record of an earlier run says nothing of the running one.
    """

    __slots__ = ("last_exit", "status", "watch_id")
    watch_id: str
    status: Mapping[str, Any] | None
    last_exit: Mapping[str, Any] | None

    def __init__(
        self,
        watch_id: str,
        status: Mapping[str, Any] | None,
        last_exit: Mapping[str, Any] | None,
    ) -> None:
        object.__setattr__(self, "watch_id", watch_id)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "last_exit", last_exit)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"WatchSnapshot is frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"WatchSnapshot is frozen: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WatchSnapshot):
            return NotImplemented
        return (self.watch_id, self.status, self.last_exit) == (
            other.watch_id,
            other.status,
            other.last_exit,
        )

    __hash__ = None  # type: ignore[assignment]  # it holds dicts

    def __repr__(self) -> str:
        return (
            f"WatchSnapshot(watch_id={self.watch_id!r}, status={self.status!r},"
            f" last_exit={self.last_exit!r})"
        )


# -- reading a snapshot defensively -----------------------------------------


def _number(value: object) -> float | None:
    """C{value} if it is a number (and not a boolean), else L{None}."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _protocol_of(snapshot: WatchSnapshot) -> str:
    if snapshot.status is not None:
        return _text(snapshot.status.get("protocol"))
    record = _mapping(snapshot.last_exit)
    protocol = _text(record.get("protocol"))
    if protocol or not record:
        return protocol
    # Records written before they named the protocol name the command,
    # clp_NAMEmon (ismon.core.protocols, which costs attrs to import).
    command = _text(record.get("command"))
    if command.startswith("clp_") and command.endswith("mon") and len(command) > 7:
        return command[4:-3]
    return ""


def _target_of(snapshot: WatchSnapshot) -> str:
    if snapshot.status is not None:
        return _text(snapshot.status.get("target"))
    return _text(_mapping(snapshot.last_exit).get("target"))


# A sample: its labels beyond watch/protocol/target, and its value.
_Sample = tuple[tuple[tuple[str, str], ...], float]
_Samples = Callable[[WatchSnapshot], Iterator[_Sample]]


def _field(document: Callable[[WatchSnapshot], object], key: str) -> _Samples:
    """One sample: the number at C{key} of a document of the snapshot, if it is one."""

    def samples(snapshot: WatchSnapshot) -> Iterator[_Sample]:
        value = _mapping(document(snapshot)).get(key)
        # A probe's "ok" is a boolean: 1 or 0.
        number = int(value) if isinstance(value, bool) and key == "ok" else _number(value)
        if number is not None:
            yield (), number

    return samples


def _status(snapshot: WatchSnapshot) -> object:
    return snapshot.status


def _last_probe(snapshot: WatchSnapshot) -> object:
    return _mapping(snapshot.status).get("last_probe")


def _last_exit(snapshot: WatchSnapshot) -> object:
    return snapshot.last_exit


def _up(snapshot: WatchSnapshot) -> Iterator[_Sample]:
    yield (), int(snapshot.status is not None)


def _http_status_code(snapshot: WatchSnapshot) -> Iterator[_Sample]:
    # As blackbox_exporter: 0 when the last probe got no status line.
    if snapshot.status is not None and _protocol_of(snapshot) == "http":
        code = _number(snapshot.status.get("http_status_code"))
        yield (), code if code is not None else 0


def _watch_state(snapshot: WatchSnapshot) -> Iterator[_Sample]:
    if snapshot.status is None:
        return
    state = snapshot.status.get("state")
    for name in WATCH_STATES:
        yield (("ismon_watch_state", name),), int(state == name)


def _message_order(key: str) -> tuple[int, int, str]:
    # Message ids are small numbers; int() of a key of over 4300 digits
    # raises (Python's limit on integer strings), so long ones sort as text.
    numeric = key.isascii() and key.isdigit() and len(key) <= 18
    return (0, int(key), "") if numeric else (1, 0, key)


def _probe_failures(snapshot: WatchSnapshot) -> Iterator[_Sample]:
    counts = _mapping(_mapping(snapshot.status).get("failures_by_message"))
    for key in sorted((k for k in counts if isinstance(k, str)), key=_message_order):
        value = _number(counts[key])
        if value is not None:
            yield (("message", key),), value


class Family:
    """
    One metric family.  C{name} is the OpenMetrics family name (a
    counter's samples add C{_total}); a name ending in C{_seconds} has that
    unit.  C{kind} is gauge, counter or stateset.
    """

    __slots__ = ("help", "kind", "name", "samples")

    def __init__(self, name: str, kind: str, help: str, samples: _Samples) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.samples = samples

    @property
    def unit(self) -> str:
        return "seconds" if self.name.endswith("_seconds") else ""

    def __repr__(self) -> str:
        return f"Family({self.name!r}, {self.kind!r})"


#: Every family, in the order of the text (docs/metrics.md holds the same table).
FAMILIES: tuple[Family, ...] = (
    Family("ismon_up", "gauge", "1 when the watch answered on its control socket.", _up),
    Family(
        "ismon_probe_success",
        "gauge",
        "1 when the last probe succeeded, 0 when it failed.",
        _field(_last_probe, "ok"),
    ),
    Family(
        "ismon_probe_duration_seconds",
        "gauge",
        "How long the last probe took.",
        _field(_last_probe, "latency"),
    ),
    Family(
        "ismon_probe_http_status_code",
        "gauge",
        "HTTP status code of the last probe's reply (0: none).",
        _http_status_code,
    ),
    Family(
        "ismon_watch_state",
        "stateset",
        "What the watch is doing: watching, retrying or paused.",
        _watch_state,
    ),
    Family(
        "ismon_consecutive_failures",
        "gauge",
        "Failed probes since the last success.",
        _field(_status, "consecutive_failures"),
    ),
    Family("ismon_probes", "counter", "Probes run by the watch.", _field(_status, "probes")),
    Family(
        "ismon_probe_failures",
        "counter",
        "Failed probes, by the id of their catalogue message.",
        _probe_failures,
    ),
    Family(
        "ismon_detection_bound_seconds",
        "gauge",
        "Longest time from a stall to the watch's exit.",
        _field(_status, "detection_bound"),
    ),
    Family(
        "ismon_tls_cert_expiry_timestamp_seconds",
        "gauge",
        "When the server certificate last seen expires (notAfter).",
        _field(_status, "cert_not_after"),
    ),
    Family(
        "ismon_paused_until_timestamp_seconds",
        "gauge",
        "When the running pause ends by itself.",
        _field(_status, "paused_until"),
    ),
    Family(
        "ismon_last_exit_code",
        "gauge",
        "Exit code of the watch's last run (it does not run).",
        _field(_last_exit, "exit_code"),
    ),
    Family(
        "ismon_last_exit_timestamp_seconds",
        "gauge",
        "When the watch's last run exited.",
        _field(_last_exit, "time"),
    ),
)


# -- the text -------------------------------------------------------------------


def _clean(text: str) -> str:
    # A lone surrogate (from JSON's \ud800) cannot be written as UTF-8.
    return text.encode("utf-8", "replace").decode("utf-8")


def _label_value(text: str) -> str:
    return _clean(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help_text(text: str, *, openmetrics: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
    return escaped.replace('"', '\\"') if openmetrics else escaped


def _value(value: float) -> str:
    if isinstance(value, int):
        if abs(value) < 2**53:
            return str(value)
        try:
            value = float(value)
        except OverflowError:
            value = math.inf if value > 0 else -math.inf
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _counter_value(value: float) -> bool:
    # OpenMetrics: a counter's total is never negative nor NaN.
    return not math.isnan(value) and value >= 0


def render(snapshots: Sequence[WatchSnapshot], *, openmetrics: bool = False) -> str:
    """
    The text of C{snapshots}: classic (C{text/plain; version=0.0.4}) or,
    with C{openmetrics}, OpenMetrics 1.0 ending in C{# EOF}.  Families in
    the order of L{FAMILIES}, each once, its series by watch ID; no
    timestamps.  Of snapshots with the same ID, the first counts.
    """
    unique: dict[str, WatchSnapshot] = {}
    for snapshot in snapshots:
        unique.setdefault(snapshot.watch_id, snapshot)
    watches = [unique[key] for key in sorted(unique)]
    labels = {
        snapshot.watch_id: (
            f'watch="{_label_value(snapshot.watch_id)}",'
            f'protocol="{_label_value(_protocol_of(snapshot))}",'
            f'target="{_label_value(_target_of(snapshot))}"'
        )
        for snapshot in watches
    }
    lines: list[str] = []
    for family in FAMILIES:
        counter = family.kind == "counter"
        sample_name = family.name + "_total" if counter else family.name
        body: list[str] = []
        for snapshot in watches:
            for extra, value in family.samples(snapshot):
                if counter and not _counter_value(value):
                    continue
                more = "".join(f',{name}="{_label_value(text)}"' for name, text in extra)
                body.append(f"{sample_name}{{{labels[snapshot.watch_id]}{more}}} {_value(value)}")
        if not body:
            continue
        help_text = _help_text(family.help, openmetrics=openmetrics)
        if openmetrics:
            lines.append(f"# HELP {family.name} {help_text}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            if family.unit:
                lines.append(f"# UNIT {family.name} {family.unit}")
        else:
            # The classic format names a counter's family after its samples
            # and has no stateset: its convention is a 0/1 gauge per state.
            kind = "gauge" if family.kind == "stateset" else family.kind
            lines.append(f"# HELP {sample_name} {help_text}")
            lines.append(f"# TYPE {sample_name} {kind}")
        lines.extend(body)
    if openmetrics:
        lines.append("# EOF")
    return "".join(line + "\n" for line in lines)
