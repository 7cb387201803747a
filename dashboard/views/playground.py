"""Playground: pick a built-in scenario, change its parameters and faults, run it, see every
message's fate.

Widgets and layout only: the parameter form and the fault grid are generated from the scenario
schema (`forms.py`, `fault_editor.py`), the run goes through `runs.py` into `simulator.runner`,
every figure comes from `simulator.plots`. The URL holds the run on display (`links.py`), so a
copied link shows the same run.
"""

from __future__ import annotations

from typing import Any

import fault_editor
import forms
import links
import pandas as pd
import runs
import streamlit as st
import ui

from simulator import plots
from simulator.results import Result
from simulator.scenario import ScenarioBase, ScenarioError, load_scenario

DEFAULT_SCENARIO = "queue_mm1"
# Core parameters offered for every scenario (the system's own section is added below).
CORE_FIELDS = {"scenario": ("seed", "duration_s"), "workload": ("rate_per_s",)}
SCENARIO_KEY = "playground.scenario"
RUN_STATE = "playground.run"  # the RunRequest of the run on display (session state)
ERROR_STATE = "playground.errors"  # (scenario, validation problems) of the last submitted form
LINK_STATE = "playground.link"  # the query parameters last read from or written to the URL
LINK_ERROR = "playground.link_error"  # problems of a link that does not describe a valid run
FAULTS_SHOWN = "playground.faults_shown"  # per scenario: the fault rows the grid started from


# --- the URL ------------------------------------------------------------------------------------
def follow_link() -> None:
    """A URL this session did not write (an opened link): show the run it describes."""
    query = links.query_dict(st.query_params)
    request = links.new_run_link(query, st.session_state, LINK_STATE, LINK_ERROR)
    if request is None:
        return
    st.session_state[SCENARIO_KEY] = request.scenario
    if request.seed is not None or request.overrides or request.faults is not None:
        st.session_state[RUN_STATE] = request
        st.session_state.pop(ERROR_STATE, None)


def write_link(query: links.QueryParams) -> None:
    """Put the view in the URL (and remember it, so it is not followed as a new link)."""
    if links.query_dict(st.query_params) != query:
        st.query_params.from_dict(query)
    st.session_state[LINK_STATE] = query


# --- the form -----------------------------------------------------------------------------------
def pick_scenario() -> str:
    catalog = runs.scenario_catalog()
    names = list(catalog)
    if not names:
        st.error("No built-in scenarios found in simulator/scenarios/.")
        st.stop()
    current = st.session_state.get(RUN_STATE)
    default = current.scenario if current is not None else DEFAULT_SCENARIO
    default = default if default in names else names[0]
    return st.selectbox(
        "Scenario",
        names,
        index=ui.index_of(names, SCENARIO_KEY, default),
        format_func=lambda name: f"{name} — {catalog[name]}" if catalog[name] else name,
        key=SCENARIO_KEY,
        help="The built-in scenarios of simulator/scenarios/ (`rksim scenarios` lists them too).",
    )


def form_params(
    spec: ScenarioBase,
) -> tuple[list[forms.Param], list[tuple[str, list[forms.Param]]]]:
    """The editable scalars of a scenario: core and system fields, and nested system sections."""
    kind = spec.system.kind
    flat = [
        param
        for section, names in CORE_FIELDS.items()
        for param in forms.scalar_params(getattr(spec, section), section, names)
    ]
    if spec.system_config is not None:
        flat += forms.scalar_params(spec.system_config, kind)
        nested = forms.sub_sections(spec.system_config, kind)
    else:
        nested = []
    return flat, nested


def fault_grid(name: str, shown: ScenarioBase) -> pd.DataFrame:
    """The editable fault schedule, starting from the faults of the run on display."""
    key = f"{name}:faults"
    initial = fault_editor.spec_faults(shown)
    started = st.session_state.setdefault(FAULTS_SHOWN, {})
    if started.get(name) != initial:
        started[name] = initial
        st.session_state.pop(key, None)  # a new starting table: forget edits of the old one
    st.caption(
        "One row per fault, times in seconds of the measured phase; a `target` is a node or a "
        "role the model resolves when the fault fires."
    )
    return st.data_editor(
        fault_editor.frame(initial),
        column_config=fault_editor.column_config(shown),
        num_rows="dynamic",
        hide_index=True,
        key=key,
    )


def parameter_form(
    name: str, base: ScenarioBase, shown: ScenarioBase
) -> tuple[bool, list[forms.Param], dict[str, Any], pd.DataFrame]:
    """The form of one scenario; returns (submitted, params, widget values, fault grid).

    Widgets start from the run on display (`shown`); overrides are relative to `base`.
    """
    kind = base.system.kind
    flat, nested = form_params(shown)
    base_flat, base_nested = form_params(base)
    core_count = sum(len(names) for names in CORE_FIELDS.values())
    values: dict[str, Any] = {}
    with st.form(f"playground.form.{name}", border=True):
        for param in flat[:core_count]:
            values[param.path] = forms.param_widget(param, key=f"{name}:{param.path}")
        if len(flat) > core_count or nested:
            st.markdown(f"**[{kind}]**")
        for param in flat[core_count:]:
            values[param.path] = forms.param_widget(param, key=f"{name}:{param.path}")
        for path, params in nested:
            with st.expander(f"[{path}]"):
                for param in params:
                    values[param.path] = forms.param_widget(param, key=f"{name}:{param.path}")
        with st.expander(f"[[faults]] ({len(shown.faults)})"):
            grid = fault_grid(name, shown)
        submitted = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    all_base = base_flat + [p for _path, params in base_nested for p in params]
    return submitted, all_base, values, grid


