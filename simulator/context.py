"""One run: the SimPy environment (milliseconds), named seeded random streams, the recorders."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from simulator.history import History

if TYPE_CHECKING:
    from simulator.disk import Disk
    from simulator.network import Network
    from simulator.node import Node
    from simulator.scenario import ScenarioBase


def stream_key(name: str) -> int:
    """A stable 64-bit integer for a stream name (never Python's per-process `hash()`)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


@dataclass
class Event:
    """Something that happened at one moment (fault, election, failover, snapshot, ...)."""

    t_ms: float
    kind: str
    node: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class FaultRecord:
    """One injected fault: what, on which nodes, from when to when (None = until the final heal)."""

    index: int
    kind: str
    target: str
    nodes: list[str]
    begin_ms: float
    end_ms: float | None = None
    source: str = "schedule"  # "schedule" or "nemesis"
    duration_ms: float | None = None  # as scheduled; None: until a heal, a restart or the end


class RunContext:
    """Everything one run shares: clock, randomness, recorders, topology, disks, nodes.

    Time is in milliseconds. The measured phase starts at t = 0; warm-up runs at negative times
    (the environment starts at -warmup_ms) and the final phase after `duration_ms`.
    """

    def __init__(self, spec: ScenarioBase, seed: int | None = None, check_invariants: bool = False):
        self.spec = spec
        self.seed = int(spec.scenario.seed if seed is None else seed)
        self.warmup_ms = spec.scenario.warmup_s * 1000.0
        self.duration_ms = spec.scenario.duration_s * 1000.0
        self.env = simpy.Environment(initial_time=-self.warmup_ms)
        self.history = History(n_keys=spec.workload.keys)
        self.events: list[Event] = []
        self.faults: list[FaultRecord] = []
        # gauges: name -> (times, values) appended by samplers and models
        self.gauges: dict[str, tuple[list[float], list[float]]] = {}
        self.nodes: dict[str, Node] = {}
        self.disks: dict[str, Disk] = {}
        self.network: Network | None = None
        self.check_invariants = check_invariants
        self.phase = "warmup"
        self.end_ms = self.duration_ms
        self._streams: dict[str, np.random.Generator] = {}

    @property
    def now(self) -> float:
        return self.env.now

    def rng(self, name: str) -> np.random.Generator:
        """The random stream named `name`, derived from the root seed and the name only."""
        gen = self._streams.get(name)
        if gen is None:
            seq = np.random.SeedSequence(entropy=[self.seed, stream_key(name)])
            gen = self._streams[name] = np.random.Generator(np.random.PCG64(seq))
        return gen

    def event(self, kind: str, node: str = "", t_ms: float | None = None, **detail: Any) -> None:
        """Record an event (shown on timelines, used for detection and recovery times).

        `t_ms` records an event known only after it happened (a model that advances in spans);
        the log stays in time order.
        """
        t = float(self.env.now if t_ms is None else t_ms)
        item = Event(t, kind, node, detail)
        if not self.events or self.events[-1].t_ms <= t:
            self.events.append(item)
        else:
            bisect.insort_right(self.events, item, key=lambda e: e.t_ms)

    def gauge(self, name: str, value: float, t_ms: float | None = None) -> None:
        """Record one sample of a time-varying quantity (queue length, lag, ISR size, ...)."""
        times, values = self.gauges.setdefault(name, ([], []))
        times.append(float(self.env.now if t_ms is None else t_ms))
        values.append(float(value))

    def add_node(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise ValueError(f"duplicate node name {node.name!r}")
        self.nodes[node.name] = node
        return node
