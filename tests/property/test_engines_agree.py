"""Random Kafka scenarios without faults through both engines: the planner (kafka.engine auto)
and the event engine agree on every message's fate, and on its latencies up to the network
jitter; a run the planner hands back to the event engine is exactly the event engine's.

The jitter is lognormal with sigma 0.2 on a 0.1 ms one-way delay (sd ~0.02 ms per hop, a few
hops per path), drawn in another order by each engine: message by message the latencies differ
by a few hundredths of a millisecond, so the median difference must stay under 0.1 ms.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario_strategies import kafka_scenarios

from simulator import load_scenario, run


@settings(max_examples=15, deadline=None)
@given(doc=kafka_scenarios(), seed=st.integers(0, 2**32 - 1))
def test_planned_and_simulated_runs_agree(doc: dict[str, Any], seed: int) -> None:
    doc = copy.deepcopy(doc)
    doc["faults"] = []
    auto = run(load_scenario(doc), seed=seed, check_invariants=True)
    events_doc = copy.deepcopy(doc)
    events_doc["kafka"]["engine"] = "events"
    events = run(load_scenario(events_doc), seed=seed, check_invariants=True)
    if auto.manifest.get("engine") != "planned":
        # refused or fell back: the event engine's result, exactly
        assert auto.messages.equals(events.messages)
        assert auto.summary == events.summary
        return
    assert auto.summary["messages"] == events.summary["messages"]
    assert auto.summary["model"] == events.summary["model"]
    a, b = auto.messages, events.messages
    for column in ("ack_ms", "deliver_ms"):
        x, y = a[column].to_numpy(), b[column].to_numpy()
        both = ~np.isnan(x) & ~np.isnan(y)
        assert bool((np.isnan(x) == np.isnan(y)).all()), column
        if both.any():
            assert float(np.median(np.abs(x[both] - y[both]))) < 0.1, column
