"""The dashboard's default Playground run: what a learner waits for after pressing Run.

One repetition loads the Playground's default scenario at its default size (the page's own
`DEFAULT_SCENARIO`), runs it, and builds every figure the page draws for it, serialised to JSON
as Streamlit sends them to the browser. The facts split the wait into simulate (the run without
the checker), check (the checker) and figures. Issue #8 asks for the total to stay within about
3 s on a 2-core machine; the harness also reports it as a ratio to bare SimPy like every
benchmark.

`python -m benchmarks dashboard_playground --reps 5`
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import benchmark

DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard"


def _playground() -> Any:
    # The pages import their siblings by top-level name, as `streamlit run dashboard/app.py`
    # puts the app's folder on sys.path: do the same to use the page's own choices.
    if str(DASHBOARD_DIR) not in sys.path:
        sys.path.insert(0, str(DASHBOARD_DIR))
    from views import playground

    return playground


def _default_scenario() -> str:
    return str(_playground().DEFAULT_SCENARIO)


def _setup(*, quick: bool = False) -> None:
    import simulator.plots  # noqa: F401  (imports are not part of the wait after Run)
    from simulator import load_scenario

    load_scenario(_default_scenario(), ci=quick)


def playground_figures(result: Any) -> list[Any]:
    """The figures the Playground draws for a result, in page order (see views/playground.py)."""
    from simulator import plots

    figures = [
        plots.fates_figure(result),
        plots.latency_figure(result, kind="ack"),
        plots.latency_figure(result, kind="end_to_end"),
        plots.throughput_figure(result),
    ]
    gauges = plots.gauges(result)
    if gauges:
        figures.append(plots.gauge_figure(result, _playground().preferred_gauges(gauges)))
    return figures


@benchmark("dashboard_playground", setup=_setup)
def dashboard_playground(*, quick: bool = False) -> dict[str, Any]:
    """Default Playground scenario: run, check and build its figures (as JSON)."""
    from simulator import load_scenario, plots, run

    spec = load_scenario(_default_scenario(), ci=quick)
    start = time.perf_counter()
    result = run(spec, seed=spec.scenario.seed)
    ran = time.perf_counter()
    payload = sum(len(fig.to_json()) for fig in playground_figures(result))
    if result.summary.get("faults"):
        plots.fault_table(result)
    done = time.perf_counter()
    check_s = float(result.manifest.get("check_s") or 0.0)
    return {
        "messages": int(result.summary["messages"]["produced"]),
        "wall_s": done - start,
        "check_s": check_s,
        "simulate_s": (ran - start) - check_s,
        "figures_s": done - ran,
        "figure_json_bytes": payload,
    }
