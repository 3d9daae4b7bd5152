"""The package's shape is checked, not hoped for: no import circles, imports at the top of files, few modules
at the top level. (The layer order itself is import-linter's contract in pyproject.toml, run by `make test`;
the test below runs the same contract so that `pytest` alone catches a broken layer too.)"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[1] / "gradlab"
LAZY = {"gradlab/__init__.py"}            # the public API, imported lazily so that `import gradlab` stays cheap


def _graph():
    return grimp.build_graph("gradlab", exclude_type_checking_imports=True)


def test_no_import_circles_between_modules():
    graph = _graph()
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if module.startswith(imported + ".") or imported.startswith(module + "."):
                continue                  # a package and its own submodules
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                circles.append(" -> ".join((module,) + tuple(chain)))
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles))[:20])


def test_gradlab_modules_are_imported_at_the_top_of_files():
    inside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE.parent))
        if rel in LAZY:
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else
                             [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                    if any(n == "gradlab" or n.startswith("gradlab.") for n in names):
                        inside.append(f"{rel}:{node.lineno}")
    assert not inside, f"gradlab imported inside functions (move it to the top): {inside}"


def test_at_most_six_modules_at_the_top_level():
    modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(modules) <= 6, modules


def test_the_layers_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract():
    graph = _graph()
    graph.add_import(importer="gradlab.training.trainer", imported="gradlab.runs.runner")
    layers = ("gradlab.runs", "gradlab.training")
    assert graph.find_illegal_dependencies_for_layers(layers=layers, containers=set())
