"""The decision guide, measured: run every scenario the guide cites and write its numbers.

Each cited scenario runs once (a comparison through `compare`, a single scenario through
`run`); `guide_rows` fills the rows with the measured values and `report_render` writes one
self-contained HTML file or the Markdown of `docs/decision-guide.md`.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.compare import compare
from simulator.guide_rows import (
    COST_SCENARIO,
    GENERATED_MARK,
    GUIDE_FILE,
    GuideRow,
    Measured,
    Prices,
    bytes_per_message,
    cost_table,
    held_count,
    load_guide,
    row_table,
)
from simulator.report_render import render_html, render_markdown
from simulator.scenario import load_scenario

__all__ = [
    "COST_SCENARIO",
    "GENERATED_MARK",
    "GUIDE_FILE",
    "GuideRow",
    "Measured",
    "Prices",
    "build_markdown",
    "build_report",
    "bytes_per_message",
    "cost_table",
    "held_count",
    "load_guide",
    "measure",
    "render_html",
    "render_markdown",
    "row_table",
]


def measure(
    rows: list[GuideRow],
    *,
    ci: bool = False,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Measured]:
    """Run every scenario the rows cite, once each, with the same seed."""
    from simulator.runner import run

    names = list(dict.fromkeys(n for row in rows for n in row.scenarios))
    if COST_SCENARIO not in names:
        names.append(COST_SCENARIO)
    measured: dict[str, Measured] = {}
    for name in names:
        if progress is not None:
            progress(name)
        spec = load_scenario(name, ci=ci)
        if spec.compare.variants:
            outcome = compare(spec, seed=seed)
            descriptions = {v.label: v.description for v in outcome.variants}
            measured[name] = Measured(
                name, spec, outcome.results, outcome.expectations, descriptions
            )
        else:
            result = run(spec, seed=seed)
            measured[name] = Measured(name, spec, {"run": result}, result.expectations)
    return measured


# entry points ----------------------------------------------------------------------------------
def _rows(rows: list[GuideRow] | list[str] | None) -> list[GuideRow]:
    guide = load_guide()
    if rows is None:
        return guide
    ids = {r.id: r for r in guide}
    return [ids[r] if isinstance(r, str) else r for r in rows]


def build_report(
    rows: list[GuideRow] | list[str] | None = None,
    ci: bool = False,
    seed: int = 1,
    prices: Prices | None = None,
) -> str:
    """Run the guide's scenarios and return the report as one self-contained HTML page."""
    chosen = _rows(rows)
    measured = measure(chosen, ci=ci, seed=seed)
    return render_html(chosen, measured, prices or Prices(), ci=ci, seed=seed)


def build_markdown(
    rows: list[GuideRow] | list[str] | None = None,
    ci: bool = False,
    seed: int = 1,
    prices: Prices | None = None,
) -> str:
    """Run the guide's scenarios and return docs/decision-guide.md."""
    chosen = _rows(rows)
    measured = measure(chosen, ci=ci, seed=seed)
    return render_markdown(chosen, measured, prices or Prices(), ci=ci, seed=seed)
