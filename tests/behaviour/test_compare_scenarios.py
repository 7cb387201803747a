"""Every built-in comparison holds its cross-variant claims at CI size, and means what it says."""

from __future__ import annotations

import pytest

from models.kafka.config import KafkaConfig
from models.redis.config import RedisConfig
from simulator import load_scenario
from simulator.compare import compare
from simulator.scenario import builtin_names

FATES = ("delivered", "lost", "skipped", "superseded", "failed", "indeterminate", "in_flight")


def _with_variants() -> list[str]:
    return [n for n in builtin_names() if load_scenario(n).compare.variants]


def test_the_side_by_side_library_covers_the_debate() -> None:
    names = set(_with_variants())
    for needed in (
        "compare_primary_crash",
        "compare_stream_failover",
        "compare_power_loss",
        "compare_latency",
        "compare_burst",
        "compare_subscriber_offline",
        "compare_scaling",
    ):
        assert needed in names


@pytest.mark.parametrize("name", _with_variants())
def test_comparison_holds_its_claims_at_ci_size(name: str) -> None:
    spec = load_scenario(name, ci=True)
    assert spec.compare.expect, f"{name}: a comparison states cross-variant claims"
    assert all(v.description for v in spec.compare.variants), f"{name}: describe every variant"
    outcome = compare(spec)
    for label, result in outcome.results.items():
        m = result.summary["messages"]
        assert sum(m[f] for f in FATES) == m["produced"] > 0, label
    failed = [e for e in outcome.expectations if not e["held"]]
    assert not failed, f"{name}: claims not held: {failed}"


@pytest.mark.parametrize("name", [n for n in builtin_names() if n.startswith("compare_")])
def test_a_comparison_pits_systems_under_one_fault_schedule(name: str) -> None:
    """The variants differ in system or configuration; the faults use roles every model knows."""
    spec = load_scenario(name, ci=True)
    kinds = {
        (load_scenario(spec.to_dict() | {"compare": {}}, v.set)).system.kind
        for v in spec.compare.variants
    }
    assert kinds == {"redis", "kafka"}, f"{name}: a side-by-side compares Redis and Kafka"
    # the roles both models resolve (primary/leader, followers/replicas, all_servers, ...)
    neutral = {""} | set(KafkaConfig().roles()) & set(RedisConfig().roles())
    for fault in spec.faults:
        roles = [fault.target, *(m for g in fault.groups for m in g)]
        assert all(r in neutral for r in roles), (roles, sorted(neutral))
