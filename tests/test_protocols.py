"""
Every protocol of the one table (L{ismon.core.protocols}) has all it takes
(docs/architecture.md, "Adding a protocol"): its probe, its option parser,
its manual page, its console script and its twistd plugin.  A protocol
added with a piece missing fails here, not in a user's hands.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from ismon import entry
from ismon.cmdline.options import OPTIONS
from ismon.cmdline.pages import MANUALS
from ismon.core.protocols import PROTOCOLS, by_command, label_of
from ismon.probes.probe import IProbe
from ismon.probes.table import PROBES, make_probe

ROOT = Path(__file__).resolve().parent.parent
NAMES = list(PROTOCOLS)


def test_names_commands_and_labels_are_unique() -> None:
    protocols = list(PROTOCOLS.values())
    for field in ("name", "command", "label", "tapname"):
        values = [getattr(p, field) for p in protocols]
        assert len(set(values)) == len(values), field


def test_every_piece_is_there() -> None:
    assert set(PROBES) == set(PROTOCOLS)
    assert set(OPTIONS) == set(PROTOCOLS)
    assert set(MANUALS) == {p.command for p in PROTOCOLS.values()} | {"ismon"}


@pytest.mark.parametrize("name", NAMES)
def test_the_parser_is_the_protocol_s(name: str) -> None:
    options = OPTIONS[name]
    protocol = PROTOCOLS[name]
    assert (options.protocol, options.command) == (name, protocol.command)
    assert (options.default_port, options.tls_port) == (protocol.default_port, protocol.tls_port)
    assert by_command(protocol.command) is protocol
    assert label_of(protocol.command) == protocol.label


@pytest.mark.parametrize("name", NAMES)
def test_the_probe_is_made_from_a_parsed_command_line(name: str) -> None:
    options = OPTIONS[name]()
    options.parseOptions(["w1", "-s", "127.0.0.1", *options.example_arguments])
    assert options.config is not None
    probe = make_probe(MemoryReactorClock(), name, options.config.request)
    assert IProbe.providedBy(probe)


def test_a_probe_refuses_another_protocol_s_request() -> None:
    options = OPTIONS["smtp"]()
    options.parseOptions(["w1"])
    assert options.config is not None
    with pytest.raises(TypeError, match="HttpRequest is needed, not SmtpRequest"):
        make_probe(MemoryReactorClock(), "http", options.config.request)


@pytest.mark.parametrize("name", NAMES)
def test_console_script_and_twistd_plugin(name: str) -> None:
    command = PROTOCOLS[name].command
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[command] == f"ismon.entry:{command}"
    assert callable(getattr(entry, command))
    assert command in entry.__all__

    from twisted.plugins import ismon_plugins

    maker = getattr(ismon_plugins, f"ismon_{name}")
    assert maker.tapname == PROTOCOLS[name].tapname
    assert maker.description == PROTOCOLS[name].description
