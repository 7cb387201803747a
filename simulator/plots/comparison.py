"""Figures across runs of the same workload and faults: fates side by side, shared time axes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from simulator.checker import FATES, TIMESERIES_COLUMNS
from simulator.plots.style import (
    FATE_COLORS,
    FAULT_FILL,
    TEMPLATE,
    bucket_ms_of,
    cycle_colors,
    layout,
    seconds,
)

if TYPE_CHECKING:
    from simulator.results import Result


def compare_figure(results: dict[str, Result], metric: str) -> go.Figure:
    """One line per run of the same time-series column, on a shared time axis."""
    if not any(metric in r.timeseries.columns for r in results.values()):
        allowed = sorted({c for r in results.values() for c in r.timeseries.columns} - {"t_ms"})
        raise ValueError(f"no time-series column {metric!r}; allowed: {', '.join(allowed)}")
    fig = go.Figure()
    for (label, result), color in zip(results.items(), cycle_colors(len(results)), strict=True):
        frame = result.timeseries
        if metric not in frame.columns:
            continue
        fig.add_trace(
            go.Scatter(
                x=seconds(frame), y=frame[metric], name=label, mode="lines", line={"color": color}
            )
        )
    return layout(fig, f"{metric} by run", metric)


def compare_fates_figure(results: dict[str, Result]) -> go.Figure:
    """One stacked bar per variant: the share of produced messages in each fate (and cause)."""
    labels = list(results)
    fig = go.Figure()
    names: list[tuple[str, str | None]] = []
    for result in results.values():
        messages = result.summary["messages"]
        for fate in FATES:
            causes = messages.get(f"{fate}_by_cause") or {}
            for cause in causes or [None]:
                if (fate, cause) not in names:
                    names.append((fate, cause))
    for fate, cause in names:
        counts = []
        for result in results.values():
            messages = result.summary["messages"]
            causes = messages.get(f"{fate}_by_cause") or {}
            counts.append(causes.get(cause, 0) if cause is not None else messages[fate])
        if not any(counts) and fate != "delivered":
            continue
        produced = [max(1, r.summary["messages"]["produced"]) for r in results.values()]
        name = fate if cause is None else f"{fate}: {cause}"
        fig.add_trace(
            go.Bar(
                x=[100.0 * c / p for c, p in zip(counts, produced, strict=True)],
                y=labels,
                orientation="h",
                name=name,
                customdata=counts,
                marker={"color": FATE_COLORS[fate], "line": {"color": "white", "width": 1}},
                hovertemplate=f"%{{y}} · {name}: %{{customdata:,}} (%{{x:.2f}}%)<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        height=140 + 50 * len(labels),
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(labels))},
    )
    return layout(fig, "What happened to every message, by variant", "", "% of produced")


PANEL_TITLES = {
    "ack_p99": "produce -> ack p99 (ms)",
    "ack_p50": "produce -> ack p50 (ms)",
    "e2e_p99": "produce -> delivery p99 (ms)",
    "e2e_p50": "produce -> delivery p50 (ms)",
    "acked_per_s": "acknowledged per second",
    "delivered_per_s": "delivered per second",
    "produced_per_s": "produced per second",
    "failed_per_s": "failed per second",
}

_RATE_SUFFIX = "_per_s"


def compare_panels(results: dict[str, Result]) -> list[str]:
    """The default panels of `compare_timeseries_figure`: p99s, throughput, shared gauges."""
    panels = ["ack_p99", "e2e_p99", "acked_per_s", "delivered_per_s"]
    frames = [r.timeseries for r in results.values()]
    shared = set.intersection(*(set(f.columns) for f in frames)) if frames else set()
    panels += sorted(c for c in shared if c not in TIMESERIES_COLUMNS)
    return panels


def _panel_series(result: Result, panel: str) -> pd.Series | None:
    frame = result.timeseries
    if panel in frame.columns:
        return frame[panel]
    column = panel.removesuffix(_RATE_SUFFIX)
    if panel.endswith(_RATE_SUFFIX) and column in frame.columns:
        per_s = 1000.0 / float(result.summary.get("bucket_ms") or bucket_ms_of(frame))
        return frame[column] * per_s
    return None


def compare_timeseries_figure(
    results: dict[str, Result], panels: list[str] | None = None
) -> go.Figure:
    """Stacked panels on one shared time axis, one line per variant (same colour everywhere).

    A panel is a time-series column (`ack_p99`, `consumer_lag`, ...) or a count column with
    `_per_s` (`acked_per_s`): the count per bucket as a rate. Fault windows are shaded in every
    panel (a comparison runs one fault schedule; windows that differ are all shown).
    """
    from plotly.subplots import make_subplots

    chosen = panels or compare_panels(results)
    unknown = [p for p in chosen if all(_panel_series(r, p) is None for r in results.values())]
    if unknown:
        raise ValueError(
            f"no time series {', '.join(unknown)}; allowed: {', '.join(compare_panels(results))}"
        )
    fig = make_subplots(
        rows=len(chosen),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.08, 0.3 / max(1, len(chosen))),
        subplot_titles=[PANEL_TITLES.get(p, p) for p in chosen],
    )
    colors = dict(zip(results, cycle_colors(len(results)), strict=True))
    for row, panel in enumerate(chosen, start=1):
        for label, result in results.items():
            series = _panel_series(result, panel)
            if series is None:
                continue
            fig.add_trace(
                go.Scatter(
                    x=seconds(result.timeseries),
                    y=series,
                    name=label,
                    legendgroup=label,
                    showlegend=row == 1,
                    mode="lines",
                    line={"color": colors[label]},
                    hovertemplate=f"{label}: %{{y:.4g}} at %{{x:.2f}} s<extra></extra>",
                ),
                row=row,
                col=1,
            )
    windows: dict[tuple[str, float, float], None] = {}
    for result in results.values():
        duration_ms = float(result.summary.get("duration_s", 0.0)) * 1000.0
        for fault in result.summary.get("faults", []):
            end = fault["end_ms"] if fault["end_ms"] is not None else max(duration_ms, 0.0)
            windows[(fault["kind"], fault["begin_ms"] / 1000.0, end / 1000.0)] = None
    for kind, begin_s, end_s in windows:
        fig.add_vrect(
            x0=begin_s,
            x1=end_s,
            fillcolor=FAULT_FILL,
            line_width=0,
            layer="below",
            row="all",
            col=1,
        )
        fig.add_annotation(  # labelled once, in the top panel
            x=begin_s,
            y=1.0,
            xref="x",
            yref="y domain",
            text=kind,
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"size": 11},
        )
    fig.update_xaxes(title_text="time (s)", row=len(chosen), col=1)
    fig.update_layout(
        template=TEMPLATE,
        title="Side by side on one time axis",
        height=180 + 200 * len(chosen),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"t": 110},
        hovermode="x unified",
    )
    return fig
