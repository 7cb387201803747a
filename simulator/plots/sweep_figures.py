"""Figures of a sweep: a metric against a parameter, one line per series, with confidence bands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from simulator.plots.style import (
    SERIES_COLORS,
    layout,
    rgba,
)

if TYPE_CHECKING:
    pass


MAX_SWEEP_SERIES = 8


def _short(column: str) -> str:
    return column.removeprefix("param.")


def sweep_facet(table: pd.DataFrame) -> str | None:
    """The column that splits a sweep into panels: system if several, else scenario if several."""
    for column in ("system", "scenario"):
        if column in table.columns and table[column].nunique() > 1:
            return column
    return None


def sweep_figure(
    table: pd.DataFrame,
    parameter: str,
    metric: str,
    facet: str | None = None,
    color: str | list[str] | None = None,
    confidence: float = 0.95,
) -> go.Figure:
    """A metric against one swept parameter: the mean over seeds with its t confidence band.

    `table` is a sweep table (one row per run). One line per combination of the other varied
    parameters (or of `color`), one panel per value of `facet` (e.g. "system"). Points that
    differ in more parameters than lines can show (sampled ranges) are drawn as markers with
    confidence error bars.
    """
    from plotly.subplots import make_subplots

    from simulator.stats import point_columns, point_stats

    x_col = parameter if parameter in table.columns else f"param.{parameter}"
    swept = [c for c in table.columns if c.startswith("param.")]
    if x_col not in table.columns:
        raise ValueError(
            f"no swept parameter {parameter!r}; allowed: {', '.join(map(_short, swept))}"
        )
    if metric not in table.columns:
        raise ValueError(f"no metric column {metric!r} in the sweep table")
    by = point_columns(table)
    if facet is not None and facet not in by:
        by.append(facet)
    stats = point_stats(table, [metric], confidence, by=by)
    stats = stats[stats[x_col].notna()]
    panels = stats.groupby(facet, dropna=False) if facet else None

    def varies(column: str) -> bool:  # within a panel (scenario does not, faceted by system)
        if panels is None:
            return bool(stats[column].nunique() > 1)
        return bool(panels[column].nunique().max() > 1)

    others = [c for c in by if c not in (x_col, facet) and varies(c)]
    if color is not None:
        series = [color] if isinstance(color, str) else list(color)
    else:
        n_series = len(stats[others].drop_duplicates()) if others else 1
        series = others if n_series <= MAX_SWEEP_SERIES else []
    scatter = bool(set(others) - set(series))
    labels: dict[str, str] = {}  # series name -> colour, the same in every panel
    facets = sorted(stats[facet].dropna().unique(), key=str) if facet else [None]
    if len(facets) > 1:
        fig = make_subplots(
            rows=1, cols=len(facets), subplot_titles=[f"{facet} = {v}" for v in facets]
        )
    else:
        fig = go.Figure()
    level = f"{confidence:.0%}"
    for column, facet_value in enumerate(facets, start=1):
        part = stats if facet is None else stats[stats[facet] == facet_value]
        groups = part.groupby(series, dropna=False, sort=True) if series else [((), part)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            name = ", ".join(f"{_short(c)}={v}" for c, v in zip(series, key, strict=True))
            name = name or metric
            first = name not in labels
            labels.setdefault(name, SERIES_COLORS[len(labels) % len(SERIES_COLORS)])
            line_color = labels[name]
            group = group.sort_values(
                x_col, key=lambda s: s if s.dtype.kind in "iuf" else s.astype(str)
            )
            where = {"row": 1, "col": column} if len(facets) > 1 else {}
            hover = (
                f"{_short(x_col)}=%{{x}}<br>mean %{{y:.4g}} ± %{{customdata[0]:.2g}} "
                f"({level} CI)<br>n=%{{customdata[1]}}<extra>{name}</extra>"
            )
            custom = group[["half_width", "n"]].to_numpy()
            common = {"legendgroup": name, "x": group[x_col]}
            if scatter or group[x_col].duplicated().any():
                fig.add_trace(
                    go.Scatter(
                        **common,
                        y=group["mean"],
                        mode="markers",
                        name=name,
                        showlegend=first,
                        marker={"color": line_color},
                        error_y={"type": "data", "array": group["half_width"], "visible": True},
                        customdata=custom,
                        hovertemplate=hover,
                    ),
                    **where,
                )
                continue
            fig.add_trace(
                go.Scatter(
                    **common,
                    y=group["ci_high"],
                    mode="lines",
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                ),
                **where,
            )
            fig.add_trace(
                go.Scatter(
                    **common,
                    y=group["ci_low"],
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=rgba(line_color, 0.18),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                **where,
            )
            fig.add_trace(
                go.Scatter(
                    **common,
                    y=group["mean"],
                    mode="lines+markers",
                    name=name,
                    showlegend=first,
                    line={"color": line_color},
                    customdata=custom,
                    hovertemplate=hover,
                ),
                **where,
            )
    fig = layout(
        fig,
        f"{metric} vs {_short(x_col)} (mean over seeds, {level} confidence band)",
        metric,
        _short(x_col),
    )
    if len(facets) > 1:
        fig.update_xaxes(title_text=_short(x_col))
    return fig
