"""History-level invariants that hold for every model (checked after the run with invariants on).

The per-model state invariants (Kafka epochs, HW, ISR; Redis replication offsets, PELs) belong to
the models (`models/<kind>/invariants.py`, called from their `check_invariants`); the ones here
read only the history and the checker's summary, so they hold whatever the model is:

- latencies are non-negative: nothing is acknowledged or delivered before it was produced;
- the fates partition the produced ids (each id has exactly one fate, the counts add up);
- no count is negative, and the causes of each fate add up to the fate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.model import InvariantViolation

if TYPE_CHECKING:
    from simulator.context import RunContext

FATES = ("delivered", "lost", "skipped", "superseded", "failed", "indeterminate", "in_flight")
# a float32 latency is exact to well under a microsecond (history.py); allow that much rounding
TOLERANCE_MS = 1e-6


def check_latencies(ctx: RunContext) -> None:
    """Nothing is answered or delivered before it was produced (latency >= 0, NaN = never)."""
    h = ctx.history
    for label, latency in (
        ("acknowledged", h.ack_latency_ms),
        ("delivered", h.deliver_latency_ms),
    ):
        early = latency < -TOLERANCE_MS  # NaN compares False: never answered is fine
        if early.any():
            i = int(early.argmax())
            state = {"intended_ms": float(h.intended_ms[i]), "latency_ms": float(latency[i])}
            raise InvariantViolation(
                float(h.intended_ms[i] + latency[i]),
                "history",
                f"message {i} {label} before it was produced",
                state,
            )
        if np.isinf(latency).any():
            i = int(np.isinf(latency).argmax())
            raise InvariantViolation(
                ctx.env.now, "history", f"message {i} has an infinite {label} latency"
            )


def check_fates(ctx: RunContext, summary: dict[str, Any]) -> None:
    """Every produced id has exactly one fate; counts are non-negative and causes add up."""
    m = summary["messages"]
    negative = {k: v for k, v in m.items() if isinstance(v, int | float) and v < 0}
    if negative:
        raise InvariantViolation(ctx.env.now, "checker", "negative message counts", negative)
    if sum(m[f] for f in FATES) != m["produced"]:
        raise InvariantViolation(
            ctx.env.now, "checker", "fates do not partition the produced ids", m
        )
    if m["produced"] != ctx.history.n:
        state = {"summary": m["produced"], "history": ctx.history.n}
        raise InvariantViolation(ctx.env.now, "checker", "produced count != history length", state)
    for fate in ("lost", "skipped", "superseded"):
        by_cause = m.get(f"{fate}_by_cause") or {}
        if by_cause and sum(by_cause.values()) != m[fate]:
            state = {fate: m[fate], f"{fate}_by_cause": by_cause}
            raise InvariantViolation(
                ctx.env.now, "checker", f"causes of {fate} do not add up", state
            )


def check_history(ctx: RunContext, checked: Any) -> None:
    """All history-level invariants; raises InvariantViolation at the first broken one."""
    check_latencies(ctx)
    check_fates(ctx, checked.summary)
