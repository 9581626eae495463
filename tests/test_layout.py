"""The package's folders are its data flow: scenario -> engine -> analysis -> forecast ->
output -> cli. A folder imports only folders before it (lazy imports included); the one
exception is a result's plotting method, which may import ``escalate.output.plots`` inside the
function. The module-level imports have no cycle, every name a module imports exists, and no
module is over 600 lines but the numba kernels and the scenario language model.
"""

from __future__ import annotations

import ast
import graphlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "escalate"

# the steps in their order; a module may import from its own step and those before it
FLOW = ["errors", "scenario", "engine", "analysis", "forecast", "output", "explore", "api", "cli"]
TOP = len(FLOW)  # escalate/__init__.py and __main__.py: the public names, the entry point
LAZY_ANYWHERE = "escalate.output.plots"  # a result's plot method draws with it, inside itself
LONG_MODULES = {"engine/kernels.py", "scenario/model.py"}  # the kernels, the language model
MAX_LINES = 600
MAX_TOP_MODULES = 6


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. escalate.engine.results
    target: str  # the module imported from (or the module imported)
    names: tuple[str, ...]  # names taken from it (empty for ``import target``)
    line: int
    lazy: bool  # inside a function, or under ``if TYPE_CHECKING``


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def step(module: str) -> int:
    """The position of a module's step in the flow (``escalate`` itself comes last)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return TOP
    return FLOW.index(parts[1])


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import of escalate in one file, eager or lazy, relative ones resolved."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "escalate":
                        found.append(Import(module, alias.name, (), child.lineno, inner))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.split(".")[0] == "escalate":
                    names = tuple(a.name for a in child.names)
                    found.append(Import(module, base, names, child.lineno, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def flow_problems(root: Path) -> list[str]:
    """Imports against the flow, and cycles among module-level imports, in the package at
    ``root`` (a folder named ``escalate``)."""
    problems, graph = [], {}
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        graph.setdefault(module, set())
        for imp in imports_of(path, root):
            targets = [imp.target]
            if imp.names and imp.target in ("escalate", *(f"escalate.{s}" for s in FLOW)):
                # ``from escalate.output import plots``: the submodule is what is imported
                targets = [f"{imp.target}.{name}" for name in imp.names]
            for target in targets:
                allowed = imp.lazy and target.startswith(LAZY_ANYWHERE)
                if step(target) > step(module) and not allowed:
                    problems.append(
                        f"{path.relative_to(root.parent)}:{imp.line}: {module} imports {target}, "
                        f"a later step ({FLOW[step(module)] if step(module) < TOP else 'top'} "
                        f"-> {FLOW[step(target)]})"
                    )
                if not imp.lazy and target != module:
                    graph[module].add(target)
    try:
        graphlib.TopologicalSorter(
            {m: {t for t in targets if t in graph} for m, targets in graph.items()}
        ).prepare()
    except graphlib.CycleError as exc:
        problems.append(f"a cycle of module-level imports: {' -> '.join(exc.args[1])}")
    return problems


def test_every_import_follows_the_flow_and_none_makes_a_cycle():
    assert flow_problems(PACKAGE) == []


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "escalate" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "escalate"


TYPE_CHECKING_IMPORT = (
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import escalate.cli\n"
)
GOOD = {
    "__init__.py": "from escalate.errors import Oops\n",
    "errors.py": "class Oops(Exception): ...\n",
    "engine/__init__.py": "",
    "engine/results.py": (
        "from escalate.errors import Oops\n\n\ndef plot():\n"
        "    from escalate.output import plots\n    return plots\n"
    ),
    "output/__init__.py": "",
    "output/plots.py": "from escalate.engine.results import plot\n",
}


def test_the_check_passes_a_package_that_follows_the_flow(tmp_path):
    """A lazy plot import from a result is the one import allowed against the flow."""
    assert flow_problems(write(tmp_path, GOOD)) == []


@pytest.mark.parametrize(
    "extra, expected",
    [
        # an eager import of a later step
        ({"engine/compile.py": "from escalate.forecast import nowcast\n"}, "a later step"),
        # a lazy one that is not a plot
        (
            {"engine/compile.py": "def f():\n    from escalate.output.report import page\n"},
            "a later step (engine -> output)",
        ),
        # a relative import resolved to the step it names
        ({"scenario/model.py": "from ..engine import compile\n"}, "scenario -> engine"),
        # under TYPE_CHECKING, still an import
        (
            {"errors.py": TYPE_CHECKING_IMPORT},
            "errors -> cli",
        ),
        # two modules of one step importing each other at module level
        (
            {
                "engine/a.py": "from escalate.engine.b import x\ny = 1\n",
                "engine/b.py": "from escalate.engine.a import y\nx = 1\n",
            },
            "a cycle of module-level imports",
        ),
    ],
)
def test_the_check_fails_on_an_import_against_the_flow(tmp_path, extra, expected):
    problems = flow_problems(write(tmp_path, {**GOOD, **extra}))
    assert len(problems) == 1 and expected in problems[0], problems


def test_every_imported_name_exists():
    """A lazy import runs only when its function does: a name moved to another module would
    fail at that moment, in a user's hands. Every ``from escalate.x import name`` resolves."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for imp in imports_of(path, PACKAGE):
            module = importlib.import_module(imp.target)
            for name in imp.names:
                if not hasattr(module, name):
                    try:
                        importlib.import_module(f"{imp.target}.{name}")
                    except ModuleNotFoundError:
                        missing.append(f"{path.name}:{imp.line}: {imp.target}.{name}")
    assert missing == []


def test_modules_are_short_and_the_top_holds_few():
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(long) <= LONG_MODULES, long
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders <= set(FLOW), folders


def test_every_public_name_resolves():
    """``escalate.X`` for every name the package lists: its lazy table points at modules that
    moved with the layout."""
    import escalate

    assert [name for name in escalate.__all__ if getattr(escalate, name, None) is None] == []
