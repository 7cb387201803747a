"""Playground: pick a built-in scenario, change a few parameters, run it, see every message's fate.

Widgets and layout only: the parameter form is generated from the scenario schema
(`forms.py`), the run goes through `runs.py` into `simulator.runner`, and every figure comes
from `simulator.plots`.
"""

from __future__ import annotations

from typing import Any

import forms
import pandas as pd
import runs
import streamlit as st

from simulator import plots
from simulator.results import Result
from simulator.scenario import ScenarioBase, ScenarioError, load_scenario

DEFAULT_SCENARIO = "queue_mm1"
# Core parameters offered for every scenario (the system's own section is added below).
CORE_FIELDS = {"scenario": ("seed", "duration_s"), "workload": ("rate_per_s",)}
LATENCY_KINDS = {"ack": "produce -> acknowledgement", "end_to_end": "produce -> delivery"}
HELD_COLORS = {"held": plots.FATE_COLORS["delivered"], "NOT HELD": plots.FATE_COLORS["lost"]}
RUN_STATE = "playground.run"  # the spec of the run on display (session state)
ERROR_STATE = "playground.errors"  # (scenario, validation problems) of the last submitted form


def pick_scenario() -> str:
    catalog = runs.scenario_catalog()
    names = list(catalog)
    if not names:
        st.error("No built-in scenarios found in simulator/scenarios/.")
        st.stop()
    index = names.index(DEFAULT_SCENARIO) if DEFAULT_SCENARIO in names else 0
    return st.selectbox(
        "Scenario",
        names,
        index=index,
        format_func=lambda name: f"{name} — {catalog[name]}" if catalog[name] else name,
        key="playground.scenario",
        help="The built-in scenarios of simulator/scenarios/ (`rksim scenarios` lists them too).",
    )


def parameter_form(name: str, base: ScenarioBase) -> tuple[bool, list[forms.Param], dict[str, Any]]:
    """The form of one scenario's parameters; returns (submitted, params, widget values)."""
    kind = base.system.kind
    core = [
        param
        for section, names in CORE_FIELDS.items()
        for param in forms.scalar_params(getattr(base, section), section, names)
    ]
    system = forms.scalar_params(base.system_config, kind) if base.system_config else []
    nested = forms.sub_sections(base.system_config, kind) if base.system_config else []
    values: dict[str, Any] = {}
    with st.form(f"playground.form.{name}", border=True):
        for param in core:
            values[param.path] = forms.param_widget(param, key=f"{name}:{param.path}")
        if system or nested:
            st.markdown(f"**[{kind}]**")
        for param in system:
            values[param.path] = forms.param_widget(param, key=f"{name}:{param.path}")
        for path, params in nested:
            with st.expander(f"[{path}]"):
                for param in params:
                    values[param.path] = forms.param_widget(param, key=f"{name}:{param.path}")
        submitted = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    all_params = core + system + [p for _path, params in nested for p in params]
    return submitted, all_params, values


def show_run(spec: ScenarioBase, overrides: dict[str, Any]) -> None:
    """Run (or fetch) the scenario and draw what happened to its messages."""
    result = runs.cached_result(spec)
    if result is None:
        bar = st.progress(0.0, text="Simulating…")

        def report(fraction: float) -> None:
            # the runner reports the measured phase; the drain and the checker follow it
            if fraction < 1.0:
                bar.progress(0.9 * fraction, text=f"Simulating… {fraction:.0%} of simulated time")
            else:
                bar.progress(0.9, text="Draining consumers and checking every message…")

        try:
            result = runs.run(spec, progress=report)
        except Exception as exc:  # a model bug must not take the page down
            bar.empty()
            st.error(f"The run failed: {type(exc).__name__}: {exc}")
            with st.expander("Traceback"):
                st.exception(exc)
            return
        bar.empty()
    show_result(spec, overrides, result)


