"""An invariant violation reaches the user as a clear report, and the checks do catch breakage.

Regression test for the bug in docs/reliability.md ("Fixed"): a violation raised inside a SimPy
process was re-raised by SimPy as `type(exc)(*exc.args)` and became a TypeError.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest
import simpy

from simulator import load_scenario
from simulator.checker import check
from simulator.invariants import check_fates, check_history
from simulator.model import InvariantViolation
from simulator.runner import build

SMALL = {"scenario": {"duration_s": 0.5, "warmup_s": 0.1}, "workload": {"rate_per_s": 200}}


def test_a_violation_raised_in_a_simpy_process_keeps_its_report() -> None:
    env = simpy.Environment()

    def process() -> Any:
        yield env.timeout(5)
        raise InvariantViolation(env.now, "broker1", "two leaders in one epoch", {"epoch": 3})

    env.process(process())
    with pytest.raises(InvariantViolation) as caught:
        env.run()
    assert (caught.value.t_ms, caught.value.node, caught.value.state) == (
        5,
        "broker1",
        {"epoch": 3},
    )
    assert "t=5.000 ms on broker1: two leaders in one epoch" in str(caught.value)


def test_a_violation_survives_pickling_to_a_worker() -> None:
    original = InvariantViolation(1.0, "redis", "replica offset beyond its master's", {"x": 1})
    copied = pickle.loads(pickle.dumps(original))
    assert (copied.t_ms, copied.node, copied.what, copied.state) == (
        1.0,
        "redis",
        original.what,
        {"x": 1},
    )


def _finished_run() -> tuple[Any, Any]:
    ctx, model = build(load_scenario(SMALL), seed=3, check_invariants=True)
    model.start_workload()
    ctx.env.run(until=500)
    model.stop_workload()
    ctx.env.run(until=2000)
    model.final_read()
    ctx.end_ms = ctx.env.now
    return ctx, check(ctx)


def test_the_history_checks_pass_on_a_real_run_and_catch_a_lost_fate() -> None:
    ctx, checked = _finished_run()
    check_history(ctx, checked)
    broken = copy.deepcopy(checked.summary)
    broken["messages"]["delivered"] -= 1
    with pytest.raises(InvariantViolation, match="fates do not partition"):
        check_fates(ctx, broken)


def test_the_history_checks_catch_a_delivery_before_production() -> None:
    ctx, checked = _finished_run()
    h = ctx.history
    delivered = np.flatnonzero(h.deliveries > 0)
    assert delivered.size
    h._deliver_lat[delivered[0]] = -1.0
    with pytest.raises(InvariantViolation, match="delivered before it was produced"):
        check_history(ctx, checked)
