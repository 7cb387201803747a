"""What every figure shares: the template, one colour per fate, shaded fault windows, seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

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


def seconds(frame: pd.DataFrame) -> pd.Series:
    return frame["t_ms"] / 1000.0


def layout(fig: go.Figure, title: str, y_title: str, x_title: str = "time (s)") -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"t": 80},
    )
    return fig


def shade_faults(fig: go.Figure, result: Result) -> go.Figure:
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


def readable(value: float | str | None, missing: str) -> str:
    if value is None:
        return missing
    if value == NOT_RECOVERED:
        return "not recovered"
    return f"{float(value):,.1f}"


def bucket_ms_of(frame: pd.DataFrame) -> float:
    steps = np.diff(frame["t_ms"].to_numpy())
    return float(steps[0]) if steps.size else 1000.0


def cycle_colors(n: int) -> list[str]:
    return [SERIES_COLORS[i % len(SERIES_COLORS)] for i in range(n)]


def rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"
