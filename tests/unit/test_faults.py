"""The fault schedule: each kind fires at its time on the resolved nodes and ends after its duration."""

from __future__ import annotations

from typing import Any

import pytest

from simulator import systems
from simulator.context import RunContext
from simulator.faults import FaultInjector
from simulator.model import SystemModel
from simulator.network import Network
from simulator.node import CRASHED, PAUSED, UP, Node
from simulator.scenario import load_scenario
from simulator.systems import SystemConfig


class PingConfig(SystemConfig):
    """two nodes, a pings b every 10 ms"""

    def node_names(self) -> list[str]:
        return ["a", "b"]

    def roles(self) -> list[str]:
        return ["all_servers", "leader"]


class PingModel(SystemModel):
    def build(self) -> None:
        self.a = Node(self.ctx, "a")
        self.b = Node(self.ctx, "b")
        self.arrivals: list[float] = []

    def start_workload(self) -> None:
        self.a.spawn(self._ping())

    def _ping(self) -> Any:
        net = self.ctx.network
        while True:
            sent = self.env.now
            net.send("a", "b", 100, lambda s=sent: self.arrivals.append(s), timeout_ms=10_000)
            yield from self.a.sleep(10)

    def resolve_target(self, target: str) -> list[str]:
        if target == "leader":
            return ["b"]
        return super().resolve_target(target)


@pytest.fixture(scope="module", autouse=True)
def ping_system() -> None:
    systems.register(systems.System("ping", PingConfig, PingModel, "test model"))


def start(faults: list[dict], duration_s: float = 2.0, nemesis: dict | None = None):
    data: dict[str, Any] = {
        "system": {"kind": "ping"},
        "scenario": {"duration_s": duration_s, "warmup_s": 0},
        "faults": faults,
    }
    if nemesis:
        data["nemesis"] = nemesis
    spec = load_scenario(data)
    ctx = RunContext(spec)
    ctx.network = Network(ctx, spec.network)
    model = PingModel(ctx)
    model.build()
    ctx.phase = "measured"
    model.start_workload()
    injector = FaultInjector(ctx, model)
    injector.start()
    return ctx, model, injector


def test_crash_with_duration_restarts_the_node() -> None:
    ctx, model, _ = start([{"at_s": 0.5, "kind": "crash", "target": "leader", "duration_s": 0.5}])
    ctx.env.run(until=700)
    assert model.b.state == CRASHED
    ctx.env.run(until=1100)
    assert model.b.state == UP
    (record,) = ctx.faults
    assert (record.kind, record.nodes, record.begin_ms, record.end_ms) == (
        "crash",
        ["b"],
        500,
        1000,
    )


def test_pause_freezes_the_node_for_its_duration() -> None:
    ctx, model, _ = start([{"at_s": 0.2, "kind": "pause", "target": "a", "duration_s": 0.3}])
    ctx.env.run(until=300)
    assert model.a.state == PAUSED
    ctx.env.run(until=1000)
    assert model.a.state == UP
    sent = sorted(set(model.arrivals))
    # no ping is sent while a is frozen
    assert not [t for t in sent if 200 < t < 500]


def test_partition_holds_messages_until_heal() -> None:
    ctx, model, _ = start(
        [{"at_s": 0.5, "kind": "partition", "groups": [["a"], ["b"]], "duration_s": 0.5}]
    )
    ctx.env.run(until=990)
    assert not [t for t in model.arrivals if t >= 510]  # nothing crosses the cut
    ctx.env.run(until=1200)
    held = [t for t in model.arrivals if 500 <= t < 1000]
    assert len(held) >= 45  # the messages sent during the cut arrive after the heal
    assert ctx.faults[0].end_ms == 1000


def test_isolate_by_target_and_explicit_heal() -> None:
    ctx, _, _ = start(
        [{"at_s": 0.2, "kind": "partition", "target": "b"}, {"at_s": 0.6, "kind": "heal"}]
    )
    ctx.env.run(until=400)
    assert ctx.network.cut_links()
    ctx.env.run(until=700)
    assert not ctx.network.cut_links()
    assert ctx.faults[0].end_ms == 600


def test_delay_fault_adds_latency_then_clears() -> None:
    ctx, _, _ = start(
        [{"at_s": 0.1, "kind": "delay", "target": "a", "delay_ms": 50, "duration_s": 0.2}]
    )
    ctx.env.run(until=150)
    assert ctx.network.delay("a", "b") >= 50
    ctx.env.run(until=400)
    assert ctx.network.delay("a", "b") < 5


def test_end_all_heals_and_restarts_everything() -> None:
    ctx, model, injector = start(
        [
            {"at_s": 0.1, "kind": "crash", "target": "b"},
            {"at_s": 0.2, "kind": "partition", "target": "a"},
        ]
    )
    ctx.env.run(until=500)
    injector.end_all()
    assert model.b.state == UP
    assert not ctx.network.cut_links()
    assert len(ctx.faults) == 2
    assert all(r.end_ms == 500 for r in ctx.faults)


def test_seeded_nemesis_is_reproducible() -> None:
    nemesis = {
        "enabled": True,
        "kinds": ["crash", "pause"],
        "targets": ["a", "b"],
        "mean_interval_s": 0.5,
    }
    runs = []
    for _ in range(2):
        ctx, _, _ = start([], duration_s=5, nemesis=nemesis)
        ctx.env.run(until=5000)
        runs.append([(f.kind, tuple(f.nodes), f.begin_ms, f.end_ms, f.source) for f in ctx.faults])
    assert runs[0] == runs[1]
    # 5 s at one fault per 0.5 s on average: ~10 faults (P(fewer than 3) ~ 0.3%)
    assert len(runs[0]) >= 3
    assert {f[4] for f in runs[0]} == {"nemesis"}
