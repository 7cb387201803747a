"""DESIGN rule 1: dashboard and notebooks -> models -> simulator, never the reverse.

Sources are parsed with `ast`, never imported, so a violation is found even in a module that
would fail to import. Model code neither plots nor prints: `print(` is allowed in the simulator
only in `simulator/cli.py`, and never in models.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import REPO_ROOT

PLOTTING = frozenset({"plotly", "matplotlib", "seaborn", "altair", "bokeh"})
# Top-level packages each layer must not import, and why.
FORBIDDEN: dict[str, dict[str, str]] = {
    "simulator": {
        "models": "the core finds models through entry points, it never imports one",
        "dashboard": "the core knows nothing of the UI",
        "streamlit": "the core knows nothing of the UI",
    },
    "models": {
        "dashboard": "models know nothing of the UI",
        "streamlit": "models know nothing of the UI",
        **dict.fromkeys(PLOTTING, "model code does not plot (figures live in simulator.plots)"),
    },
    # Notebooks and dashboard are peers over models/simulator: a lesson draws with
    # simulator.plots, not with the dashboard's widgets.
    "notebooks": {
        "dashboard": "notebooks share figures through simulator.plots, not the dashboard",
        "streamlit": "notebooks do not run the UI",
    },
    "dashboard": {},
}
PRINT_ALLOWED = frozenset({"simulator/cli.py"})
NO_PRINT_LAYERS = frozenset({"simulator", "models"})


@dataclass(frozen=True)
class Source:
    """One unit of code to check: a .py file, or one code cell of a notebook."""

    layer: str  # simulator | models | dashboard | notebooks
    label: str  # what a report shows: path, or path + cell
    rel_path: str  # path relative to the repo root, posix
    package: tuple[str, ...]  # package the code lives in, for relative imports
    text: str


def _package_of(rel: Path) -> tuple[str, ...]:
    parts = rel.with_suffix("").parts
    return tuple(parts) if rel.name == "__init__.py" else tuple(parts[:-1])


# %line magic, !shell, ?help, `x = !cmd`, `obj?` / `obj??` help lines.
_MAGIC_LINE = re.compile(r"^\s*(?:[%!?]|\w+\s*=\s*[!%]|[\w.]+\?{1,2}\s*$)")


def notebook_cell_code(cell_source: str | list[str]) -> str | None:
    """Python of a notebook code cell, IPython magics blanked (line numbers kept); None for
    a cell magic such as %%bash whose body is not Python."""
    text = "".join(cell_source) if isinstance(cell_source, list) else cell_source
    lines = text.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)[0] if lines[0].strip() != "%%" else ""
        if magic not in {"time", "timeit", "capture"}:
            return None
        lines[0] = ""
    return "\n".join("" if _MAGIC_LINE.match(line) else line for line in lines)


def collect_sources(root: Path = REPO_ROOT) -> list[Source]:
    """Every .py under simulator/, models/, dashboard/ and every notebook code cell."""
    found: list[Source] = []
    for layer in ("simulator", "models", "dashboard"):
        for path in sorted((root / layer).rglob("*.py")):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts or ".ipynb_checkpoints" in rel.parts:
                continue
            text = path.read_text(encoding="utf-8")
            found.append(Source(layer, rel.as_posix(), rel.as_posix(), _package_of(rel), text))
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        rel = path.relative_to(root).as_posix()
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(notebook.get("cells", []), start=1):
            if cell.get("cell_type") != "code":
                continue
            code = notebook_cell_code(cell.get("source", ""))
            if code is not None:
                found.append(Source("notebooks", f"{rel}:cell {index}", rel, (), code))
    return found


def imported_modules(tree: ast.AST, package: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import, relative ones resolved against `package`;
    `importlib.import_module("...")` / `__import__("...")` with a literal name count too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or ""
                continue
            base = list(package[: max(len(package) - (node.level - 1), 0)])
            if node.module:
                yield node.lineno, ".".join([*base, node.module])
            else:
                for alias in node.names:
                    yield node.lineno, ".".join([*base, alias.name])
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                name in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not first.value.startswith(".")
            ):
                yield node.lineno, first.value


def print_calls(tree: ast.AST) -> Iterator[int]:
    """Lines of bare `print(...)` calls."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ):
            yield node.lineno


