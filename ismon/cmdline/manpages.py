# -*- test-case-name: tests.test_manual -*-
"""
The manual of each command, whole: its C{--help} text and its man page,
from the manual's pages and the command's option parser.  The committed
pages (C{man/man8/*.8}) are written with::

    python -m ismon.cmdline.manpages --write man/man8

C{tests/test_manual.py} fails while a committed page differs from what
this writes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from twisted.python import usage

from ismon.cmdline.manual import full_help, render_roff
from ismon.cmdline.options import OPTIONS
from ismon.cmdline.pages import MANUALS, Manual
from ismon.core.protocols import by_command

__all__ = ["full_help_of", "main", "page", "write_pages"]


def _options(manual: Manual) -> usage.Options | None:
    protocol = by_command(manual.name)
    return None if protocol is None else OPTIONS[protocol.name]()


def full_help_of(name: str, width: int = 80) -> str:
    """What C{name --help} prints (C{name}: C{ismon} or a C{clp_*mon} command)."""
    manual = MANUALS[name]
    return full_help(manual, _options(manual), width)


def page(name: str) -> str:
    """The man page of the command C{name}, as roff."""
    manual = MANUALS[name]
    return render_roff(manual, _options(manual))


def _page_name(manual: Manual) -> str:
    return f"{manual.name}.8"


def write_pages(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for manual in MANUALS.values():
        path = folder / _page_name(manual)
        path.write_text(page(manual.name), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "--write":
        for path in write_pages(Path(argv[1])):
            print(f"wrote {path}")
        return 0
    if len(argv) == 1 and argv[0] in MANUALS:
        sys.stdout.write(page(argv[0]))
        return 0
    sys.stderr.write(
        f"usage: python -m ismon.cmdline.manpages --write FOLDER | {'|'.join(MANUALS)}\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
