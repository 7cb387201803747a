"""The Timeline page in AppTest: the cluster at a moment, stepping, playing, the event log."""

from __future__ import annotations

from typing import Any

from dashboard_helpers import (
    CRASH,
    PARTITION,
    SCENARIO,
    assert_ok,
    chart,
    errors,
    open_app,
    query,
    titles,
    trace_names,
)
from streamlit.testing.v1 import AppTest

LINK: dict[str, str | list[str]] = {
    "scenario": SCENARIO,
    "seed": "5",
    "set": "scenario.duration_s=10",
    "fault": [CRASH, PARTITION],
}


def nodes_drawn(figure: dict[str, Any]) -> dict[str, list[str]]:
    """State -> node names, from the architecture figure's node traces."""
    drawn = {}
    for trace in figure["data"]:
        if trace.get("mode") == "markers+text":
            drawn[trace["name"]] = [text.split("<br>")[0] for text in trace.get("text", [])]
    return {state: names for state, names in drawn.items() if names}


def table(at: AppTest, column: str) -> Any:
    """The table on the page that has this column."""
    (found,) = [t.value for t in at.dataframe if column in t.value.columns]
    return found


def t_shown(at: AppTest) -> float:
    value = at.select_slider(key="timeline.t").value
    assert isinstance(value, float)
    return value


def test_without_a_run_the_page_offers_one_and_shows_it() -> None:
    at = open_app("timeline")
    assert at.title[0].value == "Timeline"
    assert "press **Show**" in at.info[0].value
    at.button(key="FormSubmitter:timeline.pick-Show").click().run()
    assert_ok(at)
    assert titles(at)[0].startswith("Cluster at t = ")
    assert titles(at)[1] == "Node states over time"
    assert nodes_drawn(chart(at, "Cluster")) == {"up": ["server", "client"]}
    assert "no faults" in at.info[0].value
    assert query(at)["scenario"] == [SCENARIO]
    labels = [button.proto.label for button in at.get("download_button")]
    assert "events.csv" in labels and "scenario.toml" in labels


def test_a_link_to_a_moment_shows_the_crashed_node_and_the_events_around_it() -> None:
    at = open_app("timeline", query={**LINK, "t": "3.5"})
    assert not errors(at)
    assert t_shown(at) == 3.5
    figure = chart(at, "Cluster at t = 3.500 s")
    assert nodes_drawn(figure) == {"up": ["client"], "crashed": ["server"]}
    nodes = table(at, "in ISR of").set_index("name")
    assert nodes.loc["server", "state"] == "crashed"
    assert nodes.loc["server", "faults"] == "crash"
    log = table(at, "from t (s)")
    assert list(log["event"]) == ["fault", "crash", "restart", "fault_end"]
    assert list(log["time (s)"]) == [3.0, 3.0, 4.0, 4.0]
    states = chart(at, "Node states over time")
    assert {"up", "crashed"} <= set(trace_names(states))
    (line,) = [s for s in states["layout"]["shapes"] if s["type"] == "line"]
    assert line["x0"] == 3.5  # the moment is marked


def test_stepping_goes_from_change_to_change_and_shows_cut_links() -> None:
    at = open_app("timeline", query={**LINK, "t": "3.5"})
    at.button(key="timeline.forward").click().run()
    assert t_shown(at) == 4.0
    assert nodes_drawn(chart(at, "Cluster")) == {"up": ["server", "client"]}
    at.button(key="timeline.forward").click().run()
    assert t_shown(at) == 6.0  # the partition
    figure = chart(at, "Cluster at t = 6.000 s")
    (cut,) = [trace for trace in figure["data"] if trace["name"] == "cut link"]
    assert [x for x in cut["x"] if x is not None]  # a dashed red segment between the nodes
    assert query(at)["t"] == ["6"]
    at.button(key="timeline.back").click().run()
    at.button(key="timeline.back").click().run()
    assert t_shown(at) == 3.0


def test_play_advances_the_moment_until_the_end_then_stops() -> None:
    at = open_app("timeline", query={**LINK, "t": "9.5"})
    at.button(key="timeline.play").click().run()
    assert at.session_state["timeline.playing"]
    start = t_shown(at)
    for _ in range(20):
        at.run()
        assert_ok(at)
        if not at.session_state["timeline.playing"]:
            break
    assert not at.session_state["timeline.playing"]
    assert t_shown(at) > start


def test_the_playground_run_is_offered_on_the_timeline() -> None:
    at = open_app(query={**LINK})  # the Playground shows the linked run
    at.switch_page("views/timeline.py").run()
    assert_ok(at)
    shown = [c.value for c in at.caption if c.value.startswith("Showing:")]
    assert shown == ["Showing: queue_mm1 · seed 5 · duration_s=10 · 2 edited fault(s)"]


def test_a_broken_link_says_what_is_wrong_and_the_page_stays_usable() -> None:
    at = open_app("timeline", query={"scenario": "no_such_scenario", "seed": "1"})
    (error,) = errors(at)
    assert "no built-in scenario 'no_such_scenario'" in error
    at.button(key="FormSubmitter:timeline.pick-Show").click().run()
    assert_ok(at)
    assert titles(at)[0].startswith("Cluster at t = ")