def violations(source: Source) -> list[str]:
    """Every rule-1 violation in one source, as `label:line: message`."""
    try:
        tree = ast.parse(source.text, filename=source.label)
    except SyntaxError as exc:
        return [f"{source.label}:{exc.lineno}: cannot parse, so cannot check imports: {exc.msg}"]
    found: list[str] = []
    forbidden = FORBIDDEN[source.layer]
    for line, module in imported_modules(tree, source.package):
        top = module.split(".")[0]
        if top in forbidden:
            found.append(
                f"{source.label}:{line}: {source.layer} imports {module!r} ({forbidden[top]})"
            )
    if source.layer in NO_PRINT_LAYERS and source.rel_path not in PRINT_ALLOWED:
        found.extend(
            f"{source.label}:{line}: print() in {source.layer} code "
            "(return data or record an event; only simulator/cli.py prints)"
            for line in print_calls(tree)
        )
    return found


SOURCES = collect_sources()


def _report(layer: str) -> list[str]:
    return [v for s in SOURCES if s.layer == layer for v in violations(s)]


def test_sources_were_found_so_the_check_is_not_vacuous() -> None:
    counts = {layer: sum(s.layer == layer for s in SOURCES) for layer in FORBIDDEN}
    assert counts["simulator"] > 0, f"no .py under simulator/: {counts}"
    assert counts["models"] > 0, f"no .py under models/: {counts}"
    assert any(s.rel_path == "simulator/__init__.py" for s in SOURCES)


@pytest.mark.parametrize("layer", ["simulator", "models", "dashboard", "notebooks"])
def test_layer_respects_import_direction(layer: str) -> None:
    problems = _report(layer)
    assert not problems, "DESIGN rule 1 violated:\n" + "\n".join(problems)


# The checker itself must be able to fail.


def _src(layer: str, rel: str, text: str) -> Source:
    return Source(layer, rel, rel, _package_of(Path(rel)), text)


@pytest.mark.parametrize(
    ("layer", "rel", "text", "expected"),
    [
        ("simulator", "simulator/runner.py", "import models.redis\n", "'models.redis'"),
        ("simulator", "simulator/runner.py", "x = 1\nfrom models import kafka\n", ":2:"),
        ("simulator", "simulator/plots.py", "import streamlit as st\n", "'streamlit'"),
        ("simulator", "simulator/runner.py", "from ..dashboard import app\n", "'dashboard'"),
        (
            "simulator",
            "simulator/a.py",
            "import importlib\nimportlib.import_module('models')",
            ":2:",
        ),
        ("models", "models/redis/server.py", "from ... import dashboard\n", "'dashboard'"),
        ("models", "models/kafka/log.py", "import plotly.express as px\n", "'plotly.express'"),
        ("models", "models/kafka/log.py", "def f():\n    print('x')\n", "models/kafka/log.py:2:"),
        ("simulator", "simulator/checker.py", "print(1)\n", "print()"),
        ("notebooks", "notebooks/01.ipynb", "%matplotlib inline\nimport dashboard\n", ":2:"),
    ],
)
def test_checker_flags_violation(layer: str, rel: str, text: str, expected: str) -> None:
    problems = violations(_src(layer, rel, notebook_cell_code(text) or ""))
    assert problems and expected in problems[0], problems


@pytest.mark.parametrize(
    ("layer", "rel", "text"),
    [
        ("simulator", "simulator/cli.py", "print('ok')\nimport plotly\n"),
        ("simulator", "simulator/runner.py", "from simulator import models_util\nimport simpy\n"),
        ("models", "models/redis/server.py", "from simulator.node import Node\nfrom . import x\n"),
        ("dashboard", "dashboard/app.py", "import streamlit\nimport models\nimport simulator\n"),
    ],
)
def test_checker_accepts_allowed_code(layer: str, rel: str, text: str) -> None:
    assert violations(_src(layer, rel, text)) == []


def test_cell_magics_are_not_parsed_as_python() -> None:
    assert notebook_cell_code("%%bash\nls -l\n") is None
    assert notebook_cell_code(["%%time\n", "import simulator\n"]) == "\nimport simulator"
    assert notebook_cell_code("!pip list\nx = 1\nrun?\n") == "\nx = 1\n"
