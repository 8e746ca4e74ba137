"""
L{ismon.metrics.render} on snapshots built by hand: both text formats,
label escaping, an ended watch, a pause with an expiry, TLS, a watch that
did not answer; property tests that any status document renders to text
that keeps the structural rules of the formats (checked here, and by
prometheus_client's strict OpenMetrics parser); C{promtool check metrics}
once on a rich document.  And the status fields the metrics read, from a
real L{ismon.watch.service.WatchService} on a fake clock.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_classic

from ismon.core.catalogue import MessageId
from ismon.core.result import Phase, ProbeResult
from ismon.core.timing import Timing
from ismon.metrics.render import (
    CLASSIC_CONTENT_TYPE,
    FAMILIES,
    OPENMETRICS_CONTENT_TYPE,
    WatchSnapshot,
    render,
)
from ismon.testing import FakeWatch, answered

NOT_AFTER = 1_900_000_000.0
PAUSED_UNTIL = 1_800_000_900.5


def running(watch_id: str = "web", **changes: Any) -> WatchSnapshot:
    """A running HTTP watch's status document, as C{ismon status --json} gives it."""
    status: dict[str, Any] = {
        "watch_id": watch_id,
        "protocol": "http",
        "command": "clp_httpmon",
        "pid": 4242,
        "target": "https://www.example.com:443/ HTTP/1.1",
        "state": "watching",
        "paused_since": None,
        "consecutive_failures": 0,
        "probes": 12,
        "failures": 3,
        "skipped_ticks": 0,
        "last_probe": {
            "time": 1_800_000_000.0,
            "ok": True,
            "message_id": None,
            "number": None,
            "phase": None,
            "latency": 0.0123,
            "reply": "HTTP/1.1 200 OK",
            "detail": "",
            "address": "127.0.0.1:443",
            "cert_days_left": 80,
            "summary": "ok in 12.3 ms (HTTP/1.1 200 OK)",
        },
        "interval": 60,
        "timeout": 10,
        "retries": 3,
        "retry_interval": 60,
        "detection_bound": 250,
        "started": 1_799_999_000.0,
        "uptime": 1000.0,
        "paused_until": None,
        "pause_reason": None,
        "failures_by_message": {"74": 2, "83": 1},
        "http_status_code": 200,
        "cert_not_after": NOT_AFTER,
    }
    status.update(changes)
    return WatchSnapshot(watch_id, status, None)


def smtp(watch_id: str = "mail") -> WatchSnapshot:
    snapshot = running(
        watch_id,
        protocol="smtp",
        command="clp_smtpmon",
        target="smtp://127.0.0.1:25",
        http_status_code=None,
        cert_not_after=None,
        state="retrying",
        consecutive_failures=1,
        failures_by_message={"74": 1},
    )
    return snapshot


def ended(watch_id: str = "gone", code: int = 1) -> WatchSnapshot:
    record = {
        "watch_id": watch_id,
        "command": "clp_httpmon",
        "protocol": "http",
        "pid": 99,
        "target": "http://127.0.0.1:8080/ HTTP/1.1",
        "exit_code": code,
        "meaning": "the server failed",
        "time": 1_800_000_100.25,
        "last_failure": "The clp_httpmon has detected network error(select error[110]). [ID:gone]",
        "probes": 5,
        "failures": 3,
        "started": 1_800_000_000.0,
        "uptime": 100.0,
    }
    return WatchSnapshot(watch_id, None, record)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of classic C{text}, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parse_classic(text)
        for sample in family.samples
    }


def value(text: str, name: str, watch: str, **extra: str) -> float | None:
    """The value of one series of classic C{text} (L{None}: no such series)."""
    for (found, labels), number in samples(text).items():
        given_labels = dict(labels)
        if found == name and given_labels.get("watch") == watch:
            if all(given_labels.get(k) == v for k, v in extra.items()):
                return number
    return None


RICH = [running(), smtp(), ended(), WatchSnapshot("stuck", None, None)]


# -- the structural rules, checked line by line ------------------------------

_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*",?)*)\} (\S+)$'
)
_LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\\n]|\\.)*)"')


