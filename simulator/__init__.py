"""rksim core: scenario spec, run context, network, disk, faults, checker, results, runner.

Public API::

    from simulator import load_scenario, run, sweep
    result = run(load_scenario("queue_mm1"), seed=7)
    result.summary["messages"]["lost"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario import Scenario, ScenarioError, load_scenario

__version__ = "0.1.0"

__all__ = ["Result", "Scenario", "ScenarioError", "load_scenario", "run", "sweep"]

if TYPE_CHECKING:
    from simulator.results import Result
    from simulator.runner import run
    from simulator.sweeps import sweep


def __getattr__(name: str) -> Any:
    # heavy modules (pandas, pyarrow) load on first use, so `rksim validate` stays fast
    if name == "run":
        from simulator.runner import run

        return run
    if name == "sweep":
        from simulator.sweeps import sweep

        return sweep
    if name == "Result":
        from simulator.results import Result

        return Result
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
