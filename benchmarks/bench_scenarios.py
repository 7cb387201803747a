"""Every built-in scenario at its default size: how long a user waits for `rksim run NAME`.

Issue #7 asks that every scenario of the library runs in under about 10 s at its default size
(a comparison: all its variants together, as `rksim compare NAME` runs them). One repetition
runs the whole library once; the facts give each scenario's wall time (`s.NAME`, seconds,
checker included) and the slowest one, and the harness reports the library's messages per wall
second as a ratio to bare SimPy like every benchmark. `--quick` runs the CI sizes instead.

`python -m benchmarks scenario_library --reps 1` (about a few minutes), or standalone with a
table sorted by time: `python -m benchmarks.bench_scenarios [--quick] [NAME ...]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from typing import Any

from benchmarks.harness import benchmark

BUDGET_S = 10.0  # issue #7: "every scenario runs in under ~10 s at its default size"


def time_scenario(name: str, *, quick: bool = False) -> tuple[float, int]:
    """Wall seconds and produced messages of one scenario (all variants of a comparison)."""
    from simulator import load_scenario, run
    from simulator.compare import compare

    spec = load_scenario(name, ci=quick)
    start = time.perf_counter()
    if spec.compare.variants:
        outcome = compare(spec, seed=spec.scenario.seed)
        results = list(outcome.results.values())
    else:
        results = [run(spec, seed=spec.scenario.seed)]
    elapsed = time.perf_counter() - start
    return elapsed, sum(int(r.summary["messages"]["produced"]) for r in results)


def time_library(names: Iterable[str], *, quick: bool = False) -> dict[str, tuple[float, int]]:
    return {name: time_scenario(name, quick=quick) for name in names}


def _setup(*, quick: bool = False) -> None:
    import simulator.compare  # noqa: F401  (imports are not part of a run)
    from simulator.scenario import builtin_names

    builtin_names()


@benchmark("scenario_library", setup=_setup)
def scenario_library(*, quick: bool = False) -> dict[str, Any]:
    """Every built-in scenario once at its default size (a comparison: all its variants)."""
    from simulator.scenario import builtin_names

    timings = time_library(builtin_names(), quick=quick)
    slowest = max(timings, key=lambda n: timings[n][0])
    facts: dict[str, Any] = {
        "messages": sum(m for _, m in timings.values()),
        "wall_s": sum(t for t, _ in timings.values()),
        "slowest_s": timings[slowest][0],
        "over_budget": sum(t > BUDGET_S for t, _ in timings.values()),
    }
    facts.update({f"s.{name}": t for name, (t, _) in timings.items()})
    return facts


def main(argv: list[str] | None = None) -> int:
    from simulator.scenario import builtin_names

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scenarios")
    parser.add_argument("names", nargs="*", help="scenarios (default: the whole library)")
    parser.add_argument("--quick", action="store_true", help="CI sizes instead of defaults")
    args = parser.parse_args(argv)
    names = args.names or builtin_names()
    rows = []
    for name in names:
        seconds, messages = time_scenario(name, quick=args.quick)
        rows.append((seconds, name, messages))
        print(f"{name:40} {seconds:7.2f} s  {messages:>10,} messages", file=sys.stderr)
    rows.sort(reverse=True)
    print(f"\n| scenario | wall s | messages | within {BUDGET_S:g} s |\n|---|---:|---:|---|")
    for seconds, name, messages in rows:
        print(
            f"| {name} | {seconds:.2f} | {messages:,} | {'yes' if seconds <= BUDGET_S else 'NO'} |"
        )
    over = [name for seconds, name, _ in rows if seconds > BUDGET_S]
    print(
        f"\n{len(rows) - len(over)} of {len(rows)} within {BUDGET_S:g} s"
        + (f"; over: {', '.join(over)}" if over else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
