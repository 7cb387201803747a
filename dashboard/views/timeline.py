"""Timeline: the cluster drawn as a graph at any moment of a run, with the event log beside it.

The state at time t (node up / crashed / paused / loading / stopped, cut links, leaders, ISR)
comes from `simulator.timeline`, rebuilt from the run's recorded events; the pictures from
`simulator.plots`. The layout is computed once per run, so nodes stay in place while t moves.
"""

from __future__ import annotations

import links
import numpy as np
import pandas as pd
import runs
import streamlit as st
import ui

from simulator import plots
from simulator.results import Result
from simulator.scenario import ScenarioError, load_scenario
from simulator.timeline import Timeline

DEFAULT_SCENARIO = "queue_mm1"
PLAYGROUND_RUN = "playground.run"  # the Playground's run on display (a links.RunRequest)
REQUEST_STATE = "timeline.request"
LINK_STATE = "timeline.link"
LINK_ERROR = "timeline.link_error"
T_KEY = "timeline.t"  # the moment shown, seconds (a select_slider over `moments`)
PLAYING = "timeline.playing"
WINDOW_KEY = "timeline.window"
PLAY_FRAMES = 60  # a whole run plays in about this many steps
PLAY_INTERVAL_S = 0.7
SLIDER_STEPS = 400
WINDOWS_S = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@st.cache_resource(max_entries=8, show_spinner=False)
def view_of(
    key: runs.RunKey, _result: Result
) -> tuple[Timeline, dict[str, tuple[float, float]], list[float]]:
    """Timeline, node layout and slider moments of one run: computed once, shared read-only."""
    timeline = Timeline.from_result(_result)
    names = timeline.node_names
    nodes = pd.DataFrame({"name": names, "role": [timeline.role_at(n, -np.inf) for n in names]})
    layout = plots.architecture_layout(nodes)
    span_ms = max(timeline.end_ms - timeline.start_ms, 1.0)
    grid = np.linspace(timeline.start_ms, timeline.end_ms, SLIDER_STEPS + 1)
    moments = np.unique(np.round(np.concatenate([grid, timeline.change_times()]), 3))
    moments = moments[(moments >= timeline.start_ms) & (moments <= timeline.start_ms + span_ms)]
    return timeline, layout, [float(m) / 1000.0 for m in moments]


# --- which run ----------------------------------------------------------------------------------
def follow_link() -> None:
    """A URL this session did not write: show the run (and moment) it describes."""
    query = links.query_dict(st.query_params)
    run_query = {k: v for k, v in query.items() if k != "t"}
    request = links.new_run_link(run_query, st.session_state, LINK_STATE, LINK_ERROR)
    if request is None:
        return
    st.session_state[REQUEST_STATE] = request
    st.session_state.pop(T_KEY, None)
    if query.get("t"):
        try:
            st.session_state["timeline.link_t"] = float(query["t"][0])
        except ValueError:
            st.session_state[LINK_ERROR] = [f"t: {query['t'][0]!r} is not a time in seconds"]


def pick_run() -> links.RunRequest | None:
    """The run to show: the last one chosen here, else the Playground's, else none yet."""
    current: links.RunRequest | None = st.session_state.get(REQUEST_STATE)
    playground: links.RunRequest | None = st.session_state.get(PLAYGROUND_RUN)
    if current is None:
        current = playground
    names = list(runs.scenario_catalog())
    default = current.scenario if current is not None else DEFAULT_SCENARIO
    default = default if default in names else names[0]
    index = ui.index_of(names, "timeline.scenario", default)
    if current is not None and current.seed is not None:
        seed = current.seed
    else:
        try:
            seed = load_scenario(names[index]).scenario.seed
        except ScenarioError:
            seed = 1
    with st.form("timeline.pick", border=False):
        name_col, seed_col, button_col = st.columns([4, 1, 1], vertical_alignment="bottom")
        name = name_col.selectbox("Scenario", names, index=index, key="timeline.scenario")
        chosen_seed = seed_col.number_input(
            "seed",
            min_value=0,
            step=1,
            value=int(ui.initial("timeline.seed", seed)),
            key="timeline.seed",
        )
        if button_col.form_submit_button("Show", type="primary", icon=":material/play_arrow:"):
            current = links.RunRequest(name, int(chosen_seed))
            st.session_state[REQUEST_STATE] = current
            st.session_state.pop(T_KEY, None)
    if (
        playground is not None
        and playground != current
        and st.button(f"Show the Playground's run: {playground.label()}", icon=":material/science:")
    ):
        current = playground
        st.session_state[REQUEST_STATE] = current
        st.session_state.pop(T_KEY, None)
    return current