def submit(
    name: str, base: ScenarioBase, params: list[forms.Param], values: dict[str, Any], grid: Any
) -> None:
    overrides = forms.changed(params, values)
    faults = fault_editor.rows(grid)
    edited = None if fault_editor.same(faults, fault_editor.spec_faults(base)) else faults
    request = links.RunRequest.build(
        name, overrides, edited, seed=values.get(links.SEED_PATH, base.scenario.seed)
    )
    try:
        request.spec()
    except ScenarioError as exc:
        st.session_state.pop(RUN_STATE, None)
        st.session_state[ERROR_STATE] = (name, exc.problems)
    else:
        st.session_state[RUN_STATE] = request
        st.session_state.pop(ERROR_STATE, None)


# --- the result ---------------------------------------------------------------------------------
def show_run(request: links.RunRequest) -> None:
    """Run (or fetch) the requested scenario and draw what happened to its messages."""
    try:
        spec = request.spec()
    except ScenarioError as exc:  # a built-in changed under a run on display
        ui.problems("This run no longer validates:", exc.problems)
        return
    result = ui.run_with_progress(spec)
    if result is not None:
        show_result(request, spec, result)


def preferred_gauges(gauges: list[str]) -> list[str]:
    """The gauges shown before the user picks: consumer lag if the run has it, else the first."""
    return [g for g in ("consumer_lag",) if g in gauges] or gauges[:1]


def show_result(request: links.RunRequest, spec: ScenarioBase, result: Result) -> None:
    meta = spec.scenario
    st.subheader(f"{meta.name} · seed {meta.seed}")
    command = request.command(spec, f"{runs.file_stem(spec)}.toml")
    note = result.engine_note()
    st.caption(
        f"From a terminal: `{command}` · {meta.duration_s:g} s simulated in "
        f"{result.manifest.get('wall_s', 0.0):.2f} s"
        + (f" ({note})" if note else "")
        + " · the URL of this page reproduces this run"
    )
    ui.fate_metrics(result)
    ui.fates_and_latency(result, "playground")

    st.plotly_chart(plots.throughput_figure(result), theme=None, key="playground.throughput")
    gauges = plots.gauges(result)
    if gauges:
        chosen = st.multiselect(
            "Gauges",
            gauges,
            default=preferred_gauges(gauges),
            key="playground.gauges",
            help="Quantities the model samples over time (queue length, consumer lag, ...).",
        )
        if chosen:
            figure = plots.gauge_figure(result, chosen)
            st.plotly_chart(figure, theme=None, key="playground.gauge")

    if result.summary.get("faults"):
        st.markdown("**Faults and recovery** (times counted from each fault's begin)")
        st.dataframe(plots.fault_table(result), hide_index=True, key="playground.faults")
        st.page_link(
            "views/timeline.py",
            label="Watch the cluster through these faults on the Timeline",
            icon=":material/timeline:",
            query_params=request.to_query(),
        )

    if result.expectations:
        ui.show_expectations(result.expectations, key="playground.expectations")

    ui.downloads(result, spec, key="playground")


# --- the page -----------------------------------------------------------------------------------
st.title("Playground")
st.caption(
    "Run a built-in scenario, change its parameters and faults and see what happened to every "
    "message: delivered, lost (and why), duplicated, and how long it took."
)
follow_link()
if st.session_state.get(LINK_ERROR):
    ui.problems("This link does not describe a valid run:", st.session_state[LINK_ERROR])

name = pick_scenario()
try:
    base = load_scenario(name)
except ScenarioError as exc:
    ui.problems(f"The built-in scenario {name!r} does not validate:", exc.problems)
    st.stop()
if base.scenario.lesson:
    with st.expander("What this scenario shows"):
        st.markdown(base.scenario.lesson)

current: links.RunRequest | None = st.session_state.get(RUN_STATE)
shown = base
if current is not None and current.scenario == name:
    try:
        shown = current.spec()
    except ScenarioError:
        shown = base

form_column, result_column = st.columns([1.25, 2.75], gap="large")
with form_column:
    submitted, params, values, grid = parameter_form(name, base, shown)
    if submitted:
        submit(name, base, params, values, grid)
    name_with_problems, problems = st.session_state.get(ERROR_STATE, ("", []))
    if problems and name_with_problems == name:
        ui.problems("These parameters do not make a valid scenario:", problems)

with result_column:
    current = st.session_state.get(RUN_STATE)
    if current is not None and current.scenario == name:
        show_run(current)
        write_link(current.to_query())
    else:
        if problems and name_with_problems == name:
            st.info(
                "Correct the parameters on the left and press **Run** again.",
                icon=":material/info:",
            )
        else:
            st.info(
                "Pick a scenario, adjust its parameters and press **Run**.", icon=":material/info:"
            )
        write_link({"scenario": [name]})
