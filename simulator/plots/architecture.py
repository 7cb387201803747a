"""The cluster drawn as a graph at a moment (timeline view), node states over time, the event log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from simulator.plots.style import (
    FATE_COLORS,
    TEMPLATE,
    layout,
)

if TYPE_CHECKING:
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
    return layout(fig, "Node states over time", "")


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