# --- the moment ---------------------------------------------------------------------------------
def _step(moments: list[float], t_s: float, direction: int, changes: np.ndarray) -> float:
    """The previous or next change (or the run's start or end when there is none)."""
    if direction > 0:
        later = changes[changes > t_s + 1e-9]
        return float(later[0]) if later.size else moments[-1]
    earlier = changes[changes < t_s - 1e-9]
    return float(earlier[-1]) if earlier.size else moments[0]


def _nearest(moments: list[float], t_s: float) -> float:
    return moments[int(np.argmin(np.abs(np.asarray(moments) - t_s)))]


def flow_at(result: Result, t_ms: float) -> str:
    """What the time series says about the bucket holding t: rates, p99, gauges."""
    frame = result.timeseries
    times = frame["t_ms"].to_numpy(dtype=float)
    i = int(np.searchsorted(times, t_ms, side="right")) - 1
    bucket_ms = float(result.summary.get("bucket_ms") or 0.0)
    if i < 0 or bucket_ms <= 0 or t_ms >= times[-1] + bucket_ms:
        return "Outside the measured phase: no messages are produced."
    row = frame.iloc[i]
    per_s = 1000.0 / bucket_ms
    parts = [
        f"{row['produced'] * per_s:,.0f} produced/s",
        f"{row['acked'] * per_s:,.0f} acknowledged/s",
        f"{row['delivered'] * per_s:,.0f} delivered/s",
    ]
    if row["ack_p99"] == row["ack_p99"]:
        parts.append(f"ack p99 {row['ack_p99']:.3g} ms")
    for gauge in plots.gauges(result):
        if row[gauge] == row[gauge]:
            parts.append(f"{gauge} {row[gauge]:.4g}")
    return f"In the {bucket_ms:g} ms around t: " + " · ".join(parts)


