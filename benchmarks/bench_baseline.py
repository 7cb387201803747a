"""The baseline measured against itself: its median ratio should be ~1.

A self-check of the method: a ratio far from 1 (say outside 0.8-1.25) means the machine was
too noisy for the other numbers of the same run to be trusted.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import BASELINE_EVENTS, BASELINE_EVENTS_QUICK, bare_simpy_rate, benchmark


@benchmark("baseline")
def baseline(*, quick: bool = False) -> dict[str, Any]:
    """Bare SimPy `yield env.timeout(1)` loop, measured like the baseline itself."""
    n_events = BASELINE_EVENTS_QUICK if quick else BASELINE_EVENTS
    bare_simpy_rate(min(10_000, n_events))  # the same warm-up as the baseline child
    rate = bare_simpy_rate(n_events)
    return {"messages": n_events, "wall_s": n_events / rate}
