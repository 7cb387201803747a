"""Compare: one workload and one fault schedule against several variants, side by side.

A built-in comparison scenario lists its variants in `[compare]`; any built-in can also be the
base of variants composed here (a label and `--set` overrides each) with claims across them
(`heavier_load.latency_ms.ack.p99 > baseline.latency_ms.ack.p99`). Runs go through `runs.py`
one variant at a time (each cached by scenario digest and seed); the verdict table and the
claims come from `simulator.compare`, the figures from `simulator.plots`.
"""

from __future__ import annotations

import json
from typing import Any

import links
import pandas as pd
import runs
import streamlit as st
import ui
from links import CompareRequest

from simulator import plots
from simulator.compare import ComparisonResult, variant_spec
from simulator.results import Result, evaluate_expectations
from simulator.scenario import ScenarioBase, ScenarioError, load_scenario, parse_value

DEFAULT_BASE = "queue_mm1"
MODE_KEY = "compare.mode"
BUILTIN, COMPOSE = "A built-in comparison", "Compose variants of a built-in"
REQUEST_STATE = "compare.request"
ERROR_STATE = "compare.errors"
LINK_STATE = "compare.link"
EDITOR_KEY = "compare.variants"
CLAIMS_KEY = "compare.claims"
LOAD_FACTOR = 1.8  # the composed default: the same scenario under a heavier load


@st.cache_resource(show_spinner=False, ttl=60)
def builtin_comparisons() -> dict[str, ScenarioBase]:
    """The built-in scenarios with `[compare]` variants (validated specs, shared read-only)."""
    found = {}
    for name in runs.scenario_catalog():
        try:
            spec = load_scenario(name)
        except ScenarioError:
            continue
        if spec.compare.variants:
            found[name] = spec
    return found


def default_variants(base: ScenarioBase) -> pd.DataFrame:
    """The same scenario as it is and under a heavier load: a comparison every system has."""
    rate = base.workload.rate_per_s * LOAD_FACTOR
    return pd.DataFrame(
        [
            {"label": "baseline", "set": "", "description": "the scenario as it is"},
            {
                "label": "heavier_load",
                "set": f"workload.rate_per_s={rate:g}",
                "description": f"{LOAD_FACTOR:g}x the arrival rate",
            },
        ],
        columns=["label", "set", "description"],
    )


DEFAULT_CLAIM = "heavier_load.latency_ms.ack.p99 > baseline.latency_ms.ack.p99"


def variants_frame(variants: tuple[tuple[str, tuple[str, ...], str], ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"label": v[0], "set": "; ".join(v[1]), "description": v[2]} for v in variants],
        columns=["label", "set", "description"],
    )


def variants_from(frame: pd.DataFrame) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    rows = []
    for record in frame.to_dict("records"):
        label = str(record.get("label") or "").strip()
        sets = tuple(s.strip() for s in str(record.get("set") or "").split(";") if s.strip())
        text = str(record.get("description") or "").strip()
        if label or sets:
            rows.append((label, sets, text))
    return tuple(rows)


# --- the URL ------------------------------------------------------------------------------------
def follow_link(comparisons: dict[str, ScenarioBase]) -> None:
    query = links.query_dict(st.query_params)
    if not query or query == st.session_state.get(LINK_STATE):
        return
    st.session_state[LINK_STATE] = query
    try:
        request = CompareRequest.from_query(query)
    except ScenarioError as exc:
        st.session_state[ERROR_STATE] = ["This link does not describe a comparison:", *exc.problems]
        return
    if request is None:
        return
    if request.composed or request.scenario not in comparisons:
        st.session_state[MODE_KEY] = COMPOSE
        st.session_state["compare.base"] = request.scenario
        st.session_state["compare.editor_base"] = request.scenario
        st.session_state["compare.editor_rows"] = (
            variants_frame(request.variants) if request.composed else None
        )
        st.session_state[CLAIMS_KEY] = "\n".join(request.claims)
        st.session_state.pop(EDITOR_KEY, None)
    else:
        st.session_state[MODE_KEY] = BUILTIN
        st.session_state["compare.builtin"] = request.scenario
    st.session_state["compare.seed"] = request.seed
    if "seed" in query:
        st.session_state[REQUEST_STATE] = request


