#!/usr/bin/env python3
"""
Makes one systemd template unit per protocol of ismon/core/protocols.py from
scripts/systemd/ismon@.service.in: ismon-http@.service, ismon-smtp@.service,
... A protocol registered there gets its unit by running this again.

    python3 scripts/systemd/units.py --write    # (re)write the units beside this file
    python3 scripts/systemd/units.py --check    # exit 1 when one is missing or stale

Reads the protocol table without importing Twisted.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from ismon.core.protocols import PROTOCOLS, WatchProtocol  # noqa: E402

TEMPLATE = HERE / "ismon@.service.in"

# The daemon a drop-in would bind the watch to, in the comment of its unit.
_DAEMONS = {
    "http": "nginx.service",
    "smtp": "postfix.service",
    "ftp": "vsftpd.service",
    "dns": "unbound.service",
    "tcp": "redis-server.service",
}


def unit_name(protocol: WatchProtocol) -> str:
    return f"ismon-{protocol.name}@.service"


def render(protocol: WatchProtocol) -> str:
    """The unit of C{protocol}."""
    proto = protocol.label
    prefix = f"ismon-{protocol.name}"
    values = {
        "UNIT": unit_name(protocol),
        "PREFIX": prefix,
        "INSTANCE": f"{prefix}@ID.service",
        "PROTO": proto,
        "NAME": protocol.name,
        "COMMAND": protocol.command,
        "DAEMON": _DAEMONS.get(protocol.name, "dovecot.service"),
    }
    return re.sub(r"@([A-Z]+)@", lambda m: values[m.group(1)], TEMPLATE.read_text())


def main(argv: list[str]) -> int:
    if argv not in (["--write"], ["--check"]):
        print("usage: python3 scripts/systemd/units.py --write | --check", file=sys.stderr)
        return 2
    stale = []
    for protocol in PROTOCOLS.values():
        path = HERE / unit_name(protocol)
        text = render(protocol)
        if argv == ["--write"]:
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(path.name)
    if stale:
        print(
            f"scripts/systemd/units.py: stale or missing: {', '.join(stale)};"
            " run: python3 scripts/systemd/units.py --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
