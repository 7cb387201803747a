"""Plotly figures built from a Result, shared by the dashboard and the notebooks.

Every figure uses the same template and the same colour per fate, so a red bar means "lost"
everywhere. Time axes are in seconds of the measured phase (warm-up is negative); fault windows
are shaded and labelled with the fault kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from simulator.checker import FATES, TIMESERIES_COLUMNS
from simulator.recovery import NOT_RECOVERED

if TYPE_CHECKING:
    from simulator.results import Result

TEMPLATE = "plotly_white"
FATE_COLORS = {
    "delivered": "#2ca02c",
    "lost": "#d62728",
    "skipped": "#ff7f0e",
    "superseded": "#7f7f7f",
    "failed": "#9467bd",
    "indeterminate": "#8c564b",
    "in_flight": "#1f77b4",
}
LATENCY_COLUMNS = {"ack": ("ack_p50", "ack_p99"), "end_to_end": ("e2e_p50", "e2e_p99")}
FAULT_FILL = "rgba(214, 39, 40, 0.10)"
SERIES_COLORS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _seconds(frame: pd.DataFrame) -> pd.Series:
    return frame["t_ms"] / 1000.0


def _layout(fig: go.Figure, title: str, y_title: str, x_title: str = "time (s)") -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"t": 80},
    )
    return fig


def _shade_faults(fig: go.Figure, result: Result) -> go.Figure:
    """Shade each fault window, labelled by kind; an open window runs to the end of the phase."""
    duration_ms = float(result.summary.get("duration_s", 0.0)) * 1000.0
    for fault in result.summary.get("faults", []):
        begin = fault["begin_ms"]
        end = fault["end_ms"] if fault["end_ms"] is not None else max(duration_ms, begin)
        fig.add_vrect(
            x0=begin / 1000.0,
            x1=end / 1000.0,
            fillcolor=FAULT_FILL,
            line_width=0,
            layer="below",
            annotation_text=fault["kind"],
            annotation_position="top left",
        )
    return fig


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
    return _layout(fig, "What happened to every message", "", x_title="messages")


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
                x=_seconds(frame), y=frame[column], name=label, mode="lines", line={"color": color}
            )
        )
    if log_y:
        fig.update_yaxes(type="log")
    what = "Produce -> ack" if kind == "ack" else "Produce -> delivery"
    title = f"{what} latency by intended send time"
    return _layout(_shade_faults(fig, result), title, "latency (ms)")


def throughput_figure(result: Result) -> go.Figure:
    """Acknowledgements and deliveries per second over time, against the offered rate."""
    frame = result.timeseries
    per_s = 1000.0 / float(result.summary.get("bucket_ms") or _bucket_ms(frame))
    fig = go.Figure()
    series = (
        ("offered", "produced", "#aaaaaa", "dot"),
        ("acked", "acked", SERIES_COLORS[0], "solid"),
        ("delivered", "delivered", FATE_COLORS["delivered"], "solid"),
    )
    for name, column, color, dash in series:
        fig.add_trace(
            go.Scatter(
                x=_seconds(frame),
                y=frame[column] * per_s,
                name=name,
                mode="lines",
                line={"color": color, "dash": dash},
            )
        )
    return _layout(_shade_faults(fig, result), "Throughput", "messages per second")


def gauge_figure(result: Result, names: str | list[str]) -> go.Figure:
    """Sampled quantities (consumer_lag, queue length, ISR size, ...) over time."""
    wanted = [names] if isinstance(names, str) else list(names)
    frame = result.timeseries
    missing = [n for n in wanted if n not in frame.columns]
    if missing:
        raise ValueError(f"no gauge {', '.join(missing)}; recorded: {', '.join(gauges(result))}")
    fig = go.Figure()
    for name, color in zip(wanted, _cycle(len(wanted)), strict=True):
        fig.add_trace(
            go.Scatter(
                x=_seconds(frame),
                y=frame[name],
                name=name,
                mode="lines",
                line={"color": color, "shape": "hv"},
            )
        )
    return _layout(_shade_faults(fig, result), ", ".join(wanted), "value")


def gauges(result: Result) -> list[str]:
    """Names of the gauge columns of a result's time series."""
    return [c for c in result.timeseries.columns if c not in TIMESERIES_COLUMNS]


def compare_figure(results: dict[str, Result], metric: str) -> go.Figure:
    """One line per run of the same time-series column, on a shared time axis."""
    if not any(metric in r.timeseries.columns for r in results.values()):
        allowed = sorted({c for r in results.values() for c in r.timeseries.columns} - {"t_ms"})
        raise ValueError(f"no time-series column {metric!r}; allowed: {', '.join(allowed)}")
    fig = go.Figure()
    for (label, result), color in zip(results.items(), _cycle(len(results)), strict=True):
        frame = result.timeseries
        if metric not in frame.columns:
            continue
        fig.add_trace(
            go.Scatter(
                x=_seconds(frame), y=frame[metric], name=label, mode="lines", line={"color": color}
            )
        )
    return _layout(fig, f"{metric} by run", metric)


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
                "detected after (ms)": _readable(f["detect_ms"], "not detected"),
                "first write after (ms)": _readable(f["first_write_ms"], "none"),
                "p99 back after (ms)": _readable(f["p99_recovery_ms"], "n/a"),
                "lag back after (ms)": _readable(f["lag_recovery_ms"], "n/a"),
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


def _readable(value: float | str | None, missing: str) -> str:
    if value is None:
        return missing
    if value == NOT_RECOVERED:
        return "not recovered"
    return f"{float(value):,.1f}"


def _bucket_ms(frame: pd.DataFrame) -> float:
    steps = np.diff(frame["t_ms"].to_numpy())
    return float(steps[0]) if steps.size else 1000.0


def _cycle(n: int) -> list[str]:
    return [SERIES_COLORS[i % len(SERIES_COLORS)] for i in range(n)]