# --- the form -----------------------------------------------------------------------------------
def compare_form(comparisons: dict[str, ScenarioBase]) -> CompareRequest | None:
    """The comparison to run (None until the form is submitted)."""
    modes = [BUILTIN, COMPOSE] if comparisons else [COMPOSE]
    if not comparisons:
        st.caption(
            "No built-in scenario has `[compare]` variants yet: compose variants of any "
            "built-in here (they appear as the scenario library grows)."
        )
    mode_column, name_column = st.columns([2, 3], vertical_alignment="bottom")
    mode = mode_column.radio(
        "Comparison",
        modes,
        index=ui.index_of(modes, MODE_KEY, modes[0]),
        key=MODE_KEY,
        horizontal=True,
    )
    names = list(runs.scenario_catalog())
    if mode == BUILTIN:
        choices = list(comparisons)
        name = name_column.selectbox(
            "Scenario",
            choices,
            index=ui.index_of(choices, "compare.builtin", choices[0]),
            key="compare.builtin",
            format_func=lambda n: f"{n} — {comparisons[n].scenario.description}",
        )
        base = comparisons[name]
        st.markdown(base.scenario.description)
        st.dataframe(
            [
                {"variant": v.label, "set": "; ".join(v.set), "description": v.description}
                for v in base.compare.variants
            ],
            hide_index=True,
            key="compare.builtin_variants",
        )
    else:
        default = DEFAULT_BASE if DEFAULT_BASE in names else names[0]
        name = name_column.selectbox(
            "Base scenario",
            names,
            index=ui.index_of(names, "compare.base", default),
            key="compare.base",
        )
        try:
            base = load_scenario(name)
        except ScenarioError as exc:
            ui.problems(f"The built-in scenario {name!r} does not validate:", exc.problems)
            return None
    with st.form("compare.form", border=True):
        left, right = st.columns([3, 2], gap="medium")
        if mode == COMPOSE:
            rows = st.session_state.get("compare.editor_rows")
            if rows is None or st.session_state.get("compare.editor_base") != name:
                rows = default_variants(base)
                st.session_state["compare.editor_rows"] = rows
                st.session_state["compare.editor_base"] = name
                st.session_state.pop(EDITOR_KEY, None)
                st.session_state[CLAIMS_KEY] = DEFAULT_CLAIM
            edited = left.data_editor(
                rows,
                num_rows="dynamic",
                hide_index=True,
                key=EDITOR_KEY,
                column_config={
                    "label": st.column_config.TextColumn(
                        "label",
                        required=True,
                        help="Lowercase identifier used in the table and in claims.",
                    ),
                    "set": st.column_config.TextColumn(
                        "set",
                        help="`key=value` overrides separated by `;`, e.g. "
                        "`workload.rate_per_s=900; queue.servers=2`",
                    ),
                    "description": st.column_config.TextColumn("description"),
                },
            )
            claims_text = right.text_area(
                "Claims across variants (one per line)",
                value=ui.initial(CLAIMS_KEY, DEFAULT_CLAIM),
                key=CLAIMS_KEY,
                help="`<variant>.<summary key> <op> <number or variant.summary key>`, e.g. "
                "`kafka.messages.lost == 0`",
            )
        seed = right.number_input(
            "seed",
            min_value=0,
            step=1,
            value=int(ui.initial("compare.seed", base.scenario.seed)),
            key="compare.seed",
        )
        submitted = right.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    if mode == BUILTIN:
        return CompareRequest(name, int(seed))
    claims = tuple(line.strip() for line in claims_text.splitlines() if line.strip())
    return CompareRequest(name, int(seed), variants_from(edited), claims)


def validate(request: CompareRequest) -> tuple[ScenarioBase, dict[str, ScenarioBase]]:
    """The comparison scenario and one spec per variant; ScenarioError before any run starts."""
    spec = request.spec()
    if not spec.compare.variants:
        raise ScenarioError(["compare.variants: add at least one variant (a label per row)"])
    return spec, {v.label: variant_spec(spec, v) for v in spec.compare.variants}


