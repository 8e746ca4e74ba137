# -*- test-case-name: tests.test_manual -*-
"""
The renderers of the manual's pages (L{ismon.cmdline.pages}): C{--help}
text and roff man pages.  A watch command's option rows are read from the
L{twisted.python.usage.Options} that parses it, the way
L{usage.Options.getUsage} reads them, so the help lists exactly the options
the parser takes.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from twisted.python import usage

from ismon import __version__
from ismon.cmdline.pages import ENVIRONMENT, EXIT_STATUS, FILES, Manual, OptionRow
from ismon.control.request import VERBS
from ismon.core.protocols import PROTOCOLS

__all__ = ["full_help", "help_text", "option_rows", "render_roff", "synopsis_text"]


def option_rows(options: usage.Options) -> list[OptionRow]:
    """
    The options of C{options} in the order C{--help} lists them, read the way
    L{usage.Options.getUsage} reads them (flags, parameters, C{opt_*}).
    """
    short_of: dict[str, str | None] = {}
    for key, long in options.synonyms.items():
        if key != long and len(key) == 1:
            short_of[long] = key
        else:
            short_of.setdefault(long, None)
    rows = []
    seen: set[str] = set()
    for name in options.longOpt:
        long = name.rstrip("=")
        # Twisted gathers the tables of the base classes too: list each once.
        if long in seen:
            continue
        seen.add(long)
        default = options.defaults.get(long)
        rows.append(
            OptionRow(
                long=long,
                short=short_of.get(long),
                takes_value=name.endswith("="),
                doc=" ".join(str(options.docs[long]).split()),
                # A flag's "default" is Twisted's 0 for "not given".
                default=None if default is None or not name.endswith("=") else str(default),
            )
        )
    return rows


def _rows_of(manual: Manual, options: usage.Options | None) -> list[OptionRow]:
    """The rows of C{manual}'s own options, then those its parser reads."""
    rows = list(manual.extra_options)
    if options is not None:
        rows += option_rows(options)
    return rows


# -- --help -----------------------------------------------------------------------


