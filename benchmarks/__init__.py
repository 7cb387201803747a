"""Benchmarks: `python -m benchmarks [NAME ...] [--reps 5] [--quick]` (`make bench`).

Never part of `make test`. Each benchmark is reported as a ratio to bare SimPy on the same
machine and the memory it grows per message; see `benchmarks.harness` for the method.

Add one by registering a function in a `benchmarks/bench_*.py` module (found automatically)::

    from benchmarks.harness import benchmark, run_scenario, scenario_benchmark

    scenario_benchmark("kafka_acks_all", "kafka_acks_all", {"workload.rate_per_s": 50_000})

    @benchmark("history_append")
    def history_append(*, quick: bool = False) -> dict:
        ...  # one repetition
        return {"messages": n, "wall_s": elapsed}
"""

from __future__ import annotations

import importlib
import pkgutil

from benchmarks.harness import REGISTRY, Benchmark, benchmark, measure, run_scenario

__all__ = ["REGISTRY", "Benchmark", "benchmark", "load_all", "measure", "run_scenario"]


def load_all() -> dict[str, Benchmark]:
    """Import every `benchmarks/bench_*.py` module so its benchmarks register themselves."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("bench_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return REGISTRY
