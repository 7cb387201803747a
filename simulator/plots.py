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


# sweeps ----------------------------------------------------------------------------------------
MAX_SWEEP_SERIES = 8


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"


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
                    fillcolor=_rgba(line_color, 0.18),
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
    fig = _layout(
        fig,
        f"{metric} vs {_short(x_col)} (mean over seeds, {level} confidence band)",
        metric,
        _short(x_col),
    )
    if len(facets) > 1:
        fig.update_xaxes(title_text=_short(x_col))
    return fig


# architecture, timeline, event log, comparisons (dashboard pages; notebooks too) ---------------
if TYPE_CHECKING:
    from typing import Any

    from simulator.timeline import Snapshot, Timeline

STATE_COLORS = {
    "up": "#2ca02c",
    "loading": "#1f77b4",
    "paused": "#ff7f0e",
    "stopped": "#7f7f7f",
    "crashed": "#d62728",
}
CUT_COLOR = "#d62728"
LINK_COLOR = "#c7ccd4"
LEADER_COLOR = "#f2b705"
DETAIL_CHARS = 160  # an event's detail in the log table (the CSV download keeps all of it)
# Where a role sits in the architecture view: clients left, servers centre, consumers right;
# coordinators (controller, sentinels) above the servers they watch.
CLIENT_ROLES = ("client", "clients", "producer", "publisher")
CONSUMER_ROLES = ("consumer", "subscriber", "worker")
COORDINATOR_ROLES = ("controller", "sentinel", "coordinator", "zookeeper")


def role_class(role: str) -> str:
    """client, consumer, coordinator or server: a node's place in the architecture view."""
    role = role.lower()
    for name, roles in (
        ("client", CLIENT_ROLES),
        ("consumer", CONSUMER_ROLES),
        ("coordinator", COORDINATOR_ROLES),
    ):
        if any(role.startswith(r) for r in roles):
            return name
    return "server"


