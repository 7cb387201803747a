"""Decision guide: the claims people quote about Redis and Kafka, each with evidence from runs.

The rows come from `simulator/guide.toml` (claim, verdict, what was found, which scenarios show
it and which summary keys to read); the numbers come from running those scenarios here, at
their small CI size or at full size, through `simulator.report.measure`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from simulator import report

SIZE_KEY = "guide.size"
ROWS_KEY = "guide.rows"
MEASURED_STATE = "guide.measured"


@st.cache_resource(show_spinner=False, max_entries=4)
def measured_runs(row_ids: tuple[str, ...], ci: bool, seed: int) -> dict[str, Any]:
    """Run the cited scenarios once per (rows, size, seed); kept read-only, never pickled."""
    rows = [r for r in report.load_guide() if r.id in row_ids]
    return report.measure(rows, ci=ci, seed=seed)


st.title("Decision guide")
st.caption(
    "The usual claims about Redis and Kafka, each checked by the scenarios listed under it. "
    "Open a scenario on the Lessons page to read why it behaves as it does."
)
guide = report.load_guide()
by_id = {row.id: row for row in guide}

chosen = st.multiselect(
    "Rows",
    list(by_id),
    default=list(by_id),
    format_func=lambda i: by_id[i].topic,
    key=ROWS_KEY,
)
with st.form("guide.form"):
    size = st.radio(
        "Size",
        ["CI size (seconds)", "full size (minutes)"],
        horizontal=True,
        key=SIZE_KEY,
        help="CI size runs every scenario at the small size its claims are tested at.",
    )
    seed = st.number_input("seed", min_value=0, value=1, step=1, key="guide.seed")
    measure = st.form_submit_button("Measure", type="primary")

if measure and chosen:
    names = list(dict.fromkeys(n for i in chosen for n in by_id[i].scenarios))
    with st.spinner(f"running {len(names)} scenarios ..."):
        st.session_state[MEASURED_STATE] = (
            tuple(chosen),
            measured_runs(tuple(chosen), size.startswith("CI"), int(seed)),
        )

shown = st.session_state.get(MEASURED_STATE)
measured: dict[str, Any] = shown[1] if shown and set(chosen) <= set(shown[0]) else {}

for row_id in chosen:
    row = by_id[row_id]
    st.subheader(row.topic)
    st.markdown(f"**The claim.** {row.claim}")
    st.markdown(f"**Verdict: {row.verdict}.** {row.finding}")
    if row.missing:
        st.caption(f"Not measured yet: {row.missing}")
    st.caption("Scenarios: " + ", ".join(f"`{n}`" for n in row.scenarios))
    if all(n in measured for n in row.scenarios):
        st.dataframe(report.row_table(row, measured), hide_index=True, width="stretch")
        held = [report.held_count(measured[n]) for n in row.scenarios]
        st.caption(
            f"Claims held in this run: {sum(h for h, _ in held)} of {sum(t for _, t in held)}"
        )
    elif not measured:
        st.info("Press **Measure** to run the scenarios behind this row.")
