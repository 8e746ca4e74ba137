"""
The layers of docs/architecture.md, enforced: pure values and parsers ->
probes -> schedule -> service parts -> service -> faces.  A module imports
only from its own layer or the ones below it, and no modules import each
other in a circle.  Imports are read from the source with C{ast}, those
inside functions too (a lazy import is still a dependency); imports under
C{if TYPE_CHECKING:} never run and are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent

# Lowest first.  docs/architecture.md draws the same table.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "pure values and parsers",
        [
            "ismon",
            "ismon.ampbox",
            "ismon.ca_file",
            "ismon.catalogue",
            "ismon.config",
            "ismon.control_client",
            "ismon.control_commands",
            "ismon.exit_status",
            "ismon.ftp_replies",
            "ismon.imap_replies",
            "ismon.manual",
            "ismon.metrics",
            "ismon.options",
            "ismon.pop3_replies",
            "ismon.protocols",
            "ismon.replies",
            "ismon.requests",
            "ismon.result",
            "ismon.state",
            "ismon.status",
            "ismon.timing",
        ],
    ),
    (
        "probes",
        [
            "ismon.ftp",
            "ismon.http",
            "ismon.imap",
            "ismon.pop3",
            "ismon.probe",
            "ismon.smtp",
            "ismon.tls",
        ],
    ),
    ("schedule", ["ismon.schedule"]),
    (
        "service parts",
        [
            "ismon.control",
            "ismon.health",
            "ismon.log_routing",
            "ismon.notify",
            "ismon.records",
            "ismon.report",
        ],
    ),
    ("service", ["ismon.service"]),
    (
        "faces",
        [
            "ismon.__main__",
            "ismon.cli",
            "ismon.demo",
            "ismon.entry",
            "ismon.exporter",
            "ismon.process",
            "ismon.testing",
            "twisted.plugins.ismon_plugins",
        ],
    ),
]

LAYER_OF = {module: index for index, (_, modules) in enumerate(LAYERS) for module in modules}


def _protocol_modules() -> set[str]:
    """A protocol's own module (docs/architecture.md, "Adding a protocol") is a probe."""
    from ismon.protocols import PROTOCOLS

    return {
        reference.partition(":")[0]
        for protocol in PROTOCOLS.values()
        for reference in (protocol.options, protocol.probe)
    }


for _module in _protocol_modules():
    LAYER_OF.setdefault(_module, 1)


def _sources() -> dict[str, Path]:
    found = {"ismon": ROOT / "ismon" / "__init__.py"}
    for path in sorted((ROOT / "ismon").glob("*.py")):
        if path.stem != "__init__":
            found[f"ismon.{path.stem}"] = path
    for path in sorted((ROOT / "twisted" / "plugins").glob("ismon*.py")):
        found[f"twisted.plugins.{path.stem}"] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The ismon modules C{path} imports (at run time), by name."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            if node.module in known:
                found.add(node.module)
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    found.add(submodule)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def import_graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    graph = {name: imports_of(path, known) - {name} for name, path in sources.items()}
    # "from ismon import x" names the package as well; the package itself
    # holds only the version and imports nothing.
    for name, imported in graph.items():
        if name != "ismon":
            imported.discard("ismon")
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
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


class LayerTests(SynchronousTestCase):
    def test_every_module_has_a_layer(self) -> None:
        unplaced = sorted(set(_sources()) - set(LAYER_OF))
        self.assertEqual(unplaced, [], "add these to LAYERS and docs/architecture.md")

    def test_no_import_from_a_higher_layer(self) -> None:
        wrong = [
            f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports {imported} "
            f"({LAYERS[LAYER_OF[imported]][0]})"
            for module, imports in sorted(import_graph().items())
            for imported in sorted(imports)
            if LAYER_OF[imported] > LAYER_OF[module]
        ]
        self.assertEqual(wrong, [])

    def test_no_import_cycle(self) -> None:
        self.assertIsNone(find_cycle(import_graph()))

    def test_the_checks_see_what_they_check(self) -> None:
        # The graph reads lazy imports, skips TYPE_CHECKING ones, and a
        # cycle is found when there is one.
        graph = import_graph()
        self.assertIn("ismon.cli", graph["ismon.entry"])
        self.assertNotIn("ismon.probe", graph["ismon.protocols"])
        self.assertIn("ismon.probe", graph["ismon.tls"])
        self.assertEqual(find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}), ["a", "b", "c", "a"])

    def test_probe_never_imports_tls(self) -> None:
        self.assertNotIn("ismon.tls", import_graph()["ismon.probe"])

    def test_importing_the_cli_loads_no_networking(self) -> None:
        """The lazy imports of ismon.cli are real: parsing loads no reactor."""
        code = (
            "import sys, ismon.cli; "
            "bad = sorted(m for m in sys.modules if m.startswith('twisted.internet') "
            "or m in ('ismon.http', 'ismon.smtp', 'ismon.service', 'ismon.probe')); "
            "print(bad); sys.exit(1 if bad else 0)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
