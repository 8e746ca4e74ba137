"""
Rename mixed-case test functions and methods (C{test_hostnameMismatch}) to
the one style of C{tests/test_style.py} (C{test_hostname_mismatch}), in
place, everywhere the name appears in the checkout's tracked text files.

    python3 tests/snake_case_names.py        # from the checkout's top

Idempotent: run it again after merging a branch that adds mixed-case names.
It refuses (changing nothing) when a new name would clash with an existing
one in the same module.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIXED = re.compile(r"\bdef (test_?[A-Za-z0-9_]*[A-Z][A-Za-z0-9_]*)\s*\(")
HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """C{test_hostnameMismatch} -> C{test_hostname_mismatch}; C{testFoo} -> C{test_foo}."""
    new = HUMP.sub("_", name).lower()
    return re.sub("_+", "_", new)


def main() -> int:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    texts: dict[Path, str] = {}
    for raw in tracked:
        path = ROOT / raw.decode()
        if path == Path(__file__).resolve():
            continue  # its own examples
        if raw and path.is_file() and path.suffix in {".py", ".md", ".sh", ".toml", ".txt", ""}:
            try:
                texts[path] = path.read_text()
            except UnicodeDecodeError:
                continue
    renames: dict[str, str] = {}
    for path in sorted(ROOT.glob("tests/test_*.py")):
        text = texts[path]
        defined = set(re.findall(r"\bdef (test\w*)\s*\(", text))
        made: dict[str, str] = {}
        for old in MIXED.findall(text):
            new = snake(old)
            if new in defined or made.setdefault(new, old) != old:
                print(f"{path.name}: {old} -> {new} clashes; nothing changed", file=sys.stderr)
                return 1
            renames[old] = new
    if not renames:
        print("no mixed-case test names")
        return 0
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(renames))) + r")\b")
    for path, text in texts.items():
        changed = pattern.sub(lambda m: renames[m.group(1)], text)
        if changed != text:
            path.write_text(changed)
            print(f"{path.relative_to(ROOT)}: renamed")
    print(f"{len(renames)} names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