def check_structure(text: str, *, openmetrics: bool) -> list[str]:
    """
    The rules both formats share, and each one's own: one HELP and TYPE
    (and, in OpenMetrics, UNIT for C{_seconds}) per family before its
    samples, families never interleaved, every sample of the family open
    above it, counters' samples ending in C{_total}, the labels C{watch},
    C{protocol}, C{target} first on every sample, C{# EOF} last in
    OpenMetrics only.  Returns the sample names, in order.
    """
    lines = text.split("\n")
    assert lines[-1] == "", "the text ends with a newline"
    lines = lines[:-1]
    if openmetrics:
        assert lines and lines[-1] == "# EOF"
        lines = lines[:-1]
    assert "# EOF" not in lines
    declared: set[str] = set()
    family = kind = ""
    names: list[str] = []
    for line in lines:
        if line.startswith("# "):
            keyword, name, rest = line[2:].split(" ", 2)
            if keyword == "HELP":
                assert name not in declared, f"family {name} twice (interleaved?)"
                declared.add(name)
                family, kind = name, ""
            elif keyword == "TYPE":
                assert name == family
                kind = rest
                allowed = ("gauge", "counter", "stateset") if openmetrics else ("gauge", "counter")
                assert kind in allowed
                if kind == "counter":
                    assert name.endswith("_total") != openmetrics, name
            else:
                assert openmetrics and keyword == "UNIT" and name == family
                assert rest == "seconds" and name.endswith("_seconds")
            continue
        match = _SAMPLE.match(line)
        assert match is not None, f"not a sample line: {line!r}"
        name = match.group(1)
        expected = family + "_total" if openmetrics and kind == "counter" else family
        assert name == expected, f"{name} outside its family {family}"
        labels = [label for label, _ in _LABEL.findall(match.group(2))]
        assert labels[:3] == ["watch", "protocol", "target"], line
        assert len(set(labels)) == len(labels)
        names.append(name)
    if openmetrics:
        for family_name in declared:
            if family_name.endswith("_seconds"):
                assert f"# UNIT {family_name} seconds" in lines
    return names


# -- hand-built snapshots ------------------------------------------------------


def test_content_types() -> None:
    assert CLASSIC_CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert OPENMETRICS_CONTENT_TYPE == "application/openmetrics-text; version=1.0.0; charset=utf-8"


def test_running_http_watch() -> None:
    text = render([running()])
    check_structure(text, openmetrics=False)
    labels = 'watch="web",protocol="http",target="https://www.example.com:443/ HTTP/1.1"'
    for line in (
        f"ismon_up{{{labels}}} 1",
        f"ismon_probe_success{{{labels}}} 1",
        f"ismon_probe_duration_seconds{{{labels}}} 0.0123",
        f"ismon_probe_http_status_code{{{labels}}} 200",
        f'ismon_watch_state{{{labels},ismon_watch_state="watching"}} 1',
        f'ismon_watch_state{{{labels},ismon_watch_state="retrying"}} 0',
        f'ismon_watch_state{{{labels},ismon_watch_state="paused"}} 0',
        f"ismon_consecutive_failures{{{labels}}} 0",
        f"ismon_probes_total{{{labels}}} 12",
        f'ismon_probe_failures_total{{{labels},message="74"}} 2',
        f'ismon_probe_failures_total{{{labels},message="83"}} 1',
        f"ismon_detection_bound_seconds{{{labels}}} 250",
        f"ismon_tls_cert_expiry_timestamp_seconds{{{labels}}} 1900000000.0",
    ):
        assert line in text.splitlines(), line
    assert "# TYPE ismon_watch_state gauge" in text
    assert "# TYPE ismon_probes_total counter" in text
    assert "ismon_paused_until" not in text
    assert "ismon_last_exit" not in text


def test_openmetrics_of_the_same_watch() -> None:
    text = render([running()], openmetrics=True)
    check_structure(text, openmetrics=True)
    assert text.endswith("\n# EOF\n")
    assert "# TYPE ismon_watch_state stateset" in text
    assert "# TYPE ismon_probes counter" in text
    assert "# UNIT ismon_probe_duration_seconds seconds" in text
    families = {family.name: family for family in parse_om(text)}
    assert families["ismon_watch_state"].type == "stateset"
    assert families["ismon_probes"].samples[0].name == "ismon_probes_total"
    assert families["ismon_probes"].samples[0].value == 12
    assert families["ismon_tls_cert_expiry_timestamp_seconds"].unit == "seconds"


def test_families_in_order_then_watches_by_id() -> None:
    text = render([smtp("b"), running("c"), running("a")])
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    order = [f.name + ("_total" if f.kind == "counter" else "") for f in FAMILIES]
    assert names == [name for name in order if name in names]
    up = [line for line in text.splitlines() if line.startswith("ismon_up{")]
    assert [re.search(r'watch="(\w+)"', line).group(1) for line in up] == ["a", "b", "c"]  # type: ignore[union-attr]
    assert render([running("c"), running("a"), smtp("b")]) == text


