"""Deliveries recorded in batches count first deliveries, duplicates, latencies and order exactly
as recording them one message at a time would."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.history import History

N_MESSAGES = 40
# a batch: increasing ids (a log read in order, maybe overlapping earlier batches) or any ids
# (redeliveries, several partitions merged), delivered at one time or one time each
INCREASING = st.lists(st.integers(0, N_MESSAGES - 1), min_size=1, max_size=15, unique=True).map(
    sorted
)
ANY = st.lists(st.integers(0, N_MESSAGES - 1), min_size=1, max_size=15)
BATCHES = st.lists(st.tuples(st.one_of(INCREASING, ANY), st.booleans()), max_size=8)


def one_at_a_time(keys: np.ndarray, intended: np.ndarray, batches: list) -> dict:
    """The plain definition: a first delivery below the highest id delivered for its key is out
    of order; later deliveries are duplicates; the first delivery time counts."""
    highest: dict[int, int] = {}
    latency = np.full(N_MESSAGES, np.nan, dtype=np.float32)
    out_of_order = duplicates = 0
    for ids, times in batches:
        for i, t in zip(ids, times, strict=True):
            if not np.isnan(latency[i]):
                duplicates += 1
                continue
            latency[i] = np.float32(t - intended[i])
            key = int(keys[i])
            out_of_order += i < highest.get(key, -1)
            highest[key] = max(highest.get(key, -1), i)
    return {"out_of_order": out_of_order, "duplicates": duplicates, "latency": latency}


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=BATCHES, n_keys=st.integers(1, 4))
def test_batched_deliveries_count_like_one_at_a_time(batches: list, n_keys: int):
    keys = np.arange(N_MESSAGES) * 7 % n_keys
    intended = np.arange(N_MESSAGES) * 1.5
    h = History(n_keys=n_keys)
    h.produce(intended, keys)
    recorded = []
    for step, (ids, one_time) in enumerate(batches):
        times = 100.0 + step + (0.0 if one_time else 0.25 * np.arange(len(ids)))
        times = np.broadcast_to(times, len(ids))
        h.deliver(np.array(ids, dtype=np.int64), times[0] if one_time else times, "retry")
        recorded.append((ids, times))
    expected = one_at_a_time(keys, intended, recorded)
    assert h.out_of_order == expected["out_of_order"]
    assert sum(h.duplicates_by_cause.values()) == expected["duplicates"]
    assert h.deliver_latency_ms.tobytes() == expected["latency"].tobytes()
