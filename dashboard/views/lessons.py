"""Lessons: the scenario library as a browsable list, each with its lesson, claims and a run.

Everything shown comes from the scenario files (`[scenario]` description and lesson, tags,
`[[expect]]` claims and their `why`); a run goes through `runs.py` and is drawn with
`simulator.plots`, its claims marked held or not held.
"""

from __future__ import annotations

from typing import Any

import links
import runs
import streamlit as st
import ui

from simulator import plots
from simulator.scenario import ScenarioError, load_scenario

LESSON_KEY = "lessons.name"
SEARCH_KEY = "lessons.search"
TAGS_KEY = "lessons.tags"
RAN_STATE = "lessons.ran"  # the lessons run in this session (their results stay on display)
LINK_STATE = "lessons.link"


@st.cache_data(show_spinner=False, ttl=60)
def library() -> dict[str, dict[str, Any]]:
    """Every built-in scenario: what it is, what it teaches, what it claims (or its problems)."""
    entries: dict[str, dict[str, Any]] = {}
    for name in runs.scenario_catalog():
        try:
            spec = load_scenario(name)
        except ScenarioError as exc:
            entries[name] = {"problems": exc.problems, "description": "", "tags": []}
            continue
        meta = spec.scenario
        entries[name] = {
            "problems": [],
            "description": meta.description,
            "lesson": meta.lesson.strip(),
            "tags": list(meta.tags),
            "system": spec.system.kind,
            "duration_s": meta.duration_s,
            "seed": meta.seed,
            "messages": spec.workload.rate_per_s * meta.duration_s,
            "faults": [f.model_dump(mode="json", exclude_defaults=True) for f in spec.faults],
            "claims": [{"check": e.check, "why": e.why} for e in spec.expect],
            "variants": [v.label for v in spec.compare.variants],
        }
    return entries


def follow_link(names: list[str]) -> None:
    query = links.query_dict(st.query_params)
    if not query or query == st.session_state.get(LINK_STATE):
        return
    st.session_state[LINK_STATE] = query
    wanted = (query.get("lesson") or [""])[0]
    if wanted in names:
        st.session_state[LESSON_KEY] = wanted
        st.session_state[SEARCH_KEY] = ""
        st.session_state[TAGS_KEY] = []


def browse(entries: dict[str, dict[str, Any]]) -> str | None:
    """Search and tag filters over the library; returns the chosen lesson."""
    search = st.text_input(
        "Search",
        value=ui.initial(SEARCH_KEY, ""),
        key=SEARCH_KEY,
        placeholder="crash, fsync, acks, rebalance…",
    ).lower()
    tags = sorted({t for e in entries.values() for t in e["tags"]})
    chosen_tags = (
        st.pills(
            "Tags", tags, selection_mode="multi", default=ui.initial(TAGS_KEY, []), key=TAGS_KEY
        )
        if tags
        else []
    ) or []
    shown = [
        name
        for name, e in entries.items()
        if (not search or search in f"{name} {e['description']} {e.get('lesson', '')}".lower())
        and all(t in e["tags"] for t in chosen_tags)
    ]
    if not shown:
        st.info("No lesson matches.")
        return None
    return st.radio(
        f"{len(shown)} of {len(entries)} lessons",
        shown,
        index=ui.index_of(shown, LESSON_KEY, shown[0]),
        format_func=lambda n: (
            f"**{n}** — {entries[n]['description']}" if entries[n]["description"] else f"**{n}**"
        ),
        key=LESSON_KEY,
    )


def lesson(name: str, entry: dict[str, Any]) -> None:
    st.header(name)
    if entry["problems"]:
        ui.problems("This scenario does not validate:", entry["problems"])
        return
    st.markdown(f"*{entry['description']}*")
    facts = [
        f"system **{entry['system']}**",
        f"{entry['duration_s']:g} s",
        f"about {entry['messages']:,.0f} messages",
        f"{len(entry['faults'])} fault(s)",
    ]
    if entry["tags"]:
        facts.append("tags: " + ", ".join(f"`{t}`" for t in entry["tags"]))
    st.caption(" · ".join(facts))
    if entry["lesson"]:
        st.markdown(entry["lesson"])
    if entry["faults"]:
        st.markdown("**Faults**")
        st.dataframe(entry["faults"], hide_index=True, key=f"lessons.faults.{name}")
    if entry["claims"]:
        st.markdown("**The claims it checks**")
        st.dataframe(entry["claims"], hide_index=True, key=f"lessons.claims.{name}")
    request = links.RunRequest(name, int(entry["seed"]))
    ran: set[str] = st.session_state.setdefault(RAN_STATE, set())
    row = st.container(horizontal=True, vertical_alignment="center")
    if row.button("Run this lesson", type="primary", icon=":material/play_arrow:"):
        ran.add(name)
    row.page_link(
        "views/playground.py",
        label="Open on the Playground",
        icon=":material/science:",
        query_params=request.to_query(),
    )
    if entry["variants"]:
        row.page_link(
            "views/compare.py",
            label=f"Compare its {len(entry['variants'])} variants",
            icon=":material/compare_arrows:",
            query_params={"scenario": name},
        )
    else:
        row.page_link(
            "views/timeline.py",
            label="Open on the Timeline",
            icon=":material/timeline:",
            query_params=request.to_query(),
        )
    if name in ran:
        show_run(request)


def show_run(request: links.RunRequest) -> None:
    spec = request.spec()
    result = ui.run_with_progress(spec, what=request.scenario)
    if result is None:
        return
    st.divider()
    st.caption(f"Simulated in {result.manifest.get('wall_s', 0.0):.2f} s")
    ui.fate_metrics(result)
    ui.fates_and_latency(result, "lessons")
    if result.summary.get("faults"):
        st.dataframe(plots.fault_table(result), hide_index=True, key="lessons.recovery")
    if result.expectations:
        ui.show_expectations(result.expectations, key="lessons.expectations")
    ui.downloads(result, spec, key="lessons")


st.title("Lessons")
st.caption(
    "The scenario library: each lesson is one experiment with a fault and a configuration that "
    "makes a point, the claims it checks, and a run you can start with one click."
)
entries = library()
if not entries:
    st.error("No built-in scenarios found in simulator/scenarios/.")
    st.stop()
follow_link(list(entries))
list_column, lesson_column = st.columns([1, 2.4], gap="large")
with list_column:
    chosen = browse(entries)
with lesson_column:
    if chosen is not None:
        lesson(chosen, entries[chosen])
        query = {"lesson": [chosen]}
        if links.query_dict(st.query_params) != query:
            st.query_params.from_dict(query)
        st.session_state[LINK_STATE] = query
