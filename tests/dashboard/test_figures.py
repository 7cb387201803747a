"""The figures and tables the Timeline and Compare pages draw (simulator.plots), from runs."""

from __future__ import annotations

import pandas as pd
import pytest

import simulator
from simulator import plots
from simulator.checker import events_frame
from simulator.context import Event
from simulator.results import Result
from simulator.scenario import load_scenario, read_toml
from simulator.timeline import Timeline

KAFKA_LIKE = pd.DataFrame(
    {
        "name": ["producer0", "controller", "broker0", "broker1", "broker2", "consumer0"],
        "role": ["producer", "controller", "broker", "broker", "broker", "consumer"],
    }
)


@pytest.fixture(scope="module")
def faulty_run() -> Result:
    data = read_toml("queue_mm1")
    data["scenario"].update(duration_s=6.0)
    data["faults"] = [
        {"at_s": 1, "kind": "crash", "target": "primary", "duration_s": 1},
        {"at_s": 3, "kind": "partition", "target": "server", "duration_s": 1},
    ]
    return simulator.run(load_scenario(data))


def test_the_layout_puts_clients_left_servers_centre_consumers_right_coordinators_on_top() -> None:
    layout = plots.architecture_layout(KAFKA_LIKE)
    x = {name: position[0] for name, position in layout.items()}
    y = {name: position[1] for name, position in layout.items()}
    assert x["producer0"] < x["broker0"] == x["controller"] < x["consumer0"]
    assert y["controller"] > max(y["broker0"], y["broker1"], y["broker2"])
    assert plots.architecture_layout(KAFKA_LIKE) == layout  # the same every time


def test_implicit_links_join_clients_and_consumers_to_servers_and_servers_together() -> None:
    links = set(plots.implicit_links(KAFKA_LIKE))
    assert ("producer0", "broker0") in links and ("broker0", "consumer0") in links
    assert ("broker0", "broker1") in links and ("controller", "broker2") in links
    assert ("producer0", "consumer0") not in links and ("producer0", "controller") not in links


def test_the_architecture_figure_colours_nodes_by_state_and_dashes_cut_links() -> None:
    events = events_frame(
        [
            Event(0, "leader_elected", "broker0", {"partition": 0}),
            Event(10, "crash", "broker0", {}),
            Event(20, "partition", "broker2", {"cut_id": 1, "one_way": False}),
            Event(30, "leader_elected", "broker1", {"partition": 0}),
        ]
    )
    timeline = Timeline(events, nodes=KAFKA_LIKE)
    figure = plots.architecture_figure(timeline.at(35), plots.architecture_layout(KAFKA_LIKE))
    traces = {trace.name: trace for trace in figure.data}
    assert [t.text[0].split("<br>")[0] for t in figure.data if t.name == "crashed"] == ["broker0"]
    assert list(traces["crashed"].text) == ["broker0"]
    assert "broker1<br>leader 0" in traces["up"].text
    assert len(traces["leader"].x) == 1
    cut = [x for x in traces["cut link"].x if x is not None]
    assert len(cut) == 2 * 5  # broker2 is cut from the 5 nodes it talks to (both ends each)
    assert figure.layout.title.text == "Cluster at t = 0.035 s"


def test_node_states_figure_has_one_row_per_node_and_marks_t(faulty_run: Result) -> None:
    timeline = Timeline.from_result(faulty_run)
    figure = plots.node_states_figure(timeline, t_ms=1500)
    crashed = next(t for t in figure.data if t.name == "crashed")
    assert list(crashed.y) == ["server"] and list(crashed.base) == [1.0]
    assert list(crashed.x) == [1.0]  # one second down
    assert any(shape.type == "line" and shape.x0 == 1.5 for shape in figure.layout.shapes)


def test_event_log_table_is_readable_and_relative_to_t(faulty_run: Result) -> None:
    timeline = Timeline.from_result(faulty_run)
    table = plots.event_log_table(timeline.events_between(900, 2100), t_ms=1000)
    assert list(table.columns) == ["time (s)", "from t (s)", "event", "node", "detail"]
    assert list(table["event"]) == ["fault", "crash", "restart", "fault_end"]
    assert list(table["from t (s)"]) == [0.0, 0.0, 1.0, 1.0]
    assert table["detail"].iloc[0] == "fault=crash, index=0, target=primary"
    assert "from t (s)" not in plots.event_log_table(timeline.events)


def test_compare_figures_share_one_time_axis_and_one_colour_per_variant(
    faulty_run: Result,
) -> None:
    calm = simulator.run("queue_mm1", overrides=["scenario.duration_s=6"])
    results = {"calm": calm, "faulty": faulty_run}
    fates = plots.compare_fates_figure(results)
    # the crash fails what arrives while the server is down (and what it held: indeterminate)
    assert {"delivered", "failed"} <= {trace.name for trace in fates.data}
    assert list(fates.data[0].y) == ["calm", "faulty"]
    panels = plots.compare_panels(results)
    assert panels == ["ack_p99", "e2e_p99", "acked_per_s", "delivered_per_s", "queue_length"]
    figure = plots.compare_timeseries_figure(results, ["ack_p99", "acked_per_s"])
    assert [trace.name for trace in figure.data] == ["calm", "faulty", "calm", "faulty"]
    assert figure.data[0].line.color == figure.data[2].line.color
    # throughput as a rate: about 500/s offered, in buckets of bucket_ms
    rates = figure.data[2].y
    assert 400 < sum(rates[5:-5]) / len(rates[5:-5]) < 600
    assert figure.layout.xaxis.matches == "x2"
    # each fault window shaded across both panels
    windows = [(shape.x0, shape.x1) for shape in figure.layout.shapes]
    assert sorted(set(windows)) == [(1.0, 2.0), (3.0, 4.0)]
    with pytest.raises(ValueError, match="no time series nope"):
        plots.compare_timeseries_figure(results, ["nope"])
