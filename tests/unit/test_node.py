"""Node lifecycle: crash interrupts processes, pause stops timers, stop is graceful, restart rebuilds."""

from __future__ import annotations

from simulator.context import RunContext
from simulator.node import CRASHED, STOPPED, UP, Node
from simulator.scenario import load_scenario


class Recorder(Node):
    def __init__(self, ctx: RunContext, name: str):
        super().__init__(ctx, name)
        self.log: list[tuple[str, float]] = []

    def ticker(self, period: float):
        while True:
            yield from self.sleep(period)
            self.log.append(("tick", self.env.now))

    def on_crash(self) -> None:
        self.log.append(("on_crash", self.env.now))

    def on_stop(self) -> None:
        self.log.append(("on_stop", self.env.now))

    def on_restart(self) -> None:
        self.log.append(("on_restart", self.env.now))
        self.spawn(self.ticker(10))


def make() -> tuple[RunContext, Recorder]:
    ctx = RunContext(load_scenario({"scenario": {"warmup_s": 0}}))
    return ctx, Recorder(ctx, "n1")


def ticks(node: Recorder) -> list[float]:
    return [t for kind, t in node.log if kind == "tick"]


def test_crash_stops_processes_and_restart_starts_them_again() -> None:
    ctx, node = make()
    node.spawn(node.ticker(10))
    ctx.env.run(until=25)
    node.crash()
    assert node.state == CRASHED
    ctx.env.run(until=60)
    assert ticks(node) == [10, 20]
    node.restart()
    assert node.state == UP
    ctx.env.run(until=81)
    assert ticks(node) == [10, 20, 70, 80]
    assert [k for k, _ in node.log if k != "tick"] == ["on_crash", "on_restart"]


def test_crash_bumps_incarnation_so_stale_callbacks_can_tell() -> None:
    _, node = make()
    before = node.incarnation
    node.crash()
    assert node.incarnation > before


def test_pause_stops_timers_for_its_duration() -> None:
    ctx, node = make()
    node.spawn(node.ticker(100))
    ctx.env.run(until=50)
    node.pause(200)  # paused from 50 to 250: the first tick moves from 100 to 300
    ctx.env.run(until=450)
    assert ticks(node) == [300, 400]


def test_pause_without_duration_lasts_until_resume() -> None:
    ctx, node = make()
    node.spawn(node.ticker(100))
    node.pause(None)
    ctx.env.run(until=500)
    assert ticks(node) == []
    node.resume()
    ctx.env.run(until=601)
    assert ticks(node) == [600]


def test_stop_is_graceful_then_restart() -> None:
    ctx, node = make()
    node.spawn(node.ticker(10))
    ctx.env.run(until=15)
    node.stop()
    assert node.state == STOPPED
    assert node.log[-1] == ("on_stop", 15)
    ctx.env.run(until=40)
    assert ticks(node) == [10]


def test_crash_of_a_crashed_node_is_a_no_op() -> None:
    ctx, node = make()
    node.crash()
    node.crash()
    assert [k for k, _ in node.log] == ["on_crash"]
    assert [e.kind for e in ctx.events] == ["crash"]


def test_named_streams_do_not_shift_when_another_stream_is_added() -> None:
    a = RunContext(load_scenario({}))
    b = RunContext(load_scenario({}))
    b.rng("something.new").random(100)
    assert a.rng("net.x").random() == b.rng("net.x").random()
