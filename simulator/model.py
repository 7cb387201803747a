"""The interface a system model implements so the runner can drive it through the run's phases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.node import Node

if TYPE_CHECKING:
    from simulator.context import FaultRecord, RunContext
    from simulator.scenario import Fault


class ModelFallback(Exception):
    """Raised by a model that plans the run in spans (a faster engine for the steady state)
    when the run leaves what it can plan: the runner runs the scenario again from the start
    with `overrides` (which select the event-by-event engine), so the result is exactly that
    engine's. `reason` goes to the result's manifest."""

    def __init__(self, reason: str, overrides: dict[str, Any]):
        # args are the constructor's: SimPy re-raises a process's exception as type(exc)(*args)
        super().__init__(reason, overrides)
        self.reason = reason
        self.overrides = overrides

    def __str__(self) -> str:
        return self.reason


class SystemModel:
    """Base class of the Redis, Kafka and queue models.

    The runner calls, in order: `build()` at the start of warm-up (create nodes, the network,
    consumers that join and settle), `start_workload()` at t = 0, fault hooks during the measured
    phase, `stop_workload()` at the end of it, then `final_phase()` (a generator run after the core
    healed the network and restarted every node) until `drained()` or the drain limit, and finally
    `final_read()`.
    """

    # which engine ran the model (the result's manifest says so when a model has two)
    engine: str | None = None

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.env = ctx.env
        self.spec = ctx.spec
        self.config: Any = ctx.spec.system_config

    # --- lifecycle ------------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def start_workload(self) -> None:
        raise NotImplementedError

    def stop_workload(self) -> None:
        """Producers stop at the end of the measured phase (open loop stops by itself)."""

    def drained(self) -> bool:
        """True when nothing more can be delivered (consumers caught up)."""
        return True

    def final_phase(self) -> Any:
        """A generator run in the final phase before the drain check (default: nothing)."""
        return None

    def final_read(self) -> None:
        """Key-value workloads: read every key and mark what is present as delivered."""

    def gauges(self) -> dict[str, float]:
        """Quantities sampled periodically into the time series (queue length, lag, ...)."""
        return {}

    def summary(self) -> dict[str, float | int | str | None]:
        """Model-specific results for `summary["model"]` (hit ratio, elections, ...)."""
        return {}

    def check_invariants(self) -> None:
        """Raise InvariantViolation if the model's state breaks a stated invariant."""

    # --- faults -------------------------------------------------------------------------
    def resolve_target(self, target: str) -> list[str]:
        """Node names a fault target means right now (roles move: `leader`, `primary`, ...)."""
        if target in self.ctx.nodes:
            return [target]
        if target == "all_servers":
            return [n.name for n in self.ctx.nodes.values() if n.role not in ("client", "consumer")]
        if target in ("a_consumer", "consumers"):
            consumers = [n.name for n in self.ctx.nodes.values() if n.role == "consumer"]
            if target == "a_consumer":
                return consumers[:1]
            return consumers
        raise ValueError(f"{type(self).__name__} cannot resolve fault target {target!r}")

    def apply_fault(self, fault: Fault, nodes: list[str]) -> bool:
        """Handle a fault specially; return False to let the core apply its default."""
        return False

    def before_fault_end(self, record: FaultRecord) -> None:
        """Called just before the core ends a fault (heal, restart, restore): catch up first."""

    def node(self, name: str) -> Node:
        return self.ctx.nodes[name]


class InvariantViolation(AssertionError):
    """A model state that must never happen (reported with time, node and state)."""

    def __init__(self, t_ms: float, node: str, what: str, state: dict[str, Any] | None = None):
        self.t_ms, self.node, self.what, self.state = t_ms, node, what, state or {}
        # args are the constructor's: SimPy re-raises a process's exception as
        # `type(exc)(*exc.args)`, and pickling (worker processes) rebuilds it the same way
        super().__init__(t_ms, node, what, self.state)

    def __str__(self) -> str:
        return (
            f"invariant violated at t={self.t_ms:.3f} ms on {self.node}: {self.what} {self.state}"
        )
