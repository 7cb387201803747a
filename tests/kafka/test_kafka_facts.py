"""The Kafka model's facts buffer: deliveries handed to the history in id order only when that
changes nothing the history records (first deliveries, duplicates, out-of-order count)."""

from __future__ import annotations

import numpy as np

from models.kafka.facts import Facts, id_order
from simulator.history import History

N_KEYS = 40
N_STREAMS = 4


def stream_of_key() -> np.ndarray:
    return (np.arange(N_KEYS) % N_STREAMS).astype(np.uint16)


def make_history(n: int) -> History:
    h = History(n_keys=N_KEYS)
    h.produce(np.arange(n, dtype=float), np.arange(n) % N_KEYS)
    return h


def test_id_order_sorts_ids_whose_streams_each_increase():
    ids = np.array([8, 9, 2, 3, 12, 4], dtype=np.int64)
    streams = np.array([0, 0, 1, 1, 0, 1], dtype=np.uint16)
    order = id_order(ids, streams)
    assert order is not None
    assert ids[order].tolist() == sorted(ids.tolist())


def test_id_order_refuses_a_stream_going_back_and_repeated_ids():
    back = np.array([8, 9, 2, 3, 5], dtype=np.int64)
    assert id_order(back, np.array([0, 0, 1, 1, 0], dtype=np.uint16)) is None
    repeated = np.array([4, 5, 5, 6], dtype=np.int64)
    assert id_order(repeated, np.array([0, 0, 0, 0], dtype=np.uint16)) is None


def _deliver_all(facts: Facts, chunks: list[np.ndarray]) -> History:
    for k, ids in enumerate(chunks):
        facts.deliver(ids, 1000.0 + k + np.arange(ids.shape[0], dtype=float) * 0.01)
    facts.flush()
    return facts.history


def test_reordered_flush_records_the_same_history_as_the_recording_order():
    rng = np.random.default_rng(3)
    n = 2000
    # per stream increasing runs, interleaved across streams (how consumers deliver partitions)
    runs: list[np.ndarray] = []
    keys = np.arange(n) % N_KEYS
    for s in range(N_STREAMS):
        mine = np.flatnonzero(keys % N_STREAMS == s)
        runs.extend(np.array_split(mine, 25))
    rng.shuffle(runs)  # type: ignore[arg-type]
    runs.sort(key=lambda r: (int(r[0]) // 300, int(r[0])))  # streams interleaved, each in order
    whole = np.concatenate(runs)
    assert not (whole[1:] > whole[:-1]).all()  # the history would not take its cheap path
    assert id_order(whole, stream_of_key()[whole % N_KEYS]) is not None  # the reorder happens
    cases = {
        "in stream order": runs,
        # a redelivery of an earlier run (duplicates) and a run delivered late (out of order)
        "with anomalies": [*runs[:30], runs[3], *runs[31:], runs[30]],
    }
    for name, chunks in cases.items():
        plain = _deliver_all(Facts(make_history(n)), chunks)
        ordered = _deliver_all(Facts(make_history(n), stream_of_key()), chunks)
        assert plain.out_of_order == ordered.out_of_order, name
        assert plain.duplicates_by_cause == ordered.duplicates_by_cause, name
        np.testing.assert_array_equal(plain.deliveries, ordered.deliveries, err_msg=name)
        np.testing.assert_array_equal(
            plain.deliver_latency_ms, ordered.deliver_latency_ms, err_msg=name
        )
    # the anomalies are real: the check above compared something that can differ
    anomalous = _deliver_all(Facts(make_history(n)), cases["with anomalies"])
    assert anomalous.out_of_order > 0
    assert sum(anomalous.duplicates_by_cause.values()) > 0