# --- the result ---------------------------------------------------------------------------------
def show_comparison(request: CompareRequest) -> None:
    try:
        spec, specs = validate(request)
    except ScenarioError as exc:
        ui.problems("This comparison does not validate:", exc.problems)
        return
    results: dict[str, Result] = {}
    for i, (label, vspec) in enumerate(specs.items(), start=1):
        result = ui.run_with_progress(vspec, what=f"variant {label} ({i} of {len(specs)})")
        if result is None:
            return
        results[label] = result
    outcome = ComparisonResult(spec, list(spec.compare.variants), results)
    try:
        outcome.expectations = evaluate_expectations(outcome.summaries(), spec.compare.expect)
    except ValueError as exc:
        ui.problems("A claim cannot be checked:", [str(exc)])
    st.subheader(f"{spec.scenario.name}: {len(results)} variants, seed {spec.scenario.seed}")
    st.caption(
        "Same workload, same faults, same seed. From a terminal: download the comparison "
        "scenario below and run `rksim compare FILE`."
    )
    table = outcome.table()
    st.dataframe(table, hide_index=True, key="compare.verdict")
    if outcome.expectations:
        ui.show_expectations(outcome.expectations, key="compare.expectations")
    st.plotly_chart(plots.compare_fates_figure(results), theme=None, key="compare.fates")
    available = plots.compare_panels(results)
    panels = st.multiselect(
        "Panels", available, default=available, key="compare.panels", help="Shared time axis."
    )
    if panels:
        figure = plots.compare_timeseries_figure(results, panels)
        st.plotly_chart(figure, theme=None, key="compare.timeseries")
    st.markdown("**Each variant on its own**")
    row = st.container(horizontal=True)
    for variant in spec.compare.variants:
        overrides = {}
        for item in variant.set:
            key, _, raw = item.partition("=")
            overrides[key.strip()] = parse_value(raw.strip())
        run = links.RunRequest.build(request.scenario, overrides, seed=request.seed)
        row.page_link(
            "views/timeline.py",
            label=f"{variant.label} on the Timeline",
            icon=":material/timeline:",
            query_params=run.to_query(),
        )
    downloads(spec, outcome, table)


def downloads(spec: ScenarioBase, outcome: ComparisonResult, table: pd.DataFrame) -> None:
    stem = f"{spec.scenario.name}-compare-seed{spec.scenario.seed}-{spec.digest()[:8]}"

    def summaries() -> str:
        return json.dumps(outcome.summaries(), indent=2, allow_nan=False) + "\n"

    def timeseries() -> pd.DataFrame:
        return pd.concat(
            [r.timeseries.assign(variant=label) for label, r in outcome.results.items()],
            ignore_index=True,
        )

    parquet = "application/vnd.apache.parquet"
    items: list[tuple[str, Any, str, str, str]] = [
        ("verdict.csv", ui.csv_text(table), f"{stem}-verdict.csv", "text/csv", ""),
        ("summaries.json", summaries, f"{stem}-summaries.json", "application/json", ""),
        (
            "timeseries.csv",
            lambda: timeseries().to_csv(index=False),
            f"{stem}-ts.csv",
            "text/csv",
            "",
        ),
        (
            "timeseries.parquet",
            lambda: ui.parquet_bytes(timeseries())(),
            f"{stem}-ts.parquet",
            parquet,
            "",
        ),
        ("scenario.toml", spec.to_toml(), f"{stem}.toml", "application/toml", ""),
    ]
    ui.download_row(items, "compare")


# --- the page -----------------------------------------------------------------------------------
st.title("Compare")
st.caption(
    "The same workload and the same faults on several systems or configurations, side by side "
    "on one time axis, with a one-table verdict and the claims across them."
)
comparisons = builtin_comparisons()
follow_link(comparisons)
submitted = compare_form(comparisons)
if submitted is not None:
    try:
        validate(submitted)
    except ScenarioError as exc:
        st.session_state[ERROR_STATE] = ["This comparison does not validate:", *exc.problems]
        st.session_state.pop(REQUEST_STATE, None)
    else:
        st.session_state[REQUEST_STATE] = submitted
        st.session_state.pop(ERROR_STATE, None)
if st.session_state.get(ERROR_STATE):
    title, *lines = st.session_state[ERROR_STATE]
    ui.problems(title, lines)
current: CompareRequest | None = st.session_state.get(REQUEST_STATE)
if current is None:
    st.info("Choose the variants and press **Run**.", icon=":material/info:")
else:
    show_comparison(current)
    query = current.to_query()
    if links.query_dict(st.query_params) != query:
        st.query_params.from_dict(query)
    st.session_state[LINK_STATE] = query
