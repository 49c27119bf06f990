"""The package's import rules and size limits (DESIGN.md, "Who may import whom"), read from the source.

- no import cycles among ``hvd_magtag`` modules, counting module-level and function-local imports alike
  (an edge from a package's ``__init__`` to its own submodules is not counted: a package may import its
  families eagerly, timm's shape; a submodule importing its parent for a name the parent defines is);
- ``hvd_magtag.distributed`` is the only module that imports Horovod;
- the TensorFlow-free modules (:data:`TF_FREE`) import no TensorFlow, Keras, tensorflow-io or Horovod when
  imported (checked in a fresh interpreter: what ``--help`` and option errors cost);
- no function in the package is longer than :data:`MAX_FUNCTION_LINES` lines, and the training loop
  (``hvd_magtag.train.train``) reads on one screen: at most :data:`MAX_TRAIN_LOOP_LINES` lines.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hvd_magtag"
#: Modules that must import without TensorFlow (and everything they import at module level).
TF_FREE = (
    "hvd_magtag",
    "hvd_magtag.cli",
    "hvd_magtag.config",
    "hvd_magtag.errors",
    "hvd_magtag.metrics",
    "hvd_magtag.models.registry",
    "hvd_magtag.models.spec",
    "hvd_magtag.audio.formats",
)
HEAVY = ("tensorflow", "keras", "tensorflow_io", "horovod")
MAX_FUNCTION_LINES = 100
MAX_TRAIN_LOOP_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute module names an import statement in module ``name`` refers to (``from pkg import sub`` names
    ``pkg.sub`` when that is a module, else ``pkg``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    is_package = modules()[name][0].name == "__init__.py"
    if node.level:
        base = name.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = []
    for alias in node.names:
        candidate = f"{source}.{alias.name}"
        out.append(candidate if candidate in modules() else source)
    return out


@cache
def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, (_, tree) in modules().items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in imported(name, node):
                    if target in modules() and target != name and not target.startswith(name + "."):
                        edges.add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one module (import cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = strongly_connected(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_only_distributed_imports_horovod():
    offenders = []
    for name, (path, tree) in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                )
                if name != "hvd_magtag.distributed" and any(t.split(".")[0] == "horovod" for t in targets):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, "Horovod imported outside hvd_magtag.distributed: " + ", ".join(offenders)


@pytest.mark.parametrize("name", TF_FREE)
def test_tensorflow_free_modules_import_no_tensorflow(name):
    probe = (
        f"import sys, json; import {name}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(HEAVY)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not loaded, f"importing {name} loads {', '.join(loaded[:5])}"


def _walk_functions(module: str, node, prefix: str):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            qual = f"{prefix}{child.name}"
            yield f"{module}:{qual}", child.end_lineno - child.lineno + 1
            yield from _walk_functions(module, child, qual + ".")
        elif isinstance(child, ast.ClassDef):
            yield from _walk_functions(module, child, f"{prefix}{child.name}.")


def function_lengths():
    """(``module:qualified.name``, lines) of every function and method in the package."""
    for name, (_, tree) in modules().items():
        yield from _walk_functions(name, tree, "")


def test_no_function_is_longer_than_a_screenful():
    long = sorted((n, q) for q, n in function_lengths() if n > MAX_FUNCTION_LINES)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(f"{q} ({n})" for n, q in long)


def test_the_training_loop_reads_on_one_screen():
    loops = {q: n for q, n in function_lengths() if q.startswith("hvd_magtag.train") and q.endswith(":train")}
    assert loops, "no function 'train' found in hvd_magtag.train"
    long = {q: n for q, n in loops.items() if n > MAX_TRAIN_LOOP_LINES}
    assert not long, f"training loop over {MAX_TRAIN_LOOP_LINES} lines: {long}"
