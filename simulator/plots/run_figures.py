"""Figures of one run: fates, latency bands, throughput, gauges, and the fault/recovery table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from simulator.checker import FATES, TIMESERIES_COLUMNS
from simulator.plots.style import (
    FATE_COLORS,
    LATENCY_COLUMNS,
    SERIES_COLORS,
    bucket_ms_of,
    cycle_colors,
    layout,
    readable,
    seconds,
    shade_faults,
)

if TYPE_CHECKING:
    from simulator.results import Result


def fates_figure(result: Result) -> go.Figure:
    """One stacked bar: every produced message, by fate, with loss/skip/supersede causes apart."""
    messages = result.summary["messages"]
    produced = messages["produced"]
    fig = go.Figure()
    for fate in FATES:
        causes = messages.get(f"{fate}_by_cause") or {}
        parts = list(causes.items()) if causes else [(None, messages[fate])]
        for cause, count in parts:
            if count == 0 and fate != "delivered":
                continue
            name = fate if cause is None else f"{fate}: {cause}"
            share = 100.0 * count / produced if produced else 0.0
            fig.add_trace(
                go.Bar(
                    x=[count],
                    y=["messages"],
                    orientation="h",
                    name=name,
                    marker={"color": FATE_COLORS[fate], "line": {"color": "white", "width": 1}},
                    hovertemplate=f"{name}: %{{x:,}} ({share:.2f}%)<extra></extra>",
                )
            )
    fig.update_layout(barmode="stack", height=260, showlegend=True)
    fig.update_yaxes(showticklabels=False)
    return layout(fig, "What happened to every message", "", x_title="messages")


def latency_figure(result: Result, kind: str = "ack", log_y: bool = False) -> go.Figure:
    """p50 and p99 latency per bucket of intended send time, with fault windows shaded."""
    if kind not in LATENCY_COLUMNS:
        raise ValueError(f"latency kind {kind!r}; allowed: {', '.join(LATENCY_COLUMNS)}")
    frame = result.timeseries
    fig = go.Figure()
    for column, label, color in zip(
        LATENCY_COLUMNS[kind], ("p50", "p99"), SERIES_COLORS, strict=False
    ):
        fig.add_trace(
            go.Scatter(
                x=seconds(frame), y=frame[column], name=label, mode="lines", line={"color": color}
            )
        )
    if log_y:
        fig.update_yaxes(type="log")
    what = "Produce -> ack" if kind == "ack" else "Produce -> delivery"
    title = f"{what} latency by intended send time"
    return layout(shade_faults(fig, result), title, "latency (ms)")


def throughput_figure(result: Result) -> go.Figure:
    """Acknowledgements and deliveries per second over time, against the offered rate."""
    frame = result.timeseries
    per_s = 1000.0 / float(result.summary.get("bucket_ms") or bucket_ms_of(frame))
    fig = go.Figure()
    series = (
        ("offered", "produced", "#aaaaaa", "dot"),
        ("acked", "acked", SERIES_COLORS[0], "solid"),
        ("delivered", "delivered", FATE_COLORS["delivered"], "solid"),
    )
    for name, column, color, dash in series:
        fig.add_trace(
            go.Scatter(
                x=seconds(frame),
                y=frame[column] * per_s,
                name=name,
                mode="lines",
                line={"color": color, "dash": dash},
            )
        )
    return layout(shade_faults(fig, result), "Throughput", "messages per second")


def gauge_figure(result: Result, names: str | list[str]) -> go.Figure:
    """Sampled quantities (consumer_lag, queue length, ISR size, ...) over time."""
    wanted = [names] if isinstance(names, str) else list(names)
    frame = result.timeseries
    missing = [n for n in wanted if n not in frame.columns]
    if missing:
        raise ValueError(f"no gauge {', '.join(missing)}; recorded: {', '.join(gauges(result))}")
    fig = go.Figure()
    for name, color in zip(wanted, cycle_colors(len(wanted)), strict=True):
        fig.add_trace(
            go.Scatter(
                x=seconds(frame),
                y=frame[name],
                name=name,
                mode="lines",
                line={"color": color, "shape": "hv"},
            )
        )
    return layout(shade_faults(fig, result), ", ".join(wanted), "value")


def gauges(result: Result) -> list[str]:
    """Names of the gauge columns of a result's time series."""
    return [c for c in result.timeseries.columns if c not in TIMESERIES_COLUMNS]


def fault_table(result: Result) -> pd.DataFrame:
    """One readable row per fault: when, where, and how long until detected / writing / recovered."""
    rows = []
    for f in result.summary.get("faults", []):
        rows.append(
            {
                "#": f["index"],
                "fault": f["kind"],
                "target": f["target"] or ",".join(f["nodes"]),
                "nodes": ",".join(f["nodes"]),
                "from (s)": f["begin_ms"] / 1000.0,
                "to (s)": "final heal" if f["end_ms"] is None else f"{f['end_ms'] / 1000.0:g}",
                "detected after (ms)": readable(f["detect_ms"], "not detected"),
                "first write after (ms)": readable(f["first_write_ms"], "none"),
                "p99 back after (ms)": readable(f["p99_recovery_ms"], "n/a"),
                "lag back after (ms)": readable(f["lag_recovery_ms"], "n/a"),
            }
        )
    columns = [
        "#",
        "fault",
        "target",
        "nodes",
        "from (s)",
        "to (s)",
        "detected after (ms)",
        "first write after (ms)",
        "p99 back after (ms)",
        "lag back after (ms)",
    ]
    return pd.DataFrame(rows, columns=columns)
