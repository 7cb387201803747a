"""The fault schedule ("nemesis"): fires each fault at its time, resolves its target, records it.

The core applies faults to nodes and the network; a model may take over any fault through
`SystemModel.apply_fault` (a Kafka broker that is paused misses heartbeats, a Redis master that
is partitioned keeps accepting writes, ...). Every fault is recorded with its begin and end in
`ctx.faults` for the checker's recovery times.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from simulator.context import FaultRecord
from simulator.node import Node
from simulator.scenario import Fault

if TYPE_CHECKING:
    from simulator.context import RunContext
    from simulator.model import SystemModel

NODE_DOWN_KINDS = ("crash", "power_loss", "stop", "consumer_crash")


def _each(action: Callable[[Any], object], items: Iterable[Any]) -> Callable[[], None]:
    """A callable that applies `action` to every item (the undo of a fault)."""
    frozen = list(items)

    def undo() -> None:
        for item in frozen:
            action(item)

    return undo


class FaultInjector:
    """Runs the scenario's `[[faults]]` and the random nemesis against one model."""

    def __init__(self, ctx: RunContext, model: SystemModel):
        self.ctx = ctx
        self.model = model
        self._undo: dict[int, Callable[[], None]] = {}  # fault index -> what ends it

    def start(self) -> None:
        """Schedule every fault of the spec (the measured phase starts at t = 0)."""
        for fault in self.ctx.spec.faults:
            self.ctx.env.process(self._at(fault, "schedule"))
        if self.ctx.spec.nemesis.enabled:
            self.ctx.env.process(self._nemesis())

    def _at(self, fault: Fault, source: str) -> Generator[Any, Any, None]:
        delay = fault.at_s * 1000.0 - self.ctx.env.now
        if delay > 0:
            yield self.ctx.env.timeout(delay)
        if self.ctx.phase != "measured":
            return
        self.inject(fault, source)

    def _nemesis(self) -> Generator[Any, Any, None]:
        spec = self.ctx.spec.nemesis
        rng = self.ctx.rng("nemesis")
        env = self.ctx.env
        while True:
            yield env.timeout(float(rng.exponential(spec.mean_interval_s * 1000.0)))
            if self.ctx.phase != "measured":
                return
            kind = spec.kinds[int(rng.integers(len(spec.kinds)))]
            target = spec.targets[int(rng.integers(len(spec.targets)))]
            duration_s = float(rng.exponential(spec.mean_duration_s))
            fault = Fault(
                at_s=max(0.0, env.now / 1000.0),
                kind=kind,
                target=target,
                duration_s=max(duration_s, 0.001),
            )
            self.inject(fault, "nemesis")

    # --- applying ---------------------------------------------------------------------
    def inject(self, fault: Fault, source: str = "schedule") -> FaultRecord:
        ctx = self.ctx
        nodes = self._resolve(fault)
        duration_ms = None if fault.duration_s is None else fault.duration_s * 1000.0
        record = FaultRecord(
            len(ctx.faults), fault.kind, fault.target, nodes, ctx.env.now, None, source, duration_ms
        )
        ctx.faults.append(record)
        ctx.event(
            "fault", ",".join(nodes), fault=fault.kind, index=record.index, target=fault.target
        )
        if not self.model.apply_fault(fault, nodes):
            self._apply_default(fault, nodes, record)
        if fault.duration_s is not None and fault.kind not in ("heal", "restart"):
            timer = ctx.env.timeout(fault.duration_s * 1000.0)
            timer.callbacks.append(lambda _ev: self.end(record))
        elif fault.kind in ("heal", "restart"):
            record.end_ms = ctx.env.now
        return record

    def _resolve(self, fault: Fault) -> list[str]:
        names: list[str] = []
        if fault.target:
            names.extend(self.model.resolve_target(fault.target))
        for group in fault.groups:
            for member in group:
                names.extend(self.model.resolve_target(member))
        return list(dict.fromkeys(names))

    def _apply_default(self, fault: Fault, nodes: list[str], record: FaultRecord) -> None:
        ctx = self.ctx
        net = ctx.network
        kind = fault.kind
        targets: list[Node] = [ctx.nodes[n] for n in nodes if n in ctx.nodes]
        if kind in ("crash", "consumer_crash"):
            for node in targets:
                node.crash()
            self._undo[record.index] = _each(lambda n: n.restart(), targets)
        elif kind == "power_loss":
            for node in targets:
                node.power_loss()
            self._undo[record.index] = _each(lambda n: n.restart(), targets)
        elif kind == "stop":
            for node in targets:
                node.stop()
            self._undo[record.index] = _each(lambda n: n.restart(), targets)
        elif kind == "restart":
            for node in targets:
                if node.is_running:
                    node.stop()
                node.restart()
        elif kind == "pause":
            duration = None if fault.duration_s is None else fault.duration_s * 1000.0
            for node in targets:
                node.pause(duration)
            self._undo[record.index] = _each(lambda n: n.resume(), targets)
        elif kind == "slow_consumer":
            for node in targets:
                node.slowdown = fault.factor
            self._undo[record.index] = _each(lambda n: setattr(n, "slowdown", 1.0), targets)
        elif kind == "slow_disk":
            disks = [d for n in targets for d in n.disks]
            for disk in disks:
                disk.slow(fault.factor)
            self._undo[record.index] = _each(lambda d: d.restore(), disks)
        elif kind == "partition":
            assert net is not None
            if fault.groups:
                groups = [
                    list(dict.fromkeys(n for m in g for n in self.model.resolve_target(m)))
                    for g in fault.groups
                ]
                cut = net.partition(groups)
            else:
                cut_ids = [net.isolate(n, one_way=fault.one_way) for n in nodes]
                self._undo[record.index] = _each(net.heal, cut_ids)
                return
            self._undo[record.index] = _each(net.heal, [cut])
        elif kind == "heal":
            assert net is not None
            net.heal()
            for other in ctx.faults:
                if other.kind == "partition" and other.end_ms is None:
                    other.end_ms = ctx.env.now
                    self._undo.pop(other.index, None)
        elif kind == "delay":
            assert net is not None
            for n in nodes:
                net.set_delay(n, fault.delay_ms)
            self._undo[record.index] = _each(net.clear_delay, nodes)
        elif kind == "packet_loss":
            assert net is not None
            for n in nodes:
                net.set_loss(n, fault.loss_probability)
            self._undo[record.index] = _each(net.clear_loss, nodes)

    def end(self, record: FaultRecord) -> None:
        """End a fault (its duration passed, or the final phase heals everything)."""
        if record.end_ms is not None:
            return
        self.model.before_fault_end(record)
        record.end_ms = self.ctx.env.now
        undo = self._undo.pop(record.index, None)
        if undo is not None:
            undo()
        self.ctx.event("fault_end", ",".join(record.nodes), fault=record.kind, index=record.index)

    def end_all(self) -> None:
        """Final phase: heal every partition, end every fault, restart every stopped node."""
        for record in self.ctx.faults:
            self.end(record)
        if self.ctx.network is not None:
            self.ctx.network.heal()
        for node in self.ctx.nodes.values():
            node.slowdown = 1.0
            if node.is_paused:
                node.resume()
            if not node.is_running:
                node.restart()
        for disk in self.ctx.disks.values():
            disk.restore()
