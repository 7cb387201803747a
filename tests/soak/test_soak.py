"""Soak: a seeded random nemesis against both systems, invariants on, memory checked flat.

CI size: 60 s of simulated time at 200 messages/s (~12k messages, a dozen faults); the
benchmark variant (benchmarks/bench_soak.py) runs hours of simulated time.
"""

from __future__ import annotations

import gc
from typing import Any

import psutil
import pytest
from invariant_hooks import model_invariants_wired  # tests/property (see conftest.py)
from soak_support import soak_scenario

from simulator import load_scenario, run
from simulator.invariants import FATES

SIMULATED_S = 60.0
RATE_PER_S = 200.0
# The history keeps ~25 bytes per message and the time series one row per gauge sample, so the
# second half of this run legitimately adds well under 1 MiB; numpy grows the history arrays by
# doubling (one growth step can touch a few MiB) and the allocator keeps freed arenas. 32 MiB is
# far above all of that and far below what a per-event leak (a process, a closure or a record
# kept per message or per fault) costs over ~6k messages and a dozen faults.
RSS_GROWTH_LIMIT_BYTES = 32 * 2**20


@pytest.mark.parametrize("kind", ["kafka", "redis"])
def test_random_nemesis_soak_keeps_invariants_and_memory_flat(kind: str) -> None:
    process = psutil.Process()
    rss: dict[str, int] = {}

    def sample(fraction: float) -> None:
        if fraction >= 0.5 and "half" not in rss:
            gc.collect()
            rss["half"] = process.memory_info().rss

    spec = load_scenario(soak_scenario(kind, SIMULATED_S, RATE_PER_S))
    with model_invariants_wired():
        result = run(spec, seed=20261126, check_invariants=True, progress=sample)
    gc.collect()
    rss["end"] = process.memory_info().rss

    summary: dict[str, Any] = result.summary
    m = summary["messages"]
    assert sum(m[f] for f in FATES) == m["produced"]
    assert m["produced"] > 0.8 * SIMULATED_S * RATE_PER_S
    # a fault every ~5 s over 60 s: ~12 expected; fewer than 4 would mean the nemesis is broken
    assert len(summary["faults"]) >= 4, "the nemesis must have injected faults"
    growth = rss["end"] - rss["half"]
    assert growth < RSS_GROWTH_LIMIT_BYTES, f"RSS grew {growth / 2**20:.1f} MiB in the 2nd half"
