"""History storage: capacity reserved exactly, and messages start with no answer whatever the
capacity held before (the capacity is allocated untouched, filled when produced)."""

from __future__ import annotations

import numpy as np

from simulator import history as hist
from simulator.history import History


def test_reserve_allocates_exactly_what_is_asked() -> None:
    h = History()
    h.reserve(1_000_003)
    assert h.nbytes() == 1_000_003 * sum(
        np.dtype(dtype).itemsize for dtype, _ in History._FIELDS.values()
    )
    h.reserve(10)  # never shrinks
    assert h.nbytes() > 1_000_003


def test_produced_messages_start_unanswered_after_growth_and_reserve() -> None:
    h = History(capacity=16)
    first = h.produce(np.arange(10.0), np.arange(10))
    h.ack(range(first, first + 10), 20.0)
    h.deliver(np.arange(10), 30.0)
    h.reserve(5_000)
    more = h.produce(np.arange(100.0, 4_100.0), np.zeros(4_000, dtype=np.int64))
    h.produce(np.arange(50.0), np.ones(50, dtype=np.int64))  # grows past the reserve
    fresh = slice(more, h.n)
    assert np.isnan(h.ack_latency_ms[fresh]).all()
    assert np.isnan(h.deliver_latency_ms[fresh]).all()
    assert (h.status[fresh] == hist.PENDING).all()
    assert (h.cause[fresh] == 0).all() and (h.deliveries[fresh] == 0).all()
    # the first ten kept their facts through both reallocations
    assert np.allclose(h.ack_latency_ms[:10], 20.0 - np.arange(10.0))
    assert np.allclose(h.deliver_ms[:10], 30.0)
    assert (h.status[:10] == hist.ACKED).all()
    assert h.intended_ms[-1] == 49.0 and h.key[-1] == 1
