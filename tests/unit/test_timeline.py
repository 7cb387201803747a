"""The timeline rebuilds the cluster at any moment from a run's events, faults and nodes."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

import simulator
from simulator.checker import events_frame, faults_frame
from simulator.context import Event, FaultRecord
from simulator.results import Result, empty_nodes
from simulator.scenario import load_scenario, read_toml
from simulator.timeline import Cut, CutLink, Timeline

NODES = pd.DataFrame(
    {
        "name": ["broker0", "broker1", "broker2", "producer0"],
        "role": ["broker", "broker", "broker", "producer"],
    }
)


def events(*rows: tuple[float, str, str, dict[str, Any]]) -> pd.DataFrame:
    return events_frame([Event(t, kind, node, detail) for t, kind, node, detail in rows])


def timeline(*rows: tuple[float, str, str, dict[str, Any]], **kwargs: Any) -> Timeline:
    return Timeline(events(*rows), nodes=kwargs.pop("nodes", NODES), **kwargs)


def test_every_node_starts_up_with_its_role_from_the_nodes_table() -> None:
    snapshot = timeline(duration_ms=1000).at(500)
    assert snapshot.nodes[["name", "role", "state"]].values.tolist() == [
        ["broker0", "broker", "up"],
        ["broker1", "broker", "up"],
        ["broker2", "broker", "up"],
        ["producer0", "producer", "up"],
    ]
    assert snapshot.cut_links == [] and snapshot.leaders == {} and snapshot.isr == {}


def test_crash_restart_stop_and_power_loss_change_the_node_state_from_their_time_on() -> None:
    tl = timeline(
        (100, "crash", "broker0", {}),
        (200, "restart", "broker0", {}),
        (300, "stop", "broker1", {}),
        (400, "power_loss", "broker2", {}),
        (400, "power_loss", "broker2", {}),  # again while down: still crashed
        (500, "restart", "broker2", {}),
    )
    assert [tl.state_at("broker0", t) for t in (99, 100, 150, 200)] == [
        "up",
        "crashed",
        "crashed",
        "up",
    ]
    assert tl.state_at("broker1", 1e9) == "stopped"
    assert [tl.state_at("broker2", t) for t in (399, 450, 500)] == ["up", "crashed", "up"]


def test_resume_returns_to_the_state_before_the_pause_and_loading_ends_when_loaded() -> None:
    tl = timeline(
        (100, "restart", "broker0", {}),
        (100, "rdb_loading", "broker0", {}),
        (150, "pause", "broker0", {}),
        (180, "resume", "broker0", {}),
        (250, "loaded", "broker0", {}),
        (300, "pause", "broker1", {}),
        (310, "crash", "broker1", {}),  # a crash ends the pause
        (320, "resume", "broker1", {}),  # no effect on a crashed node
    )
    assert [tl.state_at("broker0", t) for t in (120, 160, 200, 250)] == [
        "loading",
        "paused",
        "loading",
        "up",
    ]
    assert [tl.state_at("broker1", t) for t in (305, 315, 330)] == ["paused", "crashed", "crashed"]


def test_a_partition_cuts_the_links_between_its_groups_until_its_heal() -> None:
    groups = [["broker0", "producer0"], ["broker1", "broker2"]]
    tl = timeline(
        (100, "partition", "", {"cut_id": 1, "groups": groups}),
        (200, "heal", "", {"cut_id": 1}),
    )
    assert tl.cuts == [
        Cut(1, 100.0, 200.0, groups=(("broker0", "producer0"), ("broker1", "broker2")))
    ]
    cut = {(link.a, link.b) for link in tl.at(150).cut_links}
    assert cut == {
        ("broker0", "broker1"),
        ("broker0", "broker2"),
        ("broker1", "producer0"),
        ("broker2", "producer0"),
    }
    assert all(not link.one_way for link in tl.at(150).cut_links)
    assert tl.at(99).cut_links == [] and tl.at(200).cut_links == []


def test_an_isolation_cuts_every_link_of_the_node_and_one_way_only_its_outgoing_ones() -> None:
    tl = timeline(
        (100, "partition", "broker1", {"cut_id": 1, "one_way": False}),
        (300, "partition", "producer0", {"cut_id": 2, "one_way": True}),
    )
    assert {(link.a, link.b) for link in tl.at(150).cut_links} == {
        ("broker0", "broker1"),
        ("broker1", "broker2"),
        ("broker1", "producer0"),
    }
    one_way = [link for link in tl.at(400).cut_links if link.one_way]
    # producer0 can receive but not send: the cut runs from producer0 to each other node
    assert {(link.a, link.b) for link in one_way} == {
        ("producer0", "broker0"),
        ("producer0", "broker2"),
    }
    assert CutLink("broker1", "producer0") in tl.at(400).cut_links  # both ways, from cut 1
    assert tl.cuts[0].end_ms == math.inf  # never healed


def test_leaders_isr_and_roles_follow_the_model_events() -> None:
    tl = timeline(
        (0, "leader_elected", "broker0", {"partition": 0, "leader": "broker0"}),
        (0, "isr_expand", "", {"partition": 0, "isr": ["broker0", "broker1", "broker2"]}),
        (100, "crash", "broker0", {}),
        (110, "isr_shrink", "", {"partition": 0, "isr": ["broker1", "broker2"]}),
        (120, "leader_elected", "broker1", {"partition": 0}),  # leader defaults to the node
        (130, "leader_elected", "", {"partition": 1, "leader": None}),  # offline partition
        (140, "role_change", "broker2", {"role": "controller"}),
    )
    before, after = tl.at(50), tl.at(150)
    assert before.leaders == {"0": "broker0"}
    assert before.nodes.set_index("name").loc["broker0", "leader_of"] == "0"
    assert before.isr == {"0": ("broker0", "broker1", "broker2")}
    assert after.leaders == {"0": "broker1", "1": None}
    assert after.isr == {"0": ("broker1", "broker2")}
    table = after.nodes.set_index("name")
    assert table.loc["broker1", "leader_of"] == "0"
    assert table.loc["broker0", "in_isr_of"] == ""
    assert table.loc["broker0", "state"] == "crashed"
    assert table.loc["broker2", "role"] == "controller"
    assert before.nodes.set_index("name").loc["broker2", "role"] == "broker"
    assert list(tl.change_times()) == [0, 100, 110, 120, 130, 140]


def test_a_redis_failover_names_the_new_primary() -> None:
    nodes = pd.DataFrame({"name": ["redis0", "redis1"], "role": ["primary", "replica"]})
    tl = timeline((500, "failover", "sentinel0", {"new_primary": "redis1"}), nodes=nodes)
    assert tl.at(499).leaders == {}
    assert tl.at(500).leaders == {"primary": "redis1"}


def test_unknown_events_are_kept_in_the_log_and_change_nothing() -> None:
    tl = timeline(
        (10, "snapshot_started", "broker0", {"bytes": 5}),
        (20, "isr_shrink", "", {"partition": 0}),  # no isr list: an empty ISR
        (30, "partition", "", {"groups": [["broker0"]]}),  # no cut id: ignored
        (40, "heal", "", {"cut_id": 99}),  # heals nothing known
    )
    assert tl.state_at("broker0", 100) == "up"
    assert tl.cuts == []
    assert list(tl.events_between(0, 100)["kind"]) == [
        "snapshot_started",
        "isr_shrink",
        "partition",
        "heal",
    ]


def test_nodes_named_only_by_events_are_shown_with_an_empty_role() -> None:
    tl = timeline((5, "crash", "sentinel1", {}), nodes=empty_nodes())
    assert tl.node_names == ["sentinel1"]
    assert tl.at(10).nodes.to_dict("records")[0]["role"] == ""


def test_faults_active_at_t_are_listed_per_node() -> None:
    faults = faults_frame(
        [
            FaultRecord(0, "slow_disk", "broker1", ["broker1"], 100.0, 300.0),
            FaultRecord(1, "restart", "broker0", ["broker0"], 200.0, 200.0),  # instantaneous
            FaultRecord(2, "delay", "all_servers", ["broker0", "broker1"], 250.0, None),
        ]
    )
    tl = Timeline(events(), faults, NODES)
    table = tl.at(260).nodes.set_index("name")["faults"]
    assert table["broker1"] == "slow_disk,delay"
    assert table["broker0"] == "delay"
    assert list(tl.faults_at(200)["index"]) == [0]
    assert list(tl.faults_at(1e9)["index"]) == [2]  # open until the final heal


def test_state_intervals_cover_the_run_for_every_node() -> None:
    tl = timeline((100, "crash", "broker0", {}), (300, "restart", "broker0", {}), duration_ms=1000)
    rows = tl.state_intervals()
    broker0 = rows[rows["name"] == "broker0"].values.tolist()
    assert broker0 == [
        ["broker0", "up", 0.0, 100.0],
        ["broker0", "crashed", 100.0, 300.0],
        ["broker0", "up", 300.0, 1000.0],
    ]
    assert len(rows) == 3 + 3  # the other three nodes: one stretch each


def test_events_between_is_inclusive_and_in_time_order() -> None:
    tl = timeline((30, "b", "", {}), (10, "a", "", {}), (30, "c", "", {}), (50, "d", "", {}))
    assert list(tl.events_between(10, 30)["kind"]) == ["a", "b", "c"]
    assert json.loads(tl.events.loc[0, "detail"]) == {}


def test_a_real_run_with_faults_is_rebuilt_from_its_saved_result(tmp_path: Any) -> None:
    data = read_toml("queue_mm1")
    data["scenario"].update(duration_s=8.0, ci_set=[])
    data["faults"] = [
        {"at_s": 2, "kind": "crash", "target": "primary", "duration_s": 1},
        {"at_s": 4, "kind": "pause", "target": "server", "duration_s": 0.5},
        {"at_s": 6, "kind": "partition", "target": "server", "duration_s": 1},
    ]
    result = simulator.run(load_scenario(data))
    assert result.nodes.values.tolist() == [["server", "server"], ["client", "client"]]
    loaded = Result.load(result.save(tmp_path / "run", messages=False))
    pd.testing.assert_frame_equal(loaded.nodes, result.nodes)
    tl = Timeline.from_result(loaded)
    assert tl.end_ms >= 8000.0
    assert [tl.state_at("server", t) for t in (1999, 2500, 3000, 4200, 4500)] == [
        "up",
        "crashed",
        "up",
        "paused",
        "up",
    ]
    assert tl.at(6500).cut_links == [CutLink("server", "client")]
    assert tl.at(7000).cut_links == []
    assert tl.at(2500).nodes.set_index("name").loc["server", "faults"] == "crash"


def test_a_result_saved_without_a_nodes_table_loads_with_an_empty_one(tmp_path: Any) -> None:
    result = simulator.run("queue_mm1", overrides=["scenario.duration_s=1"])
    directory = result.save(tmp_path / "run", messages=False)
    (directory / "nodes.parquet").unlink()
    loaded = Result.load(directory)
    assert loaded.nodes.empty and list(loaded.nodes.columns) == ["name", "role"]


@pytest.mark.parametrize("kind", ["crash", "stop"])
def test_a_down_event_for_a_node_already_down_keeps_its_state(kind: str) -> None:
    tl = timeline((10, "stop", "broker0", {}), (20, kind, "broker0", {}))
    assert tl.state_at("broker0", 30) == "stopped"


def test_kafka_style_broker_ids_become_node_names() -> None:
    nodes = pd.DataFrame(
        {
            "name": ["broker0", "broker1", "broker2", "controller", "consumer1"],
            "role": ["server", "server", "server", "controller", "consumer"],
        }
    )
    tl = timeline(
        (-1000, "became_leader", "broker0", {"partition": 0, "epoch": 0}),
        (5000, "crash", "broker0", {}),
        (12000, "broker_fenced", "broker0", {"reason": "session_timeout"}),
        (12000, "leader_elected", "controller", {"partition": 0, "leader": 1, "epoch": 1}),
        (12000, "isr_shrink", "broker1", {"partition": 0, "isr": [1, 2], "removed": [0]}),
        (13000, "partition_offline", "controller", {"partition": 1, "isr": [2]}),
        (20000, "broker_unfenced", "broker0", {}),
        nodes=nodes,
    )
    assert tl.at(0).leaders == {"0": "broker0"}
    later = tl.at(12500)
    assert later.leaders == {"0": "broker1"}
    # id 1 is broker1, not consumer1: a client never leads or replicates
    assert later.isr == {"0": ("broker1", "broker2")}
    assert tl.at(13000).leaders == {"0": "broker1", "1": None}
    assert tl.at(13000).isr["1"] == ("broker2",)
    assert tl.flags_at("broker0", 12500) == ["fenced"]
    assert later.nodes.set_index("name").loc["broker0", "flags"] == "fenced"
    assert tl.flags_at("broker0", 20000) == []
    assert tl.node_names == list(nodes["name"])  # no node called "1"


def test_redis_style_loading_ends_with_loading_done() -> None:
    nodes = pd.DataFrame({"name": ["redis", "clients"], "role": ["server", "client"]})
    tl = timeline(
        (2000, "crash", "redis", {}),
        (3000, "restart", "redis", {}),
        (3000, "loading", "redis", {"load_ms": 400.0}),
        (3400, "loading_done", "redis", {"keys": 10}),
        nodes=nodes,
    )
    assert [tl.state_at("redis", t) for t in (2500, 3000, 3200, 3400)] == [
        "crashed",
        "loading",
        "loading",
        "up",
    ]


def test_a_leader_of_no_one_is_recorded_as_none() -> None:
    tl = timeline(
        (10, "leader_elected", "controller", {"partition": 0, "leader": -1}),
        (20, "leader_elected", "controller", {"partition": 1, "leader": ""}),
    )
    assert tl.at(30).leaders == {"0": None, "1": None}
