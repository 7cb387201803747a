"""The framework floor: the Kafka benchmark's workload through a model that costs nothing.

`kafka_12m` asks a model to simulate 3 messages per bare-SimPy event, checker included. Part
of every run is not the model's: generating the workload (arrival times, keys, sizes,
producers), recording each message's facts in the history (produce, ack, deliver) and the
checker that turns them into fates, statistics and time series. This benchmark measures that
part alone, so the model's share of a run can be read off and the ceiling any model could
reach is known: the same scenario (12M messages, same warm-up, drain and checker) runs through
a null system that acknowledges every message 1 ms and delivers it 2 ms after its intended
send time, in the 100 ms chunks a model pulls from the workload, in id order (as the Kafka
model hands its deliveries over). Its ratio is the best ratio a model of any speed could get.

    .venv/bin/python -m benchmarks floor_kafka_12m --reps 5
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from benchmarks.bench_kafka import spec_data as kafka_spec_data
from benchmarks.harness import benchmark

KIND = "floor"
ACK_MS = 1.0
DELIVER_MS = 2.0
CHUNK_MS = 100.0

_prepared: dict[bool, Any] = {}


def _register() -> None:
    """Register the null system (kind `floor`) in this process only; it is never installed."""
    from simulator import systems
    from simulator.model import SystemModel
    from simulator.node import Node
    from simulator.workload import make_workload

    if KIND in systems.kinds():
        return

    class FloorConfig(systems.SystemConfig):
        """No settings: the null system has no mechanism to configure."""

    class FloorModel(SystemModel):
        """Acknowledges and delivers every message after a fixed delay; nothing else."""

        def build(self) -> None:
            self.client = Node(self.ctx, "client", role="client")
            self.workload = make_workload(self.ctx.rng, self.spec.workload, self.ctx.duration_ms)

        def start_workload(self) -> None:
            self.env.process(self._arrivals())

        def _arrivals(self) -> Generator[Any, Any, None]:
            history = self.ctx.history
            while not self.workload.exhausted:
                batch = self.workload.next_batch(self.env.now + CHUNK_MS)
                if len(batch):
                    first = history.produce(batch.intended_ms, batch.keys)
                    ids = range(first, first + len(batch))
                    history.ack(ids, batch.intended_ms + ACK_MS)
                    history.deliver(ids, batch.intended_ms + DELIVER_MS)
                yield self.env.timeout(CHUNK_MS)

    systems.register(
        systems.System(KIND, FloorConfig, FloorModel, "null system of the floor benchmark")
    )


def spec_data(quick: bool = False) -> dict[str, Any]:
    """The `kafka_12m` scenario with the null system in place of Kafka."""
    data = kafka_spec_data(quick)
    data.pop("kafka")
    data["scenario"]["name"] = "floor_kafka_12m"
    data["system"] = {"kind": KIND}
    return data


def _setup(*, quick: bool = False) -> None:
    from simulator import load_scenario

    _register()
    _prepared[quick] = load_scenario(spec_data(quick))


@benchmark(
    "floor_kafka_12m",
    setup=_setup,
    description="kafka_12m's workload, history and checker through a model that costs nothing",
)
def floor_kafka_12m(*, quick: bool = False) -> dict[str, Any]:
    """One repetition: the run's own wall time (workload + history + checker), as kafka_12m."""
    from simulator import run

    if quick not in _prepared:
        _setup(quick=quick)
    start = time.perf_counter()
    result = run(_prepared[quick], seed=1)
    m = result.summary["messages"]
    if m["delivered"] != m["produced"]:
        raise RuntimeError(f"floor run lost or stranded messages: {m}")
    return {
        "messages": int(m["produced"]),
        "wall_s": float(result.manifest.get("wall_s") or time.perf_counter() - start),
        "check_s": result.manifest.get("check_s"),
        "sim_s": result.manifest.get("sim_s"),
        # what the null system did, for the test that it did nothing else
        "ack_p50_ms": result.summary["latency_ms"]["ack"]["p50"],
        "e2e_p50_ms": result.summary["latency_ms"]["end_to_end"]["p50"],
    }
