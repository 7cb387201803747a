"""Repository hygiene: notebooks committed without outputs; README quick start as promised."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
QUICK_START_COMMANDS = ["make run", "make test"]


def notebook_output_problems(notebook: dict[str, Any]) -> list[str]:
    """What makes a notebook not 'clean': code cells with outputs or an execution count.

    Outputs in git mean noisy diffs, stale numbers that no longer match the code, and large
    files; the notebook tests execute every lesson anyway.
    """
    problems: list[str] = []
    for index, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {index}: has {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index}: execution_count is {cell['execution_count']}")
    return problems


@pytest.mark.parametrize(
    "path", NOTEBOOKS, ids=[p.relative_to(REPO_ROOT).as_posix() for p in NOTEBOOKS]
)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    problems = notebook_output_problems(json.loads(path.read_text(encoding="utf-8")))
    assert not problems, (
        f"{path.relative_to(REPO_ROOT)} has outputs; clear them before committing "
        "(jupyter nbconvert --clear-output --inplace FILE):\n" + "\n".join(problems)
    )


def test_output_check_flags_a_notebook_with_outputs() -> None:
    dirty = {
        "cells": [
            {"cell_type": "markdown", "source": "# Lesson"},
            {
                "cell_type": "code",
                "execution_count": 3,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
                "source": "print(1)",
            },
        ]
    }
    clean = {"cells": [{"cell_type": "code", "execution_count": None, "outputs": []}]}
    assert notebook_output_problems(dirty) == [
        "cell 2: has 1 output(s)",
        "cell 2: execution_count is 3",
    ]
    assert notebook_output_problems(clean) == []


_FENCE = re.compile(r"^\s*(```|~~~)")


def quick_start_block(readme: str) -> list[str] | None:
    """Lines of the first fenced code block in the `## Quick start` section, or None."""
    lines = readme.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().lower() == "## quick start"]
    if not starts:
        return None
    block: list[str] | None = None
    for line in lines[starts[0] + 1 :]:
        if block is None:
            if re.match(r"^#{1,2}\s", line):
                return None  # next section began before any code block
            if _FENCE.match(line):
                block = []
        elif _FENCE.match(line):
            return block
        else:
            block.append(line.rstrip())
    return None


def test_readme_quick_start_is_make_run_and_make_test() -> None:
    readme = REPO_ROOT / "README.md"
    assert readme.is_file(), "README.md is missing (it needs a '## Quick start' section)"
    block = quick_start_block(readme.read_text(encoding="utf-8"))
    assert block is not None, "README.md: no fenced code block under a '## Quick start' heading"
    assert block == QUICK_START_COMMANDS, (
        f"README.md quick start block is {block!r}, expected exactly {QUICK_START_COMMANDS!r}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# rksim\n\n## Quick start\n\n```bash\nmake run\nmake test\n```\n", QUICK_START_COMMANDS),
        ("## Quick start\n```\nmake test\n```\n```\nmake run\n```\n", ["make test"]),
        ("## Quick start\n\nJust run it.\n\n## Usage\n\n```\nmake run\n```\n", None),
        ("# rksim\n\n```\nmake run\nmake test\n```\n", None),
    ],
)
def test_quick_start_parser(text: str, expected: list[str] | None) -> None:
    assert quick_start_block(text) == expected
