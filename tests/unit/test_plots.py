"""Figures built from a hand-made Result: traces, titles, fault shading, colours."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.io as pio
import pytest

from simulator import checker, plots, systems
from simulator import scenario as sc
from simulator.context import FaultRecord, RunContext
from simulator.results import Result


def make_ctx() -> RunContext:
    """A run context of a model-less system whose history the test fills by hand."""
    systems.register(
        systems.System(kind="dummy", config=systems.SystemConfig, factory=lambda ctx: None)  # type: ignore[arg-type, return-value]
    )
    data = {
        "system": {"kind": "dummy"},
        "scenario": {"duration_s": 10},
        "checker": {"bucket_ms": 200},
    }
    return RunContext(sc.load_scenario(data))


def make_result(latency_ms: float = 1.0) -> Result:
    ctx = make_ctx()
    h = ctx.history
    intended = np.arange(0, 10_000, 5, dtype=float)
    n = intended.size
    h.produce(intended, 0)
    h.ack(range(n - 30), intended[: n - 30] + latency_ms)
    h.deliver(range(n - 60), intended[: n - 60] + 2 * latency_ms)
    h.lose(range(n - 60, n - 50), "not_fsynced_at_power_loss")
    h.lose(range(n - 50, n - 40), "unclean_election_truncation")
    h.skip(range(n - 40, n - 30), "committed_before_processing")
    h.fail(range(n - 30, n), 9_999.0)
    ctx.faults.append(FaultRecord(0, "partition", "", ["a", "b"], 2000.0, 3000.0))
    ctx.faults.append(FaultRecord(1, "crash", "leader", ["b1"], 6000.0, None))
    for t in range(0, 10_000, 100):
        ctx.gauge("consumer_lag", float(t % 700), t_ms=float(t))
    return Result.from_run(ctx, checker.check(ctx))


@pytest.fixture(scope="module")
def result() -> Result:
    return make_result()


def as_dict(fig: Any) -> dict[str, Any]:
    """The figure as the JSON a browser would receive."""
    return json.loads(fig.to_json())


def test_the_fates_figure_breaks_losses_out_by_cause(result: Result):
    fig = as_dict(plots.fates_figure(result))
    assert fig["layout"]["title"]["text"] == "What happened to every message"
    names = [t["name"] for t in fig["data"]]
    assert names == [
        "delivered",
        "lost: not_fsynced_at_power_loss",
        "lost: unclean_election_truncation",
        "skipped: committed_before_processing",
        "failed",
    ]
    assert {t["orientation"] for t in fig["data"]} == {"h"}
    assert fig["layout"]["barmode"] == "stack"
    colors = {t["name"]: t["marker"]["color"] for t in fig["data"]}
    assert colors["delivered"] == plots.FATE_COLORS["delivered"]
    assert colors["lost: unclean_election_truncation"] == plots.FATE_COLORS["lost"]
    assert sum(t["x"][0] for t in fig["data"]) == result.summary["messages"]["produced"]


@pytest.mark.parametrize(("kind", "columns"), [("ack", "ack_p"), ("end_to_end", "e2e_p")])
def test_the_latency_figure_shades_every_fault_window(result: Result, kind: str, columns: str):
    fig = as_dict(plots.latency_figure(result, kind=kind))
    assert "latency" in fig["layout"]["title"]["text"]
    assert [t["name"] for t in fig["data"]] == ["p50", "p99"]
    windows = sorted((s["x0"], s["x1"]) for s in fig["layout"]["shapes"])
    assert windows == [(2.0, 3.0), (6.0, 10.0)]  # the open crash is shaded to the end
    labels = {a["text"] for a in fig["layout"]["annotations"]}
    assert labels == {"partition", "crash"}


def test_an_unknown_latency_kind_is_refused(result: Result):
    with pytest.raises(ValueError, match="end_to_end"):
        plots.latency_figure(result, kind="p99")


def test_the_throughput_figure_shows_acks_and_deliveries_per_second(result: Result):
    fig = plots.throughput_figure(result)
    by_name = {t.name: t for t in fig.data}
    assert {"acked", "delivered"} <= set(by_name)
    # one message every 5 ms is 200 per second, acknowledged at that rate mid-run
    seconds = np.asarray(by_name["acked"].x)
    acked = np.asarray(by_name["acked"].y)[(seconds >= 1) & (seconds < 9)]
    np.testing.assert_allclose(acked, 200.0)
    assert as_dict(fig)["layout"]["title"]["text"] == "Throughput"


def test_the_gauge_figure_draws_named_gauges_and_refuses_unknown_ones(result: Result):
    fig = as_dict(plots.gauge_figure(result, "consumer_lag"))
    assert [t["name"] for t in fig["data"]] == ["consumer_lag"]
    assert plots.gauges(result) == ["consumer_lag"]
    with pytest.raises(ValueError, match="consumer_lag"):
        plots.gauge_figure(result, ["isr_size"])


def test_the_compare_figure_puts_runs_on_one_time_axis(result: Result):
    slow = make_result(latency_ms=50.0)
    fig = as_dict(plots.compare_figure({"fast": result, "slow": slow}, "ack_p99"))
    assert [t["name"] for t in fig["data"]] == ["fast", "slow"]
    assert "ack_p99" in fig["layout"]["title"]["text"]
    with pytest.raises(ValueError, match="ack_p99"):
        plots.compare_figure({"fast": result}, "nope")


def test_every_figure_uses_the_shared_template(result: Result):
    figures = [
        plots.fates_figure(result),
        plots.latency_figure(result),
        plots.throughput_figure(result),
        plots.gauge_figure(result, "consumer_lag"),
        plots.compare_figure({"a": result}, "acked"),
    ]
    for fig in figures:
        assert fig.layout.template == pio.templates[plots.TEMPLATE]


def test_the_fault_table_reads_like_a_report(result: Result):
    table = plots.fault_table(result)
    assert list(table["fault"]) == ["partition", "crash"]
    assert list(table["to (s)"]) == ["3", "final heal"]
    assert table["target"].iloc[0] == "a,b"
    assert set(table.columns) >= {
        "detected after (ms)",
        "p99 back after (ms)",
        "lag back after (ms)",
    }
    assert table["detected after (ms)"].iloc[0] == "not detected"
