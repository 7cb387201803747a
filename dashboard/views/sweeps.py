"""Sweeps: load a sweep directory (or run a small sweep) and plot a parameter against a metric.

The runs go through `simulator.sweeps` (one row per run, resumable directories written by
`rksim sweep`), the statistics through `simulator.stats` and the figure is
`simulator.plots.sweep_figure`: the mean over seeds with its confidence band.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import forms
import links
import pandas as pd
import runs
import streamlit as st
import ui

from simulator import plots, stats
from simulator.scenario import ScenarioError, load_scenario
from simulator.sweeps import failed_runs, load_sweep, parse_grid, sweep

LOAD, RUN = "Load a sweep directory", "Run a small sweep"
MODE_KEY = "sweeps.mode"
TABLE_STATE = "sweeps.table"  # (label, table) of the sweep on display
ERROR_STATE = "sweeps.errors"
LINK_STATE = "sweeps.link"
DEFAULT_SCENARIO = "queue_mm1"
DEFAULT_METRIC = "latency_ms.ack.p99"
MAX_LINK_RUNS = 40  # a link reruns a small sweep by itself only up to this many runs
CONFIDENCES = (0.8, 0.9, 0.95, 0.99)


@st.cache_resource(show_spinner=False, max_entries=8)
def read_sweep(directory: str, stamp: float) -> pd.DataFrame:
    """A sweep table (one row per run), read once per version of its files (`stamp`) and shared
    read-only: a big sweep is not pickled on every rerun."""
    table, _meta = load_sweep(directory)
    return table


def stamp_of(directory: Path) -> float:
    files = [directory / "results.parquet", directory / "sweep.json", directory / "runs"]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def found_sweeps() -> list[str]:
    """Sweep directories (with a sweep.json) up to two levels below the working directory."""
    root = Path.cwd()
    found = {
        str(path.parent.relative_to(root))
        for pattern in ("*/sweep.json", "*/*/sweep.json")
        for path in root.glob(pattern)
        if ".venv" not in path.parts
    }
    return sorted(found)


def sweep_params(name: str) -> list[str]:
    """The scalar parameters of a scenario a small sweep can vary (dotted paths)."""
    spec = load_scenario(name)
    paths = []
    if spec.system_config is not None:
        kind = spec.system.kind
        paths += [p.path for p in forms.scalar_params(spec.system_config, kind)]
        for _section, nested in forms.sub_sections(spec.system_config, kind):
            paths += [p.path for p in nested]
    for section in ("workload", "scenario"):
        paths += [
            p.path
            for p in forms.scalar_params(getattr(spec, section), section)
            if p.path != links.SEED_PATH
        ]
    return paths


# --- the sources --------------------------------------------------------------------------------
def load_form() -> None:
    candidates = found_sweeps()
    with st.form("sweeps.load", border=True):
        directory = st.text_input(
            "Sweep directory",
            value=ui.initial("sweeps.dir", candidates[0] if candidates else ""),
            key="sweeps.dir",
            help="A directory written by `rksim sweep ... --out DIR` (it holds sweep.json and "
            "runs/); a sweep still running shows the runs finished so far."
            + (f" Found here: {', '.join(candidates)}" if candidates else ""),
        )
        if st.form_submit_button("Load", type="primary", icon=":material/folder_open:"):
            show_directory(directory)


def show_directory(directory: str) -> None:
    path = Path(directory).expanduser()
    try:
        table = read_sweep(str(path), stamp_of(path))
    except (FileNotFoundError, OSError, ValueError) as exc:
        st.session_state[ERROR_STATE] = ["This is not a sweep directory:", str(exc)]
        st.session_state.pop(TABLE_STATE, None)
        return
    st.session_state[TABLE_STATE] = (str(directory), table)
    st.session_state[LINK_STATE] = {"dir": [str(directory)]}
    st.session_state.pop(ERROR_STATE, None)


def run_form() -> None:
    names = list(runs.scenario_catalog())
    default = DEFAULT_SCENARIO if DEFAULT_SCENARIO in names else names[0]
    name = st.selectbox(
        "Base scenario",
        names,
        index=ui.index_of(names, "sweeps.scenario", default),
        key="sweeps.scenario",
    )
    try:
        params = sweep_params(name)
    except ScenarioError as exc:
        ui.problems(f"The built-in scenario {name!r} does not validate:", exc.problems)
        return
    with st.form("sweeps.run", border=True):
        left, middle, right = st.columns([2, 2, 1])
        parameter = left.selectbox(
            "Parameter",
            params,
            index=ui.index_of(params, "sweeps.parameter", "workload.rate_per_s"),
            key="sweeps.parameter",
        )
        values = middle.text_input(
            "Values (comma-separated)",
            value=ui.initial("sweeps.values", "200, 400, 600, 800"),
            key="sweeps.values",
            help='TOML values as `rksim sweep --grid` reads them: 0.5, 10, "all", true',
        )
        seeds = right.number_input(
            "seeds",
            min_value=1,
            max_value=20,
            value=ui.initial("sweeps.seeds", 3),
            key="sweeps.seeds",
        )
        small = st.checkbox(
            "At the scenario's CI size (its `ci_set`: a couple of seconds per run)",
            value=ui.initial("sweeps.ci", True),
            key="sweeps.ci",
        )
        if st.form_submit_button("Run", type="primary", icon=":material/play_arrow:"):
            run_sweep(name, f"{parameter}={values}", int(seeds), bool(small))


def run_sweep(name: str, grid_item: str, seeds: int, small: bool) -> None:
    try:
        grid = parse_grid([grid_item])
        total = seeds * len(next(iter(grid.values())))
        bar = st.progress(0.0, text=f"0 of {total} runs")

        def report(done: int, of: int) -> None:
            bar.progress(done / max(of, 1), text=f"{done} of {of} runs")

        table = sweep(name, grid, seeds, workers=1, progress=report, ci=small)
        bar.empty()
    except ScenarioError as exc:
        st.session_state[ERROR_STATE] = ["This sweep does not validate:", *exc.problems]
        st.session_state.pop(TABLE_STATE, None)
        return
    label = f"{name}: {grid_item} x {seeds} seed(s)" + (" at CI size" if small else "")
    st.session_state[TABLE_STATE] = (label, table)
    query = {"scenario": [name], "grid": [grid_item], "seeds": [str(seeds)]}
    if small:
        query["ci"] = ["1"]
    st.session_state[LINK_STATE] = query
    st.session_state.pop(ERROR_STATE, None)


def follow_link() -> None:
    query = links.query_dict(st.query_params)
    plot_keys = {"x", "y"}
    source = {k: v for k, v in query.items() if k not in plot_keys}
    if not source or source == st.session_state.get(LINK_STATE):
        return
    for key, state in (("x", "sweeps.x"), ("y", "sweeps.y")):
        if query.get(key):
            st.session_state[state] = query[key][0]
    if source.get("dir"):
        st.session_state[MODE_KEY] = LOAD
        st.session_state["sweeps.dir"] = source["dir"][0]
        show_directory(source["dir"][0])
    elif source.get("scenario") and source.get("grid"):
        st.session_state[MODE_KEY] = RUN
        name, item = source["scenario"][0], source["grid"][0]
        try:
            seeds = int((source.get("seeds") or ["1"])[0])
            grid = parse_grid([item])
        except (ValueError, ScenarioError) as exc:
            st.session_state[ERROR_STATE] = ["This link does not describe a sweep:", str(exc)]
            return
        st.session_state["sweeps.scenario"] = name
        key, _, values = item.partition("=")
        st.session_state["sweeps.parameter"] = key
        st.session_state["sweeps.values"] = values
        st.session_state["sweeps.seeds"] = seeds
        st.session_state["sweeps.ci"] = bool(source.get("ci"))
        if seeds * len(next(iter(grid.values()))) <= MAX_LINK_RUNS:
            run_sweep(name, item, seeds, bool(source.get("ci")))
        st.session_state[LINK_STATE] = source


# --- the figure ---------------------------------------------------------------------------------
def show_table(label: str, table: pd.DataFrame) -> None:
    parameters = [c.removeprefix("param.") for c in stats.parameter_columns(table)]
    metrics = stats.metric_columns(table)
    failed = failed_runs(table)
    st.subheader(label)
    st.caption(f"{len(table)} runs, {len(failed)} failed")
    if not parameters or not metrics:
        st.warning("This sweep has no swept parameter or no numeric metric to plot.")
        st.dataframe(table, hide_index=True, key="sweeps.table")
        return
    left, middle, right = st.columns([2, 3, 1])
    x = left.selectbox(
        "Parameter (x)",
        parameters,
        index=ui.index_of(parameters, "sweeps.x", parameters[0]),
        key="sweeps.x",
    )
    y = middle.selectbox(
        "Metric (y)",
        metrics,
        index=ui.index_of(
            metrics, "sweeps.y", DEFAULT_METRIC if DEFAULT_METRIC in metrics else metrics[0]
        ),
        key="sweeps.y",
    )
    confidence = right.select_slider(
        "confidence",
        options=list(CONFIDENCES),
        value=ui.initial("sweeps.confidence", 0.95),
        key="sweeps.confidence",
        format_func=lambda c: f"{c:.0%}",
    )
    figure = plots.sweep_figure(table, x, y, facet=plots.sweep_facet(table), confidence=confidence)
    st.plotly_chart(figure, theme=None, key="sweeps.figure")
    with st.expander(f"All {len(table)} runs"):
        st.dataframe(table, hide_index=True, key="sweeps.table")
    if len(failed):
        with st.expander(f"{len(failed)} failed run(s)"):
            st.dataframe(failed[["seed", "error"]], hide_index=True, key="sweeps.failed")
    row = st.container(horizontal=True)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)[:60]
    row.download_button(
        "sweep.csv",
        ui.csv_text(table),
        file_name=f"{stem}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key="sweeps.download.csv",
    )
    row.download_button(
        "sweep.parquet",
        ui.parquet_bytes(table),
        file_name=f"{stem}.parquet",
        mime="application/vnd.apache.parquet",
        icon=":material/download:",
        on_click="ignore",
        key="sweeps.download.parquet",
    )
    query: dict[str, Any] = {**st.session_state.get(LINK_STATE, {}), "x": [x], "y": [y]}
    if links.query_dict(st.query_params) != query:
        st.query_params.from_dict(query)


# --- the page -----------------------------------------------------------------------------------
st.title("Sweeps")
st.caption(
    "A parameter against a metric over many runs: the mean over seeds with its confidence band "
    "(e.g. p99 latency against the arrival rate, loss against acks). Large sweeps run from the "
    f"CLI (`rksim sweep`, {os.cpu_count() or 1} cores here); load their directory here."
)
follow_link()
modes = [LOAD, RUN]
mode = st.radio(
    "Source",
    modes,
    index=ui.index_of(modes, MODE_KEY, RUN if not found_sweeps() else LOAD),
    key=MODE_KEY,
    horizontal=True,
)
if mode == LOAD:
    load_form()
else:
    run_form()
if st.session_state.get(ERROR_STATE):
    title, *lines = st.session_state[ERROR_STATE]
    ui.problems(title, lines)
shown = st.session_state.get(TABLE_STATE)
if shown is None:
    st.info("Load a sweep directory or run a small sweep.", icon=":material/info:")
else:
    show_table(*shown)
