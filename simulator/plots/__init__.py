"""Plotly figures built from a Result, shared by the dashboard and the notebooks.

Every figure uses the same template and the same colour per fate, so a red bar means "lost"
everywhere. Time axes are in seconds of the measured phase (warm-up is negative); fault windows
are shaded and labelled with the fault kind. One module per kind of figure: `run_figures` (one
run), `comparison` (several runs), `sweep_figures` (a sweep's table), `architecture` (the
cluster at a moment, node states, the event log); `style` holds what they share.
"""

from __future__ import annotations

from simulator.plots.architecture import (
    CLIENT_ROLES,
    CONSUMER_ROLES,
    COORDINATOR_ROLES,
    CUT_COLOR,
    DETAIL_CHARS,
    LEADER_COLOR,
    LINK_COLOR,
    STATE_COLORS,
    architecture_figure,
    architecture_layout,
    event_log_table,
    implicit_links,
    node_states_figure,
    role_class,
)
from simulator.plots.comparison import (
    PANEL_TITLES,
    compare_fates_figure,
    compare_figure,
    compare_panels,
    compare_timeseries_figure,
)
from simulator.plots.run_figures import (
    fates_figure,
    fault_table,
    gauge_figure,
    gauges,
    latency_figure,
    throughput_figure,
)
from simulator.plots.style import (
    FATE_COLORS,
    FAULT_FILL,
    LATENCY_COLUMNS,
    SERIES_COLORS,
    TEMPLATE,
)
from simulator.plots.sweep_figures import (
    MAX_SWEEP_SERIES,
    sweep_facet,
    sweep_figure,
)

__all__ = [
    "CLIENT_ROLES",
    "CONSUMER_ROLES",
    "COORDINATOR_ROLES",
    "CUT_COLOR",
    "DETAIL_CHARS",
    "FATE_COLORS",
    "FAULT_FILL",
    "LATENCY_COLUMNS",
    "LEADER_COLOR",
    "LINK_COLOR",
    "MAX_SWEEP_SERIES",
    "PANEL_TITLES",
    "SERIES_COLORS",
    "STATE_COLORS",
    "TEMPLATE",
    "architecture_figure",
    "architecture_layout",
    "compare_fates_figure",
    "compare_figure",
    "compare_panels",
    "compare_timeseries_figure",
    "event_log_table",
    "fates_figure",
    "fault_table",
    "gauge_figure",
    "gauges",
    "implicit_links",
    "latency_figure",
    "node_states_figure",
    "role_class",
    "sweep_facet",
    "sweep_figure",
    "throughput_figure",
]