def test_label_values_are_escaped() -> None:
    target = 'http://h/a\\b "quoted"\nnext line'
    text = render([running(target=target)])
    assert 'target="http://h/a\\\\b \\"quoted\\"\\nnext line"' in text
    check_structure(text, openmetrics=False)
    for parse, om in ((parse_classic, False), (parse_om, True)):
        families = list(parse(render([running(target=target)], openmetrics=om)))
        assert {s.labels["target"] for f in families for s in f.samples} == {target}


def test_a_lone_surrogate_is_replaced() -> None:
    """JSON may carry C{\\ud800}; UTF-8 cannot: the text stays writable."""
    text = render([running(target="a\ud800b")], openmetrics=True)
    text.encode("utf-8")
    assert 'target="a?b"' in text


def test_ended_watch_stays_visible() -> None:
    text = render([ended()])
    labels = 'watch="gone",protocol="http",target="http://127.0.0.1:8080/ HTTP/1.1"'
    assert text.splitlines() == [
        "# HELP ismon_up 1 when the watch answered on its control socket.",
        "# TYPE ismon_up gauge",
        f"ismon_up{{{labels}}} 0",
        "# HELP ismon_last_exit_code Exit code of the watch's last run (it does not run).",
        "# TYPE ismon_last_exit_code gauge",
        f"ismon_last_exit_code{{{labels}}} 1",
        "# HELP ismon_last_exit_timestamp_seconds When the watch's last run exited.",
        "# TYPE ismon_last_exit_timestamp_seconds gauge",
        f"ismon_last_exit_timestamp_seconds{{{labels}}} 1800000100.25",
    ]


def test_record_without_protocol_names_it_by_its_command() -> None:
    """Records written before they named the protocol: clp_smtpmon is smtp."""
    record = dict(ended().last_exit or {}, command="clp_smtpmon")
    del record["protocol"]
    text = render([WatchSnapshot("old", None, record)])
    assert 'ismon_up{watch="old",protocol="smtp",' in text


def test_watch_that_did_not_answer() -> None:
    assert render([WatchSnapshot("stuck", None, None)]) == (
        "# HELP ismon_up 1 when the watch answered on its control socket.\n"
        "# TYPE ismon_up gauge\n"
        'ismon_up{watch="stuck",protocol="",target=""} 0\n'
    )


def test_nothing_to_show() -> None:
    assert render([]) == ""
    assert render([], openmetrics=True) == "# EOF\n"


def test_paused_with_an_expiry() -> None:
    text = render([running(state="paused", paused_since=1.8e9, paused_until=PAUSED_UNTIL)])
    assert value(text, "ismon_paused_until_timestamp_seconds", "web") == PAUSED_UNTIL
    assert value(text, "ismon_watch_state", "web", ismon_watch_state="paused") == 1
    assert value(text, "ismon_watch_state", "web", ismon_watch_state="watching") == 0


def test_smtp_watch_has_no_http_status_code() -> None:
    text = render([smtp()])
    assert "ismon_probe_http_status_code" not in text
    assert "ismon_tls_cert_expiry" not in text
    assert value(text, "ismon_watch_state", "mail", ismon_watch_state="retrying") == 1


def test_http_watch_without_a_status_line_shows_0() -> None:
    """As blackbox_exporter: no status line (a connect error) is code 0."""
    text = render([running(http_status_code=None)])
    assert value(text, "ismon_probe_http_status_code", "web") == 0


def test_failed_last_probe() -> None:
    last = dict(running().status["last_probe"], ok=False, message_id=74)  # type: ignore[index]
    text = render([running(last_probe=last)])
    assert value(text, "ismon_probe_success", "web") == 0


def test_no_probe_yet() -> None:
    text = render([running(last_probe=None, probes=0)])
    assert "ismon_probe_success" not in text
    assert "ismon_probe_duration_seconds" not in text
    assert value(text, "ismon_probes_total", "web") == 0