def moment_view(request: links.RunRequest, result: Result) -> None:
    timeline, layout, moments = view_of(runs.run_key(request.spec()), result)
    changes = timeline.change_times() / 1000.0
    link_t = st.session_state.pop("timeline.link_t", None)
    if link_t is not None:
        st.session_state[T_KEY] = _nearest(moments, link_t)
    elif st.session_state.get(T_KEY) not in moments:
        first = float(changes[0]) if changes.size else moments[0]
        st.session_state[T_KEY] = _nearest(moments, first)
    playing = bool(st.session_state.get(PLAYING))
    stride = max(1, len(moments) // PLAY_FRAMES)

    def step_to(direction: int) -> None:
        st.session_state[PLAYING] = False
        t_now = st.session_state[T_KEY]
        st.session_state[T_KEY] = _nearest(moments, _step(moments, t_now, direction, changes))

    def toggle_play() -> None:
        now_playing = not st.session_state.get(PLAYING, False)
        st.session_state[PLAYING] = now_playing
        if now_playing and st.session_state[T_KEY] >= moments[-1]:
            st.session_state[T_KEY] = moments[0]

    @st.fragment(run_every=PLAY_INTERVAL_S if playing else None)
    def moment() -> None:
        if bool(st.session_state.get(PLAYING)) != playing:
            # play or pause was pressed (a fragment rerun): rerun the page so the fragment
            # gets its timer, or loses it
            st.rerun()
        if st.session_state.get(PLAYING):
            i = moments.index(st.session_state[T_KEY]) + stride
            if i >= len(moments):
                st.session_state[T_KEY] = moments[-1]
                st.session_state[PLAYING] = False
                st.rerun()  # the whole page: stops the fragment's timer
            st.session_state[T_KEY] = moments[i]
        back, play, forward, slider = st.columns([1, 1, 1, 9], vertical_alignment="bottom")
        back.button(
            "",
            icon=":material/skip_previous:",
            help="The previous change (a node's state, a cut, a leader, a fault)",
            on_click=step_to,
            args=(-1,),
            key="timeline.back",
        )
        play.button(
            "",
            icon=":material/pause:" if st.session_state.get(PLAYING) else ":material/play_arrow:",
            help="Play the run from t (pause to stop)",
            on_click=toggle_play,
            key="timeline.play",
        )
        forward.button(
            "",
            icon=":material/skip_next:",
            help="The next change",
            on_click=step_to,
            args=(1,),
            key="timeline.forward",
        )
        t_s = slider.select_slider(
            "t (s of the measured phase; negative: warm-up)",
            options=moments,
            value=st.session_state[T_KEY],
            format_func=lambda s: f"{s:.3f}",
            key=T_KEY,
        )
        t_ms = t_s * 1000.0
        snapshot = timeline.at(t_ms)
        picture, log = st.columns([3, 2], gap="medium")
        with picture:
            figure = plots.architecture_figure(snapshot, layout)
            st.plotly_chart(figure, theme=None, key="timeline.architecture")
            st.caption(flow_at(result, t_ms))
        with log:
            span_s = (timeline.end_ms - timeline.start_ms) / 1000.0
            default_window = min(WINDOWS_S, key=lambda w: abs(w - span_s / 10.0))
            window = st.select_slider(
                "Event log: events within ± (s) of t",
                options=list(WINDOWS_S),
                value=ui.initial(WINDOW_KEY, default_window),
                key=WINDOW_KEY,
            )
            events = timeline.events_between(t_ms - window * 1000.0, t_ms + window * 1000.0)
            table = plots.event_log_table(events, t_ms)
            st.dataframe(
                table.style.apply(_grey_future, axis=1).format(
                    {"time (s)": "{:.3f}", "from t (s)": "{:+.3f}"}
                ),
                hide_index=True,
                height=260,
                key="timeline.events",
            )
            st.dataframe(
                snapshot.nodes.rename(columns={"leader_of": "leader of", "in_isr_of": "in ISR of"}),
                hide_index=True,
                key="timeline.nodes",
            )
        states = plots.node_states_figure(timeline, t_ms)
        st.plotly_chart(states, theme=None, key="timeline.states")
        query = request.to_query()
        query["t"] = [f"{t_s:g}"]
        if links.query_dict(st.query_params) != query:
            st.query_params.from_dict(query)

    moment()


def _grey_future(row: pd.Series) -> list[str]:
    """Events after t in grey: the log reads as what has happened so far."""
    style = "color: #9ca3af" if row["from t (s)"] > 1e-9 else ""
    return [style] * len(row)


# --- the page -----------------------------------------------------------------------------------
st.title("Timeline")
st.caption(
    "The cluster at any moment of a run: which nodes are up, crashed, paused or loading, which "
    "links are cut, who leads; beside it, what happened around that moment."
)
follow_link()
if st.session_state.get(LINK_ERROR):
    ui.problems("This link does not describe a valid run:", st.session_state[LINK_ERROR])
request = pick_run()
if request is None:
    st.info("Pick a scenario and press **Show**, or make a run on the Playground first.")
else:
    try:
        spec = request.spec()
    except ScenarioError as exc:
        ui.problems("This run does not validate:", exc.problems)
        st.stop()
    st.caption(f"Showing: {request.label()}")
    result = ui.run_with_progress(spec)
    if result is not None:
        if not result.summary.get("faults"):
            st.info(
                "This run has no faults, so every node stays up. Add some in the Playground's "
                "**[[faults]]** grid (crash, pause, partition, ...) and come back.",
                icon=":material/info:",
            )
        moment_view(request, result)
        ui.downloads(result, spec, key="timeline")
        st.session_state[LINK_STATE] = request.to_query()
