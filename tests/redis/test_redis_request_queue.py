"""The request queue keeps rows in arrival order however requests interleave.

Chunks of requests arrive out of order with the queued ones (network jitter, retries); the queue
must hold exactly what a stable sort of everything pushed, minus what was taken, would hold: by
arrival, and on equal arrivals in the order they were pushed.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.redis.requests import RequestQueue, empty_rows


@pytest.mark.parametrize("seed", range(20))
def test_queue_is_a_stable_merge_of_everything_pushed(seed: int) -> None:
    rng = np.random.default_rng(seed)
    queue = RequestQueue(capacity=8)
    expected: list[tuple[float, int]] = []  # (arrival, push id) still queued, in order
    pushed = 0
    t_ms = 0.0
    for _ in range(80):
        if rng.random() < 0.55:
            # one row (a closed-loop client's or consumer's next request) half the time
            n = 1 if rng.random() < 0.5 else int(rng.integers(2, 30))
            arrival = t_ms + rng.random(n) * 6.0 - 3.0
            if rng.random() < 0.3:
                arrival = np.round(arrival)  # equal arrivals
            rows = empty_rows(n)
            rows["arrival"] = np.sort(arrival)
            rows["msg"] = pushed + np.arange(n)
            queue.push(rows)
            merged = expected + list(
                zip(rows["arrival"].tolist(), rows["msg"].tolist(), strict=True)
            )
            expected = sorted(merged, key=lambda item: item[0])  # stable: earlier push first
            pushed += n
            t_ms += 1.0
        elif expected:
            k = int(rng.integers(0, len(expected) + 1))
            taken = queue.pop(k)
            assert taken["msg"].tolist() == [m for _, m in expected[:k]]
            expected = expected[k:]
        view = queue.view()
        assert view["msg"].tolist() == [m for _, m in expected]
        assert view["arrival"].tolist() == [a for a, _ in expected]