def test_wrong_types_give_no_sample() -> None:
    """A status value of the wrong type is left out; the text stays valid."""
    text = render(
        [
            running(
                probes="12",
                detection_bound=True,
                last_probe=[1, 2],
                failures_by_message={"74": "x", "83": 2.5, "x\ny": 1},
                state=None,
                cert_not_after=float("nan"),
                paused_until=float("inf"),
                consecutive_failures=10**400,
                target=5,
            )
        ]
    )
    check_structure(text, openmetrics=False)
    assert "ismon_probes_total" not in text
    assert "ismon_detection_bound_seconds" not in text
    assert 'message="83"} 2.5' in text
    assert 'message="x\\ny"} 1' in text
    assert "ismon_tls_cert_expiry_timestamp_seconds" in text and "} NaN" in text
    assert "} +Inf" in text
    assert 'target=""' in text


def test_negative_counter_is_left_out() -> None:
    text = render([running(probes=-1)], openmetrics=True)
    assert "ismon_probes_total" not in text


def test_first_snapshot_of_an_id_counts() -> None:
    assert render([running(), ended("web")]) == render([running()])


def test_snapshot_is_a_frozen_value() -> None:
    snapshot = running()
    with pytest.raises(AttributeError):
        snapshot.watch_id = "other"  # type: ignore[misc]
    assert snapshot == running()
    assert snapshot != ended()
    assert "watch_id='web'" in repr(snapshot)


# -- any status document -------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = [
    "protocol",
    "target",
    "state",
    "consecutive_failures",
    "probes",
    "detection_bound",
    "paused_until",
    "http_status_code",
    "cert_not_after",
]
_status = st.fixed_dictionaries(
    {},
    optional={
        **{key: _json for key in _KEYS},
        "protocol": st.sampled_from(["http", "smtp", ""]) | _json,
        "state": st.sampled_from(["watching", "retrying", "paused", "idle"]) | _json,
        "last_probe": st.fixed_dictionaries(
            {}, optional={"ok": st.booleans() | _json, "latency": st.floats() | _json}
        )
        | _json,
        "failures_by_message": st.dictionaries(
            st.text(max_size=4), st.integers() | st.floats() | _json, max_size=4
        )
        | _json,
    },
)
_record = st.fixed_dictionaries(
    {"exit_code": st.integers(), "time": st.floats()},
    optional={"command": st.text(max_size=12), "protocol": _json, "target": _json},
)
_snapshots = st.lists(
    st.builds(
        WatchSnapshot,
        st.text(min_size=1, max_size=12),
        st.none() | _status,
        st.none() | _record,
    ),
    max_size=4,
)


@given(_snapshots)
def test_any_status_renders_valid_classic_text(snapshots: list[WatchSnapshot]) -> None:
    text = render(snapshots)
    text.encode("utf-8")
    names = check_structure(text, openmetrics=False)
    parsed = sum(len(family.samples) for family in parse_classic(text))
    assert parsed == len(names)
    assert names.count("ismon_up") == len({s.watch_id for s in snapshots})


@given(_snapshots)
def test_any_status_renders_valid_openmetrics(snapshots: list[WatchSnapshot]) -> None:
    text = render(snapshots, openmetrics=True)
    names = check_structure(text, openmetrics=True)
    # The strict parser: it refuses interleaved families, a counter
    # sample without _total, a wrong UNIT, a missing # EOF.
    parsed = list(parse_om(text))
    assert sum(len(family.samples) for family in parsed) == len(names)
    watch_labels = {s.labels["watch"] for f in parsed for s in f.samples if f.name == "ismon_up"}
    cleaned = {s.watch_id.encode("utf-8", "replace").decode("utf-8") for s in snapshots}
    assert watch_labels == cleaned


@given(st.text(max_size=30))
def test_any_label_value_round_trips(text: str) -> None:
    cleaned = text.encode("utf-8", "replace").decode("utf-8")
    for parse, om in ((parse_classic, False), (parse_om, True)):
        families = list(parse(render([running(target=text)], openmetrics=om)))
        assert {s.labels["target"] for f in families for s in f.samples} == {cleaned}


# -- promtool, once per format ----------------------------------------------


def promtool() -> str:
    """
    The promtool program (Debian's prometheus package); skip without it,
    except as root in CI, where scripts/test.sh installed it.
    """
    found = shutil.which("promtool")
    if found:
        return found
    reason = "promtool is not installed (apt-get install prometheus)"
    if os.environ.get("CI") == "true" and os.geteuid() == 0:
        pytest.fail(f"{reason}; CI runs as root and must have it")
    pytest.skip(reason)


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rich() -> list[WatchSnapshot]:
    return [
        *RICH,
        running("paused", state="paused", paused_until=PAUSED_UNTIL, target='a "b"\\\nc'),
    ]


