"""Every built-in scenario runs at its CI size; its stated expectations hold; fates add up."""

from __future__ import annotations

import pytest

from simulator import load_scenario, run
from simulator.scenario import builtin_names

FATES = ("delivered", "lost", "skipped", "superseded", "failed", "indeterminate", "in_flight")


def test_the_library_is_not_empty() -> None:
    assert builtin_names()


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenario_holds_its_claims_at_ci_size(name: str) -> None:
    spec = load_scenario(name, ci=True)
    assert spec.scenario.description, f"{name}: every scenario needs a one-line description"
    assert spec.expect, f"{name}: every scenario states at least one checkable expectation"
    result = run(spec, check_invariants=True)
    m = result.summary["messages"]
    assert sum(m[f] for f in FATES) == m["produced"]
    assert m["produced"] > 0
    failed = [e for e in result.expectations if not e["held"]]
    assert not failed, f"{name}: expectations not held: {failed}"