def show_result(spec: ScenarioBase, overrides: dict[str, Any], result: Result) -> None:
    meta = spec.scenario
    st.subheader(f"{meta.name} · seed {meta.seed}")
    flags = forms.as_set_flags({k: v for k, v in overrides.items() if k != "scenario.seed"})
    command = f"rksim run {meta.name} --seed {meta.seed} {flags}".strip()
    st.caption(
        f"From a terminal: `{command}` · {meta.duration_s:g} s simulated in "
        f"{result.manifest.get('wall_s', 0.0):.2f} s"
    )
    messages = result.summary["messages"]
    produced = messages["produced"]

    def share(count: int) -> str:
        return f"{100.0 * count / produced:.2f}% of produced" if produced else ""

    lost_causes = ", ".join(f"{c}: {n:,}" for c, n in messages.get("lost_by_cause", {}).items())
    dup_causes = ", ".join(
        f"{c}: {n:,}" for c, n in messages.get("duplicates_by_cause", {}).items()
    )
    columns = st.columns(4)
    columns[0].metric("produced", f"{produced:,}", help="Messages the workload sent.")
    columns[1].metric(
        "delivered",
        f"{messages['delivered']:,}",
        help=f"Processed at least once by a consumer (or present in the final read). "
        f"{share(messages['delivered'])}",
    )
    columns[2].metric(
        "lost",
        f"{messages['lost']:,}",
        help=f"Acknowledged, then gone. {share(messages['lost'])} {lost_causes}".strip(),
    )
    columns[3].metric(
        "duplicates",
        f"{messages['duplicates']:,}",
        help=f"Extra deliveries of the same message. {dup_causes}".strip(),
    )
    st.plotly_chart(plots.fates_figure(result), theme=None, key="playground.fates")

    kind = st.radio(
        "Latency",
        list(LATENCY_KINDS),
        format_func=LATENCY_KINDS.__getitem__,
        horizontal=True,
        key="playground.latency_kind",
        help="Measured from the intended send time, so a stalled client does not hide queueing.",
    )
    st.plotly_chart(plots.latency_figure(result, kind=kind), theme=None, key="playground.latency")

    if result.summary.get("faults"):
        st.markdown("**Faults and recovery**")
        st.dataframe(plots.fault_table(result), hide_index=True, key="playground.faults")

    if result.expectations:
        st.markdown("**Expectations**")
        frame = expectations_frame(result)
        styled = frame.style.map(
            lambda held: f"color: {HELD_COLORS[held]}; font-weight: 600", subset=["held"]
        )
        st.dataframe(styled, hide_index=True, key="playground.expectations")

    stem = runs.file_stem(spec)
    left, right = st.columns(2)
    left.download_button(
        "summary.json",
        result.summary_json(),
        file_name=f"{stem}-summary.json",
        mime="application/json",
        icon=":material/download:",
        on_click="ignore",
        key="playground.download.summary",
    )
    right.download_button(
        "scenario.toml",
        result.scenario_toml,
        file_name=f"{stem}.toml",
        mime="application/toml",
        icon=":material/download:",
        on_click="ignore",
        key="playground.download.scenario",
        help="The fully resolved scenario: `rksim run FILE` reruns exactly this.",
    )


def expectations_frame(result: Result) -> pd.DataFrame:
    """The scenario's claims, each marked held or not held, with the measured value."""
    return pd.DataFrame(
        [
            {
                "held": "held" if e["held"] else "NOT HELD",
                "check": e["check"],
                "actual": _readable(e["actual"]),
                "why": e["why"],
            }
            for e in result.expectations
        ],
        columns=["held", "check", "actual", "why"],
    )


def _readable(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


st.title("Playground")
st.caption(
    "Run a built-in scenario, change a few of its parameters and see what happened to every "
    "message: delivered, lost (and why), duplicated, and how long it took."
)
name = pick_scenario()
try:
    base = load_scenario(name)
except ScenarioError as exc:
    st.error(
        f"The built-in scenario {name!r} does not validate:\n\n"
        + "\n".join(f"- {line}" for line in exc.problems)
    )
    st.stop()
if base.scenario.lesson:
    with st.expander("What this scenario shows"):
        st.markdown(base.scenario.lesson)

form_column, result_column = st.columns([1, 2.8], gap="large")
with form_column:
    submitted, params, values = parameter_form(name, base)
    if submitted:
        overrides = forms.changed(params, values)
        try:
            spec = load_scenario(name, overrides)
        except ScenarioError as exc:
            st.session_state.pop(RUN_STATE, None)
            st.session_state[ERROR_STATE] = (name, exc.problems)
        else:
            st.session_state[RUN_STATE] = (spec, overrides)
            st.session_state.pop(ERROR_STATE, None)
    name_with_problems, problems = st.session_state.get(ERROR_STATE, ("", []))
    if problems and name_with_problems == name:
        st.error(
            "**These parameters do not make a valid scenario:**\n\n"
            + "\n".join(f"- {line}" for line in problems)
        )

with result_column:
    current = st.session_state.get(RUN_STATE)
    if current is None and problems and name_with_problems == name:
        st.info(
            "Correct the parameters on the left and press **Run** again.", icon=":material/info:"
        )
    elif current is None:
        st.info("Pick a scenario, adjust its parameters and press **Run**.", icon=":material/info:")
    else:
        show_run(*current)