def architecture_layout(nodes: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Node positions (name -> x, y): clients | coordinators over servers | consumers.

    A networkx multipartite layout of the run's nodes table, deterministic, so it is computed
    once per run and every moment of the timeline draws the nodes in the same place.
    """
    import networkx as nx

    columns = {"client": 0, "coordinator": 1, "server": 1, "consumer": 2}
    graph = nx.Graph()
    layers: dict[int, list[str]] = {}
    # coordinators first: in their column they sit above the servers
    order = sorted(
        zip(nodes["name"].astype(str), nodes["role"].astype(str), strict=True),
        key=lambda nr: role_class(nr[1]) != "coordinator",
    )
    for name, role in order:
        graph.add_node(name)
        layers.setdefault(columns[role_class(role)], []).append(name)
    if not graph:
        return {}
    # layers as lists keep the nodes' order (a set would differ between processes)
    positions = nx.multipartite_layout(graph, subset_key=layers, align="vertical", scale=1.0)
    # the first node of a column comes out at the bottom: flip so the column reads top-down
    return {name: (float(x), -float(y)) for name, (x, y) in positions.items()}


def implicit_links(nodes: pd.DataFrame) -> list[tuple[str, str]]:
    """Who talks to whom, from roles: clients and consumers with servers, servers with each
    other, coordinators with servers (the result keeps no wiring of its own)."""
    classes = [
        (str(n), role_class(str(r))) for n, r in zip(nodes["name"], nodes["role"], strict=True)
    ]
    talks = {
        frozenset({"client", "server"}),
        frozenset({"consumer", "server"}),
        frozenset({"server"}),
        frozenset({"coordinator", "server"}),
    }
    links = []
    for i, (a, class_a) in enumerate(classes):
        for b, class_b in classes[i + 1 :]:
            if frozenset({class_a, class_b}) in talks:
                links.append((a, b))
    return links


def _segments(
    pairs: list[tuple[str, str]], layout: dict[str, tuple[float, float]]
) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a, b in pairs:
        if a in layout and b in layout:
            xs += [layout[a][0], layout[b][0], None]
            ys += [layout[a][1], layout[b][1], None]
    return xs, ys


def architecture_figure(
    snapshot: Snapshot, layout: dict[str, tuple[float, float]], title: str | None = None
) -> go.Figure:
    """The cluster at one moment: nodes coloured by state, cut links dashed red, leaders starred.

    `snapshot` comes from `Timeline.at(t_ms)`, `layout` from `architecture_layout` (computed
    once per run, so nodes do not move between moments).
    """
    nodes = snapshot.nodes
    cut = {frozenset((link.a, link.b)) for link in snapshot.cut_links}
    links = [pair for pair in implicit_links(nodes) if frozenset(pair) not in cut]
    fig = go.Figure()
    xs, ys = _segments(links, layout)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            name="link",
            line={"color": LINK_COLOR, "width": 1.5},
            hoverinfo="skip",
        )
    )
    for one_way, name, dash in ((False, "cut link", "dash"), (True, "cut one way", "dot")):
        pairs = [(link.a, link.b) for link in snapshot.cut_links if link.one_way == one_way]
        xs, ys = _segments(pairs, layout)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                line={"color": CUT_COLOR, "width": 3, "dash": dash},
                hoverinfo="skip",
                visible=True if pairs or not one_way else "legendonly",
            )
        )
    placed = nodes[nodes["name"].isin(list(layout))]
    faulted = placed[placed["faults"] != ""]
    fig.add_trace(
        go.Scatter(
            x=[layout[n][0] for n in faulted["name"]],
            y=[layout[n][1] for n in faulted["name"]],
            mode="markers",
            name="under a fault",
            marker={
                "size": 48,
                "symbol": "circle-open",
                "color": FATE_COLORS["skipped"],
                "line": {"width": 4},
            },
            customdata=[f"faults: {kinds}" for kinds in faulted["faults"]],
            hovertemplate="%{customdata}<extra></extra>",
        )
    )
    for state, color in STATE_COLORS.items():
        part = placed[placed["state"] == state]
        rows = part.to_dict("records")
        fig.add_trace(
            go.Scatter(
                x=[layout[n][0] for n in part["name"]],
                y=[layout[n][1] for n in part["name"]],
                mode="markers+text",
                name=state,
                text=[_node_label(row) for row in rows],
                textposition="bottom center",
                customdata=[_node_hover(row) for row in rows],
                hovertemplate="%{customdata}<extra></extra>",
                marker={
                    "size": 34,
                    "color": color,
                    "symbol": "circle",
                    "line": {"color": "#ffffff", "width": 2},
                },
            )
        )
    leaders = placed[placed["leader_of"] != ""]
    fig.add_trace(
        go.Scatter(
            x=[layout[n][0] for n in leaders["name"]],
            y=[layout[n][1] + 0.09 for n in leaders["name"]],
            mode="markers",
            name="leader",
            marker={
                "symbol": "star",
                "size": 18,
                "color": LEADER_COLOR,
                "line": {"color": "#7a5c00", "width": 1},
            },
            customdata=[f"leader of {p}" for p in leaders["leader_of"]],
            hovertemplate="%{customdata}<extra></extra>",
        )
    )
    xs_all = [p[0] for p in layout.values()] or [0.0]
    ys_all = [p[1] for p in layout.values()] or [0.0]
    fig.update_layout(
        template=TEMPLATE,
        title=title or f"Cluster at t = {snapshot.t_ms / 1000.0:.3f} s",
        height=460,
        margin={"t": 90, "l": 10, "r": 10, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        xaxis={
            "visible": False,
            "range": [min(xs_all) - 0.35, max(xs_all) + 0.35],
        },
        yaxis={
            "visible": False,
            "range": [min(ys_all) - 0.45, max(ys_all) + 0.25],  # room for labels below
        },
        hoverlabel={"align": "left"},
    )
    return fig


def _node_label(row: dict[str, Any]) -> str:
    parts = [str(row["name"])]
    if row["leader_of"]:
        parts.append(f"leader {_short_list(row['leader_of'])}")
    elif row["in_isr_of"]:
        parts.append(f"ISR {_short_list(row['in_isr_of'])}")
    if row.get("flags"):
        parts.append(str(row["flags"]))
    return "<br>".join(parts)


def _short_list(text: str, limit: int = 4) -> str:
    items = text.split(",")
    return text if len(items) <= limit else ",".join(items[:limit]) + f",… ({len(items)})"


def _node_hover(row: dict[str, Any]) -> str:
    fields = ("name", "role", "state", "leader_of", "in_isr_of", "flags", "faults")
    labels = ("node", "role", "state", "leader of", "in ISR of", "flags", "faults")
    lines = []
    for field, label in zip(fields, labels, strict=True):
        value = str(row.get(field, ""))
        if value:
            lines.append(f"{label}: <b>{value}</b>" if field == "name" else f"{label}: {value}")
    return "<br>".join(lines)


def node_states_figure(timeline: Timeline, t_ms: float | None = None) -> go.Figure:
    """One row per node, coloured by state over the run; fault windows shaded; t marked."""
    intervals = timeline.state_intervals()
    names = timeline.node_names
    fig = go.Figure()
    for state, color in STATE_COLORS.items():
        part = intervals[intervals["state"] == state]
        fig.add_trace(
            go.Bar(
                x=(part["end_ms"] - part["begin_ms"]) / 1000.0,
                base=part["begin_ms"] / 1000.0,
                y=part["name"],
                orientation="h",
                name=state,
                marker={"color": color, "line": {"width": 0}},
                customdata=np.stack(
                    [part["begin_ms"] / 1000.0, part["end_ms"] / 1000.0], axis=-1
                ).reshape(-1, 2),
                hovertemplate=f"%{{y}}: {state} from %{{customdata[0]:.3f}} s "
                "to %{customdata[1]:.3f} s<extra></extra>",
            )
        )
    for cut in timeline.cuts:
        end = min(cut.end_ms, timeline.end_ms)
        fig.add_vrect(
            x0=cut.begin_ms / 1000.0,
            x1=end / 1000.0,
            fillcolor="rgba(214, 39, 40, 0.08)",
            line={"color": CUT_COLOR, "width": 1, "dash": "dash"},
            layer="below",
            annotation_text="cut",
            annotation_position="top left",
        )
    if t_ms is not None:
        fig.add_vline(x=t_ms / 1000.0, line={"color": "#1f2937", "width": 2})
    fig.update_layout(
        barmode="overlay",
        height=max(220, 60 + 34 * len(names)),
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(names))},
    )
    return _layout(fig, "Node states over time", "")


def event_log_table(events: pd.DataFrame, t_ms: float | None = None) -> pd.DataFrame:
    """Events as a readable table: time (s), time from t (s), event, node, detail as k=v."""
    import json

    def readable(text: object) -> str:
        try:
            detail = json.loads(str(text)) if text is not None and text is not pd.NA else {}
        except ValueError:
            return str(text)
        if not isinstance(detail, dict):
            return str(detail)
        text = ", ".join(f"{k}={_short_value(v)}" for k, v in detail.items())
        return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"

    seconds = events["t_ms"].to_numpy(dtype=float) / 1000.0
    table = pd.DataFrame(
        {
            "time (s)": seconds,
            "from t (s)": seconds - (t_ms or 0.0) / 1000.0,
            "event": events["kind"].astype(str).to_numpy(),
            "node": events["node"].fillna("").astype(str).to_numpy(),
            "detail": [readable(d) for d in events["detail"]],
        }
    )
    return table if t_ms is not None else table.drop(columns=["from t (s)"])


def _short_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_short_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
    return _layout(fig, "What happened to every message, by variant", "", "% of produced")


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
        per_s = 1000.0 / float(result.summary.get("bucket_ms") or _bucket_ms(frame))
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
    colors = dict(zip(results, _cycle(len(results)), strict=True))
    for row, panel in enumerate(chosen, start=1):
        for label, result in results.items():
            series = _panel_series(result, panel)
            if series is None:
                continue
            fig.add_trace(
                go.Scatter(
                    x=_seconds(result.timeseries),
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
