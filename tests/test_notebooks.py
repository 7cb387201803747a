"""Every lesson runs top to bottom at its CI size (a failing exercise check fails the test),
and every lesson has the shape issue 9 asks for."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
# The course of issue 9: one lesson per number, in this order.
LESSONS = [
    "00_quickstart",
    "01_event_loop",
    "02_redis_persistence",
    "03_delivery_pubsub_streams_kafka",
    "04_kafka_replication",
    "05_consumer_offsets",
    "06_failure_showdown",
    "07_scaling",
    "08_batch_experiments",
    "09_choosing",
]
# Figures come from simulator.plots (the dashboard's), never from plotting code in a lesson.
PLOTTING_CODE = re.compile(r"^\s*(import|from)\s+(plotly|matplotlib|seaborn|altair)\b", re.M)


def code_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_there_are_lessons() -> None:
    assert NOTEBOOKS, "notebooks/ holds no lessons"


def test_every_lesson_of_the_course_exists() -> None:
    assert [p.stem for p in NOTEBOOKS] == LESSONS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_lesson_shape(path: Path) -> None:
    """Size switch in the first code cell, a predict-then-run exercise with a checking cell,
    figures from simulator.plots, imports from the installed package."""
    nb = nbformat.read(path, as_version=4)
    code = code_cells(nb)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert code and "RKSIM_NOTEBOOK_SIZE" in code[0], "the first code cell must read the size"
    assert re.search(r"\bpredict\b", prose, re.I), "no 'predict, then run' exercise"
    assert any(re.search(r"^\s*assert\b", c, re.M) for c in code), "no cell checks an answer"
    assert any("plots." in c for c in code), "no figure from simulator.plots"
    for source in code:
        assert not PLOTTING_CODE.search(source), f"plotting code in the lesson:\n{source}"
        assert "sys.path" not in source, "rksim comes from the installed package, not a path hack"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    os.environ["RKSIM_NOTEBOOK_SIZE"] = "ci"
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
