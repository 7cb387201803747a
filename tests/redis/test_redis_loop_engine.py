"""The vectorized loop timing equals the one-iteration-at-a-time recursion, whatever the load."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.redis.commands import IS_WRITE
from models.redis.loop import LoopCosts, _exact, plan, plan_one
from models.redis.requests import empty_rows


def make_rows(seed: int, n: int, rate_per_ms: float, pipeline: int) -> dict:
    rng = np.random.default_rng(seed)
    requests = max(1, n // pipeline)
    arrival = np.cumsum(rng.exponential(1.0 / rate_per_ms, requests))
    rows = empty_rows(requests * pipeline)
    index = np.arange(rows["arrival"].size)
    rows["arrival"][:] = np.repeat(arrival, pipeline)
    rows["cost"][:] = 0.0006 + rng.exponential(0.0004, index.size)
    rows["rcost"][:] = np.where(index % pipeline == 0, 0.002, 0.0) + 0.00025
    rows["wcost"][:] = np.where(index % pipeline == pipeline - 1, 0.0025, 0.0)
    rows["first"][:] = index % pipeline == 0
    rows["last"][:] = index % pipeline == pipeline - 1
    rows["op"][:] = rng.integers(0, 2, index.size)  # GET or SET
    return rows


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 3000),
    load=st.floats(0.05, 3.0),
    pipeline=st.sampled_from([1, 1, 2, 16]),
    io_threads=st.sampled_from([1, 4]),
    overhead=st.booleans(),
)
def test_vectorized_plan_equals_the_step_by_step_loop(
    seed: int, n: int, load: float, pipeline: int, io_threads: int, overhead: bool
) -> None:
    # load ~ utilization: a request costs ~5-7 µs, so load / 0.006 requests per ms
    rows = make_rows(seed, n, load / 0.006 / pipeline, pipeline)
    costs = LoopCosts(0.0017 if overhead else 0.0, 0.003 if overhead else 0.0, io_threads, True)
    fast = plan(rows, 0.0, costs)
    slow = _exact(rows, 0, 0.0, IS_WRITE[rows["op"]], costs, np.inf)
    assert np.array_equal(fast.start, slow.start)
    assert np.array_equal(fast.end, slow.end)
    np.testing.assert_allclose(fast.poll, slow.poll, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.exec_end, slow.exec_end, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.end_ms, slow.end_ms, rtol=0, atol=1e-9)
    assert np.array_equal(fast.has_write, slow.has_write)
    one = plan_one(rows, 0.0, costs)
    assert one.end[0] == slow.end[0]
    np.testing.assert_allclose(one.end_ms[0], slow.end_ms[0], rtol=0, atol=1e-9)


def test_without_overhead_the_loop_is_lindleys_fifo_queue() -> None:
    rows = make_rows(3, 20_000, 0.7 / 0.0054, 1)
    costs = LoopCosts(0.0, 0.0)
    rows["rcost"][:] = 0.0
    rows["wcost"][:] = 0.0
    p = plan(rows, 0.0, costs)
    # Lindley: each command starts when it arrives or when the previous one finished
    service = rows["cost"]
    finish = np.empty_like(service)
    t = 0.0
    for i, (a, s) in enumerate(zip(rows["arrival"].tolist(), service.tolist(), strict=True)):
        t = max(t, a) + s
        finish[i] = t
    last = p.end - 1
    np.testing.assert_allclose(p.exec_end, finish[last], rtol=0, atol=1e-9)