def test_promtool_accepts_the_classic_text() -> None:
    checked = promtool_check(render(rich()))
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_the_openmetrics_text() -> None:
    """
    promtool 2.42 (Debian 12) reads the classic format only: it refuses
    OpenMetrics' C{stateset} type and its counter families whose samples
    end in C{_total}.  prometheus_client's strict parser checks this one
    (Prometheus's own scrape of it is the exporter's test).
    """
    text = render(rich(), openmetrics=True)
    families = {family.name: family for family in parse_om(text)}
    assert families["ismon_watch_state"].type == "stateset"
    assert len(families["ismon_up"].samples) == 5
    checked = promtool_check(text)
    if checked.returncode != 0:
        assert 'unknown metric type "stateset"' in checked.stdout + checked.stderr


# -- the status fields the metrics read, from a real service ------------------


def not_found(code: int) -> ProbeResult:
    return ProbeResult.failure(
        MessageId.INVALID_STATUS, Phase.PARSE, number=code, reply=f"HTTP/1.1 {code} Not Found"
    )


def test_service_counts_failures_by_message_and_keeps_the_status_code() -> None:
    timed_out = ProbeResult.failure(MessageId.SELECT_ERROR, Phase.WAIT, number=110)
    with FakeWatch(
        [answered("HTTP/1.1 200 OK"), not_found(404), timed_out, not_found(404)],
        then=answered("HTTP/1.0 204 No Content"),
        timing=Timing(interval=10, retries=5, timeout=1, retry_interval=2),
    ) as watch:
        watch.advance(0)
        status = watch.service.status()
        assert status["http_status_code"] == 200
        watch.advance(10)
        assert watch.service.status()["http_status_code"] == 404
        watch.advance(2)
        # The last probe got no status line.
        assert watch.service.status()["http_status_code"] is None
        watch.advance(30)
        status = watch.service.status()
    assert watch.messages.count(83) == 2
    assert status["failures_by_message"] == {"74": 1, "83": 2}
    assert status["failures"] == 3
    assert status["http_status_code"] == 204
    assert status["cert_not_after"] is None


def test_smtp_service_has_no_http_status_code() -> None:
    with FakeWatch([answered("250 2.0.0 Ok")], protocol="smtp") as watch:
        watch.advance(0)
        assert watch.service.status()["http_status_code"] is None


def test_service_keeps_the_last_certificate_seen() -> None:
    seen = ProbeResult(ok=True, latency=0.01, cert_days_left=80, cert_not_after=NOT_AFTER)
    refused = ProbeResult.failure(MessageId.CONNECT_ERROR, Phase.CONNECT, number=111)
    with FakeWatch([seen], then=refused) as watch:
        watch.advance(0)
        assert watch.service.status()["cert_not_after"] == NOT_AFTER
        watch.advance(10)
        # The connection failed before TLS: the certificate is still the last one seen.
        assert watch.service.status()["cert_not_after"] == NOT_AFTER


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("HTTP/1.1 200 OK", 200),
        ("HTTP/1.0 503", 503),
        ("HTTP/1.1 2000 x", None),
        ("250 2.0.0 Ok", None),
        ("", None),
        ("garbage HTTP/1.1 200 OK", None),
    ],
)
def test_http_status_of_a_result(reply: str, code: int | None) -> None:
    assert ProbeResult(ok=True, latency=0, reply=reply).http_status() == code


def test_certificate_not_after_of_a_transport(certs: Any) -> None:
    from cryptography import x509
    from OpenSSL import crypto

    from ismon.probes.tls import certificate_not_after

    pem = certs.valid.cert.read_bytes()
    expected = x509.load_pem_x509_certificate(pem).not_valid_after_utc

    class Transport:
        def getPeerCertificate(self) -> crypto.X509:
            return crypto.load_certificate(crypto.FILETYPE_PEM, pem)

    found = certificate_not_after(Transport())
    assert found == expected.timestamp()
    assert found > datetime.datetime.now(datetime.UTC).timestamp()
    assert certificate_not_after(object()) is None
    assert not math.isnan(found)


def test_mapping_status_is_accepted() -> None:
    """A face may hand any mapping (the exporter's AMP answer, decoded)."""

    class Frozen(Mapping[str, Any]):
        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            return self._data[key]

        def __iter__(self) -> Any:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    status = running().status
    assert status is not None
    assert render([WatchSnapshot("web", Frozen(dict(status)), None)]) == render([running()])