def synopsis_text(manual: Manual) -> str:
    """C{Usage: name ...} with one line per form."""
    lines = [f"Usage: {manual.name} {manual.synopsis[0]}"]
    lines += [f"       {manual.name} {form}" for form in manual.synopsis[1:]]
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "") -> str:
    return "\n".join(
        textwrap.wrap(
            text,
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    )


def _table(rows: Sequence[tuple[str, str]], width: int) -> str:
    column = max(len(left) for left, _ in rows) + 4
    lines = []
    for left, right in rows:
        wrapped = textwrap.wrap(right, max(20, width - column), break_on_hyphens=False)
        lines.append(f"  {left:<{column - 2}}{wrapped[0]}")
        lines += [" " * column + more for more in wrapped[1:]]
    return "\n".join(lines)


def help_text(manual: Manual, options: usage.Options | None = None, width: int = 80) -> str:
    """
    Everything C{--help} prints after the synopsis: the description, the
    options (formatted by Twisted, as for any usage.Options), the exit status
    and where the manual is.
    """
    parts = [_wrap(p, width) for p in manual.description]
    if manual.commands:
        parts.append("Commands:\n" + _table(manual.commands, width))
    rows = _rows_of(manual, options)
    chunks = usage.docMakeChunks(
        [
            {
                "long": row.long,
                "short": row.short,
                "doc": row.doc,
                "optType": "parameter" if row.takes_value else "flag",
                "default": row.default,
            }
            for row in rows
        ],
        width,
    )
    parts.append("Options:\n" + "".join(chunks).rstrip("\n"))
    parts.append("Exit status:\n" + _table(EXIT_STATUS, width))
    parts.append(f"See also: man {manual.name}; {', '.join(manual.see_also)}.")
    return "\n\n".join(parts) + "\n"


def full_help(manual: Manual, options: usage.Options | None = None, width: int = 80) -> str:
    """The synopsis and the help text: all that C{--help} prints."""
    return synopsis_text(manual) + "\n\n" + help_text(manual, options, width)


# -- roff ---------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, no control lines."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # A line that starts with . or ' would be read as a request.
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def _bold(text: str) -> str:
    return f"\\fB{_escape(text)}\\fR"


_KEYWORDS = frozenset({*PROTOCOLS, *VERBS, "status", "metrics", "exporter"})


def _synopsis_roff(text: str) -> str:
    """Options and keywords bold, placeholders italic, brackets plain."""
    words = []
    for token in re.split(r"(\s+|[\[\]|])", text):
        if not token or token.isspace() or token in "[]|" or re.fullmatch(r"[0-9.]+", token):
            words.append(_escape(token))
        elif token.startswith("-") or token in _KEYWORDS:
            words.append(_bold(token))
        else:
            words.append(f"\\fI{_escape(token)}\\fR")
    return "".join(words)


def _option_roff(row: OptionRow) -> list[str]:
    head = f"\\fB\\-\\-{_escape(row.long)}\\fR"
    if row.short:
        head = f"\\fB\\-{_escape(row.short)}\\fR, " + head
    if row.takes_value:
        head += f"=\\fI{_escape(row.long)}\\fR"
    doc = row.doc
    if row.default is not None:
        doc += f" [default: {row.default}]"
    return [".TP", head, _escape(doc)]


def _paragraphs(paragraphs: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        if i:
            lines.append(".PP")
        lines.append(_escape(paragraph))
    return lines


def _tagged(rows: Sequence[tuple[str, str]], bold: bool = True) -> list[str]:
    lines = []
    for tag, text in rows:
        lines += [".TP", _bold(tag) if bold else _escape(tag), _escape(text)]
    return lines


def render_roff(manual: Manual, options: usage.Options | None = None) -> str:
    """The man page of C{manual}, section 8, as roff (man macros)."""
    title = manual.name.upper()
    lines = [
        '.\\" Generated by python -m ismon.cmdline.manpages from ismon/cmdline/pages.py and the',
        '.\\" command-line parser; edit those, not this file.',
        f'.TH {title} 8 "" "ismon {__version__}" "System Administration"',
        ".SH NAME",
        f"{_escape(manual.name)} \\- {_escape(manual.summary)}",
        ".SH SYNOPSIS",
    ]
    for i, form in enumerate(manual.synopsis):
        if i:
            lines.append(".br")
        lines.append(f"{_bold(manual.name)} {_synopsis_roff(form)}")
    lines += [".SH DESCRIPTION", *_paragraphs(manual.description)]
    if manual.commands:
        lines += [".SH COMMANDS", *(_tagged_command(c) for c in manual.commands)]
    lines.append(".SH OPTIONS")
    for row in _rows_of(manual, options):
        lines += _option_roff(row)
    lines += [".SH EXIT STATUS", *_tagged(EXIT_STATUS)]
    lines += [".SH ENVIRONMENT", *_tagged(ENVIRONMENT)]
    lines += [".SH FILES", *_tagged(FILES)]
    lines.append(".SH EXAMPLES")
    for i, (what, command) in enumerate(manual.examples):
        if i:
            lines.append(".PP")
        lines += [_escape(what), ".PP", ".RS 4", ".nf", _escape(command), ".fi", ".RE"]
    lines.append(".SH SEE ALSO")
    lines.append(",\n".join(_see_also(ref) for ref in manual.see_also))
    lines += [
        ".PP",
        "The README of ismon (options, timing, exit codes, the message catalogue) and "
        "docs/cluster.md (cluster wiring).",
    ]
    return "\n".join(lines) + "\n"


def _tagged_command(command: tuple[str, str]) -> str:
    usage_line, meaning = command
    return f".TP\n{_synopsis_roff(usage_line)}\n{_escape(meaning)}"


def _see_also(reference: str) -> str:
    name, section = reference.rstrip(")").split("(")
    return f".BR {name} ({section})"
