"""
The layers of docs/architecture.md, enforced from the folders themselves:
a module imports only from its own folder or the folders below it, no
modules import each other in a circle, and the import graph stays at most
ten floors high.  Every import counts: those inside functions (a lazy
import is still a dependency), those under C{if TYPE_CHECKING:} (a
type-only import is still an edge a reader must follow), and the
protocol registry's (L{ismon.probes.table} imports each probe; the
option parsers register themselves in their own module).  No module is
named by a string: C{importlib} and C{__import__} are not used.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent

#: Lowest first: (name, the paths that make the layer).  docs/architecture.md
#: draws the same.  "ismon" (the package: its version) is below them all.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("ismon/core/",)),
    ("wire", ("ismon/wire/",)),
    ("state", ("ismon/state/",)),
    ("control", ("ismon/control/",)),
    ("probes", ("ismon/probes/",)),
    ("watch", ("ismon/watch/",)),
    ("metrics", ("ismon/metrics/",)),
    ("cmdline", ("ismon/cmdline/",)),
    (
        "faces",
        (
            "ismon/entry.py",
            "ismon/__main__.py",
            "ismon/testing.py",
            "ismon/demo.py",
            "twisted/plugins/",
        ),
    ),
]

#: The most modules a folder may hold, its __init__.py not counted.
MAX_MODULES_PER_FOLDER = 15
#: The most floors the import graph may have: a module stands one floor
#: above the highest module it imports.
MAX_FLOORS = 10


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def sources() -> dict[str, Path]:
    """Every module of the package and the twistd plugins, by name."""
    found = {_module_name(path): path for path in sorted((ROOT / "ismon").rglob("*.py"))}
    for path in sorted((ROOT / "twisted" / "plugins").glob("ismon*.py")):
        found[_module_name(path)] = path
    return found


def layer_of(module: str) -> int:
    """The index of C{module}'s layer in L{LAYERS}; -1 for the package itself."""
    if module == "ismon":
        return -1
    path = sources()[module].relative_to(ROOT).as_posix()
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(path == prefix or path.startswith(prefix) for prefix in prefixes):
            return index
    raise LookupError(f"{path} is in no layer: add it to LAYERS and docs/architecture.md")


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The ismon modules C{path} imports: anywhere, typing-only ones too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    found.add(submodule)
                elif node.module in known:
                    found.add(node.module)
    return found


@cache
def import_graph() -> dict[str, frozenset[str]]:
    known = set(sources())
    return {name: frozenset(imports_of(path, known) - {name}) for name, path in sources().items()}


def find_cycle(graph: dict[str, frozenset[str]] | dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def floors(graph: dict[str, frozenset[str]]) -> dict[str, int]:
    """Each module's floor: 1 for one that imports none, else one above its highest import."""
    found: dict[str, int] = {}

    def floor(node: str) -> int:
        if node not in found:
            found[node] = 1 + max((floor(target) for target in graph[node]), default=0)
        return found[node]

    for node in graph:
        floor(node)
    return found


class LayerTests(SynchronousTestCase):
    def test_every_module_has_a_layer(self) -> None:
        unplaced = []
        for module in sources():
            try:
                layer_of(module)
            except LookupError as e:
                unplaced.append(str(e))
        self.assertEqual(unplaced, [])

    def test_no_import_from_a_higher_layer(self) -> None:
        wrong = [
            f"{module} ({LAYERS[layer_of(module)][0]}) imports {imported} "
            f"({LAYERS[layer_of(imported)][0]})"
            for module, imports in sorted(import_graph().items())
            for imported in sorted(imports)
            if layer_of(imported) > layer_of(module)
        ]
        self.assertEqual(wrong, [])

    def test_no_import_cycle(self) -> None:
        self.assertIsNone(find_cycle(import_graph()))

    def test_at_most_ten_floors(self) -> None:
        levels = floors(import_graph())
        top = max(levels.values())
        chain = [m for m, level in sorted(levels.items(), key=lambda x: -x[1]) if level == top]
        self.assertLessEqual(top, MAX_FLOORS, f"{top} floors, the top ones: {chain}")

    def test_folders_stay_small(self) -> None:
        too_big = {
            str(folder.relative_to(ROOT)): count
            for folder in sorted((ROOT / "ismon").iterdir())
            if folder.is_dir() and (folder / "__init__.py").exists()
            for count in [len([p for p in folder.glob("*.py") if p.name != "__init__.py"])]
            if count > MAX_MODULES_PER_FOLDER
        }
        self.assertEqual(too_big, {})

    def test_every_folder_init_is_empty(self) -> None:
        """
        A layer's __init__.py holds its docstring and nothing else, so that
        importing one module of it (a fast control command does) runs no
        code of the others.
        """
        busy = []
        for init in sorted((ROOT / "ismon").glob("*/__init__.py")):
            body = ast.parse(init.read_text(encoding="utf-8")).body
            if not (len(body) == 1 and isinstance(body[0], ast.Expr)):
                busy.append(str(init.relative_to(ROOT)))
        self.assertEqual(busy, [])

    def test_no_module_is_named_by_a_string(self) -> None:
        """No importlib and no __import__: every dependency is an import statement."""
        named = []
        for module, path in sources().items():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Name) and node.id == "__import__":
                    named.append(f"{module}: __import__")
                elif isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names]
                    if "importlib" in names or (
                        isinstance(node, ast.ImportFrom)
                        and (node.module or "").startswith("importlib")
                    ):
                        named.append(f"{module}: importlib")
        self.assertEqual(named, [])

    def test_the_checks_see_what_they_check(self) -> None:
        # The graph reads lazy and typing-only imports, and the probe
        # registry's; a cycle is found when there is one.
        graph = import_graph()
        self.assertIn("ismon.cmdline.cli", graph["ismon.entry"])  # lazy
        self.assertIn("ismon.core.config", graph["ismon.cmdline.startup"])  # typing only
        self.assertIn("ismon.probes.http", graph["ismon.probes.table"])  # the registry
        self.assertIn("ismon.probes.probe", graph["ismon.probes.tls"])
        self.assertEqual(find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}), ["a", "b", "c", "a"])
        self.assertEqual(floors({"a": frozenset({"b"}), "b": frozenset()}), {"a": 2, "b": 1})

    def test_probe_never_imports_tls(self) -> None:
        """Only TLS watches load the TLS stack: the deadline core does not name it."""
        self.assertNotIn("ismon.probes.tls", import_graph()["ismon.probes.probe"])

    def test_importing_the_cli_loads_no_networking(self) -> None:
        """The lazy imports of the command line are real: parsing loads no reactor."""
        code = (
            "import sys, ismon.cmdline.cli; "
            "bad = sorted(m for m in sys.modules if m.startswith('twisted.internet') "
            "or m.startswith(('ismon.probes', 'ismon.watch'))); "
            "print(bad); sys.exit(1 if bad else 0)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
