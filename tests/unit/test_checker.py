"""The checker on hand-made histories: fates, anomalies, latency, availability, recovery."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import buckets, checker, quantiles, recovery, systems
from simulator import history as hist
from simulator import scenario as sc
from simulator.context import Event, FaultRecord, RunContext


def make_ctx(duration_s: float = 10.0, warmup_s: float = 1.0, **checker_cfg: Any) -> RunContext:
    """A run context of a model-less system whose history the test fills by hand."""
    systems.register(
        systems.System(kind="dummy", config=systems.SystemConfig, factory=lambda ctx: None)  # type: ignore[arg-type, return-value]
    )
    data = {
        "system": {"kind": "dummy"},
        "scenario": {"duration_s": duration_s, "warmup_s": warmup_s},
        "checker": checker_cfg,
    }
    return RunContext(sc.load_scenario(data))


def fates_of(ctx: RunContext) -> list[str]:
    return [checker.FATES[f] for f in checker.check(ctx).fates]


# fates -----------------------------------------------------------------------------------------
def test_each_fate_follows_from_the_recorded_facts():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.arange(10, dtype=float) * 100, np.arange(10))
    h.ack(range(0, 6), 1000.0)
    h.deliver(0, 1100.0)  # delivered
    h.lose(1, "not_fsynced_at_power_loss")  # acked then gone: lost
    h.skip(2, "committed_before_processing")  # skipped
    h.supersede(3, "overwritten")  # superseded
    # 4: acked, never delivered, no cause: still in flight
    h.fail(6, 900.0)  # failed
    h.indeterminate(7, 900.0)  # indeterminate
    # 8: pending, no cause: in flight
    h.skip(9, "offset_reset_latest")  # skipped even though never acked
    assert fates_of(ctx) == [
        "delivered",
        "lost",
        "skipped",
        "superseded",
        "in_flight",
        "in_flight",
        "failed",
        "indeterminate",
        "in_flight",
        "skipped",
    ]
    m = checker.check(ctx).summary["messages"]
    assert m["lost_by_cause"] == {"not_fsynced_at_power_loss": 1}
    assert m["skipped_by_cause"] == {"committed_before_processing": 1, "offset_reset_latest": 1}
    assert m["superseded_by_cause"] == {"overwritten": 1}
    assert m["anomalies"]["in_flight"] == m["in_flight"] == 3
    assert m["acked"] == 6


def test_a_loss_without_acknowledgement_keeps_the_clients_verdict():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.zeros(3), 0)
    h.fail(0, 5.0)
    h.indeterminate(1, 5.0)
    h.lose(range(3), "no_persistence")
    assert fates_of(ctx) == ["failed", "indeterminate", "in_flight"]
    assert checker.check(ctx).summary["messages"]["lost_by_cause"] == {}


def test_delivered_after_an_error_is_delivered_and_an_anomaly():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.zeros(3), 0)
    h.fail(0, 5.0)
    h.indeterminate(1, 5.0)
    h.deliver([0, 1], 10.0)
    summary = checker.check(ctx).summary
    assert fates_of(ctx) == ["delivered", "delivered", "in_flight"]
    assert summary["messages"]["anomalies"]["failed_but_delivered"] == 1
    assert summary["messages"]["anomalies"]["indeterminate_but_delivered"] == 1


def test_a_message_delivered_after_its_loss_was_recorded_is_resurrected():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.zeros(2), 0)
    h.ack(range(2), 1.0)
    h.lose(0, "unclean_election_truncation")
    h.deliver(0, 50.0)
    summary = checker.check(ctx).summary
    assert fates_of(ctx)[0] == "delivered"
    assert summary["messages"]["anomalies"]["resurrected"] == 1
    assert summary["messages"]["lost"] == 0


def test_the_first_recorded_cause_wins():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.zeros(1), 0)
    h.ack(0, 1.0)
    h.lose(0, "leader_failed_before_replication")
    h.supersede(0, "compacted")
    summary = checker.check(ctx).summary["messages"]
    assert summary["lost_by_cause"] == {"leader_failed_before_replication": 1}
    assert summary["superseded"] == 0


def test_duplicates_are_counted_by_cause_and_do_not_change_fates():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.zeros(3), 0)
    h.ack(range(3), 1.0)
    h.deliver(range(3), 2.0)
    h.deliver([0, 1], 3.0, dup_cause="producer_retry")
    h.deliver([0], 4.0, dup_cause="consumer_crash_redelivery")
    m = checker.check(ctx).summary["messages"]
    assert m["delivered"] == 3
    assert m["duplicates"] == 3
    assert m["duplicates_by_cause"] == {"consumer_crash_redelivery": 1, "producer_retry": 2}


def test_out_of_order_is_counted_per_key():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.zeros(4), np.array([0, 1, 0, 1]))
    # key 0: 2 before 0 (out of order); key 1: 1 then 3 (in order, interleaving is fine)
    h.deliver([2, 1], 5.0)
    h.deliver([0, 3], 6.0)
    assert checker.check(ctx).summary["messages"]["out_of_order"] == 1


def test_an_empty_history_gives_zero_counts_and_no_percentiles():
    ctx = make_ctx()
    result = checker.check(ctx)
    m = result.summary["messages"]
    assert m["produced"] == 0 and sum(m[f] for f in checker.FATES) == 0
    assert set(result.summary["latency_ms"]["ack"].values()) == {None}
    assert result.summary["throughput"]["acked_per_s"] == 0.0
    assert result.summary["availability"] == {"unavailable_s": 0.0, "unavailable_windows": []}
    assert len(result.build_messages()) == 0
    assert len(result.timeseries) > 0
    json.dumps(result.summary, allow_nan=False)


FACTS = st.lists(
    st.tuples(
        st.sampled_from(["ack", "fail", "indeterminate", "deliver", "lose", "skip", "supersede"]),
        st.lists(st.integers(0, 29), min_size=1, max_size=5),
        st.floats(0, 20_000),
    ),
    max_size=40,
)


def reference_fate(h: hist.History, i: int) -> str:
    """The fate rules of DESIGN.md, one message at a time."""
    if h.deliveries[i] > 0:
        return "delivered"
    if h.cause[i]:
        category = hist.CAUSES[int(h.cause[i])][0]
        if category != hist.LOST or h.status[i] == hist.ACKED:
            return category
    return {hist.FAILED: "failed", hist.INDETERMINATE: "indeterminate"}.get(
        int(h.status[i]), "in_flight"
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 30), facts=FACTS)
def test_fates_partition_the_produced_ids(n: int, facts: list[tuple[str, list[int], float]]):
    ctx = make_ctx(duration_s=20)
    h = ctx.history
    h.produce(np.linspace(0, 19_000, n), np.arange(n) % 3)
    for action, ids, t in facts:
        ids_in = np.array([i for i in ids if i < n], dtype=np.int64)
        if ids_in.size == 0:
            continue
        if action in ("ack", "fail", "indeterminate"):
            ids_in = np.unique(ids_in)
            getattr(h, action)(ids_in, t)
        elif action == "deliver":
            h.deliver(ids_in, t, dup_cause="retry")
        else:
            cause = {"lose": "never_arrived", "skip": "offset_reset", "supersede": "expired"}
            getattr(h, action)(ids_in, cause[action])
    result = checker.check(ctx)
    m = result.summary["messages"]
    assert sum(m[f] for f in checker.FATES) == n
    assert [checker.FATES[f] for f in result.fates] == [reference_fate(h, i) for i in range(n)]
    assert m["duplicates"] == int(np.clip(h.deliveries.astype(int) - 1, 0, None).sum())


# latency and throughput ------------------------------------------------------------------------
def test_latency_is_measured_from_the_intended_send_time():
    """A server stalled for 1 s answers everything at the end of the stall: no hidden queueing."""
    ctx = make_ctx(bucket_ms=100)
    h = ctx.history
    intended = np.arange(10_000, dtype=float)
    h.produce(intended, 0)
    ack = np.where((intended >= 5000) & (intended < 6000), 6000.0, intended + 1.0)
    h.ack(range(10_000), ack)
    h.deliver(range(10_000), ack + 2.0)
    summary = checker.check(ctx).summary
    assert summary["latency_ms"]["ack"]["max"] == 1000.0
    assert summary["latency_ms"]["ack"]["p50"] == 1.0
    # 10% of messages waited uniformly 1..1000 ms: the p95 is in the middle of the stall
    assert summary["latency_ms"]["ack"]["p95"] == pytest.approx(500, abs=5)
    assert summary["latency_ms"]["end_to_end"]["max"] == 1002.0
    ts = checker.check(ctx).timeseries
    stalled = ts[(ts.t_ms >= 5000) & (ts.t_ms < 6000)]
    # each stalled bucket's p99 is the wait of its earliest message, up to the end of the stall
    np.testing.assert_allclose(stalled.ack_p99, 6000 - stalled.t_ms, atol=1)


def test_throughput_counts_the_measured_phase_only():
    ctx = make_ctx(duration_s=10)
    h = ctx.history
    h.produce(np.arange(0, 10_000, 10, dtype=float), 0)  # 1000 messages over 10 s
    h.ack(range(1000), np.arange(0, 10_000, 10, dtype=float) + 5)  # the last acks after the end
    h.deliver(range(500), 12_000.0)  # in the final phase
    t = checker.check(ctx).summary["throughput"]
    assert t["offered_per_s"] == 100.0
    assert t["acked_per_s"] == 100.0
    assert t["delivered_per_s"] == 0.0


def test_grouped_quantiles_match_numpy_per_group():
    rng = np.random.default_rng(7)
    groups = rng.integers(0, 6, 500)
    values = rng.lognormal(size=500)
    qs = (0.5, 0.99, 0.0, 1.0)
    out, counts = quantiles.grouped_quantiles(groups, values, 8, qs)
    for g in range(8):
        sel = values[groups == g]
        assert counts[g] == sel.size
        expected = np.percentile(sel, [100 * q for q in qs]) if sel.size else [np.nan] * 4
        np.testing.assert_allclose(out[:, g], expected, rtol=1e-12)


def test_bucket_of_in_chunks_agrees_with_the_grid_index():
    grid = buckets.Grid(-100.0, 10.0, 50)
    times = np.array([-150.0, -100.0, -95.5, 0.0, 9.999, 10.0, 399.9, 400.0, np.nan, 1e9])
    bucket = grid.bucket_of(times, chunk=3)
    index, inside = grid.index(times)
    assert inside.sum() == 6  # outside the grid: before it, at its end, NaN and far beyond
    np.testing.assert_array_equal(bucket[inside], index)
    assert (bucket[~inside] == -1).all()
    np.testing.assert_array_equal(grid.count_buckets(bucket, chunk=4), grid.count(times))
    failed = np.arange(times.size) % 2 == 0
    np.testing.assert_array_equal(
        grid.count_buckets(bucket, failed, chunk=4), grid.count(times[failed])
    )


def test_the_timeseries_buckets_counts_and_latencies():
    ctx = make_ctx(duration_s=1, warmup_s=0.5, bucket_ms=100)
    h = ctx.history
    intended = np.arange(0, 1000, 2, dtype=float)
    h.produce(intended, 0)
    h.ack(range(intended.size), intended + 3)
    h.fail(range(10), 0.0)  # acked stays acked
    ctx.gauge("consumer_lag", 7.0, t_ms=150.0)
    ctx.gauge("consumer_lag", 9.0, t_ms=420.0)
    ts = checker.check(ctx).timeseries
    assert list(ts.columns[:9]) == list(checker.TIMESERIES_COLUMNS)
    assert ts.t_ms.iloc[0] == -500.0 and ts.t_ms.iloc[1] - ts.t_ms.iloc[0] == 100.0
    measured = ts[ts.t_ms >= 0].set_index("t_ms")
    assert measured.loc[0.0, "produced"] == 50
    assert measured.loc[900.0, "acked"] == 50 and measured.loc[1000.0, "acked"] == 1
    assert measured.loc[300.0, "ack_p99"] == 3.0
    assert np.isnan(measured.loc[300.0, "e2e_p50"])
    assert np.isnan(ts.set_index("t_ms").loc[0.0, "consumer_lag"])
    assert measured.loc[100.0, "consumer_lag"] == 7.0 and measured.loc[300.0, "consumer_lag"] == 7.0
    assert measured.loc[400.0, "consumer_lag"] == 9.0


def test_auto_bucket_gives_about_two_hundred_buckets():
    assert checker.auto_bucket_ms(10_000) == 50.0
    assert checker.auto_bucket_ms(60_000) == 200.0
    assert checker.auto_bucket_ms(10.0) == 1.0  # never below one millisecond
    for duration_ms in (1000.0, 777.0, 3_600_000.0, 86_400_000.0):
        assert 100 <= duration_ms / checker.auto_bucket_ms(duration_ms) <= 300


# availability ----------------------------------------------------------------------------------
def test_buckets_where_nothing_sent_was_acknowledged_are_unavailable_windows():
    ctx = make_ctx(duration_s=10, bucket_ms=100)
    h = ctx.history
    intended = np.arange(0, 10_000, 5, dtype=float)
    h.produce(intended, 0)
    up = ~(((intended >= 2000) & (intended < 3000)) | ((intended >= 7000) & (intended < 7200)))
    h.ack(np.flatnonzero(up), intended[up] + 1)
    h.fail(np.flatnonzero(~up), 0.0)
    availability = checker.check(ctx).summary["availability"]
    assert availability["unavailable_windows"] == [[2000.0, 3000.0], [7000.0, 7200.0]]
    assert availability["unavailable_s"] == pytest.approx(1.2)


# faults: detection, first write, recovery ------------------------------------------------------
def spiky_ctx(spike_until_ms: float | None) -> RunContext:
    """1 message/ms for 10 s, 1 ms latency except 200 ms from a fault at 4 s until `spike_until_ms`."""
    ctx = make_ctx(duration_s=10, bucket_ms=100, min_samples=20, hold_buckets=3)
    h = ctx.history
    intended = np.arange(10_000, dtype=float)
    h.produce(intended, 0)
    end = np.inf if spike_until_ms is None else spike_until_ms
    spike = (intended >= 4000) & (intended < end)
    h.ack(range(10_000), intended + np.where(spike, 200.0, 1.0))
    ctx.faults.append(FaultRecord(0, "crash", "leader", ["n1"], 4000.0, None))
    ctx.events.append(Event(3500.0, "failover", "sentinel"))  # before the fault: not its detection
    ctx.events.append(Event(4800.0, "snapshot", "n1"))
    ctx.events.append(Event(5250.0, "sdown", "sentinel"))
    return ctx


def test_p99_recovery_is_found_within_one_bucket():
    fault = checker.check(spiky_ctx(6000.0)).summary["faults"][0]
    assert fault["p99_recovery_ms"] == pytest.approx(2000.0, abs=100)
    assert fault["detect_ms"] == 1250.0
    assert fault["first_write_ms"] == 200.0
    assert fault["end_ms"] is None and fault["nodes"] == ["n1"]
    assert fault["lag_recovery_ms"] is None  # no consumer_lag gauge


def test_a_fault_that_never_recovers_says_so():
    fault = checker.check(spiky_ctx(None)).summary["faults"][0]
    assert fault["p99_recovery_ms"] == recovery.NOT_RECOVERED


def test_a_fault_without_a_pre_fault_baseline_has_no_recovery_time():
    ctx = spiky_ctx(6000.0)
    ctx.faults[0].begin_ms = 0.0
    assert checker.check(ctx).summary["faults"][0]["p99_recovery_ms"] is None


def test_consumer_lag_recovery_uses_the_lag_gauge():
    ctx = spiky_ctx(6000.0)
    for t in range(0, 12_000, 50):
        ctx.gauge("consumer_lag", 500.0 if 4000 <= t < 7000 else 2.0, t_ms=float(t))
    fault = checker.check(ctx).summary["faults"][0]
    assert fault["lag_recovery_ms"] == pytest.approx(3000.0, abs=100)


def test_first_write_is_none_when_nothing_is_acknowledged_after_the_fault():
    ctx = make_ctx(duration_s=10)
    h = ctx.history
    h.produce(np.arange(0, 10_000, 10, dtype=float), 0)
    h.ack(range(500), 1.0)
    ctx.faults.append(FaultRecord(0, "partition", "", ["n1", "n2"], 5000.0, 6000.0))
    fault = checker.check(ctx).summary["faults"][0]
    assert fault["first_write_ms"] is None and fault["detect_ms"] is None


# tables and determinism ------------------------------------------------------------------------
def test_the_messages_table_uses_categoricals_and_names_causes():
    ctx = make_ctx()
    h = ctx.history
    h.produce(np.zeros(3), np.array([4, 5, 6]))
    h.ack(range(3), 2.0)
    h.lose(1, "deleted_by_retention")
    h.deliver(2, 9.0)
    frame = checker.check(ctx).build_messages()
    assert list(frame.columns) == [
        "id",
        "key",
        "intended_ms",
        "ack_ms",
        "deliver_ms",
        "deliveries",
        "status",
        "fate",
        "cause",
    ]
    assert list(frame.fate.astype(str)) == ["in_flight", "lost", "delivered"]
    assert list(frame.cause.astype(str)) == ["", "deleted_by_retention", ""]
    assert list(frame.status.astype(str)) == ["acked"] * 3
    assert frame.fate.dtype == "category" and frame.cause.dtype == "category"


def test_events_and_faults_become_tables():
    ctx = make_ctx()
    ctx.events.append(Event(12.5, "leader_elected", "b2", {"partition": 3, "epoch": 7}))
    ctx.faults.append(FaultRecord(0, "crash", "leader", ["b1"], 100.0, None))
    result = checker.check(ctx)
    assert result.summary["sim_events"] == 1
    assert json.loads(result.events.detail.iloc[0]) == {"epoch": 7, "partition": 3}
    assert result.faults.nodes.iloc[0] == "b1" and np.isnan(result.faults.end_ms.iloc[0])


def test_the_summary_is_identical_for_identical_histories():
    first = json.dumps(checker.check(spiky_ctx(6000.0)).summary, allow_nan=False)
    assert first == json.dumps(checker.check(spiky_ctx(6000.0)).summary, allow_nan=False)
