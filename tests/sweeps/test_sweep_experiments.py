"""Experiment files: validation in the scenario's words, grid x samples, reproducible draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.experiments import (
    Range,
    is_experiment_file,
    load_experiment,
    sample_ranges,
    validate_experiment,
)
from simulator.scenario import ScenarioError
from simulator.sweeps import plan_sweep

REPO = Path(__file__).resolve().parents[2]


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        validate_experiment(data).bases()
    return info.value.problems


def test_unknown_keys_and_bad_values_name_the_path_the_value_and_what_is_allowed() -> None:
    problems = problems_of(
        {
            "experiment": {"scenarios": ["queue_mm1"], "replications": 0, "colour": "red"},
            "grid": {"workload.rate_per_s": 300},
            "sample": {"points": 4, "ranges": {"queue.service_ms": {"low": 2, "hihg": 1}}},
        }
    )
    assert (
        "experiment.replications: 0 is not allowed: Input should be greater than or equal to 1"
        in problems
    )
    assert any(p.startswith("experiment.colour: unknown key (value 'red')") for p in problems)
    assert "grid.workload.rate_per_s: 300 is not allowed: Input should be a valid list" in problems
    assert any(
        p.startswith("sample.ranges.queue.service_ms.hihg: unknown key") and "low, high, log" in p
        for p in problems
    )


def test_an_inverted_range_and_a_key_in_grid_and_ranges_are_refused() -> None:
    problems = problems_of(
        {
            "experiment": {"scenarios": ["queue_mm1"]},
            "grid": {"queue.service_ms": [1.0]},
            "sample": {"points": 2, "ranges": {"queue.service_ms": {"low": 2, "high": 1}}},
        }
    )
    assert problems == [
        "sample.ranges.queue.service_ms.high: 1.0 is not allowed; allowed: high > low (2.0)"
    ]


def test_a_missing_base_scenario_is_named_with_the_builtins() -> None:
    problems = problems_of({"experiment": {"scenarios": ["queue_mm1", "no_such"]}})
    assert problems[0].startswith(
        "experiment.scenarios[1] (no_such): scenario: no file or built-in"
    )
    assert "queue_mm1" in problems[0]


def test_an_out_of_range_grid_value_fails_the_plan_naming_the_point() -> None:
    experiment = validate_experiment(
        {"experiment": {"scenarios": ["queue_mm1"]}, "grid": {"workload.rate_per_s": [100, -5]}}
    )
    with pytest.raises(ScenarioError) as info:
        plan_sweep(experiment)
    (problem,) = info.value.problems
    assert problem.startswith("queue_mm1 with workload.rate_per_s=-5: workload.rate_per_s: -5")


def test_nested_grid_tables_and_quoted_dotted_keys_mean_the_same(tmp_path: Path) -> None:
    quoted = tmp_path / "a.toml"
    quoted.write_text(
        '[experiment]\nscenarios = ["queue_mm1"]\n[grid]\n"workload.rate_per_s" = [1, 2]\n'
    )
    nested = tmp_path / "b.toml"
    nested.write_text(
        '[experiment]\nscenarios = ["queue_mm1"]\n[grid.workload]\nrate_per_s = [1, 2]\n'
    )
    assert (
        load_experiment(quoted).grid
        == load_experiment(nested).grid
        == {"workload.rate_per_s": [1, 2]}
    )
    assert is_experiment_file(quoted)
    assert not is_experiment_file(REPO / "simulator" / "scenarios" / "queue_mm1.toml")


def test_points_are_the_grid_product_times_the_samples_and_seeds_follow_replications() -> None:
    experiment = validate_experiment(
        {
            "experiment": {"scenarios": ["queue_mm1"], "replications": 3, "first_seed": 10},
            "grid": {
                "workload.rate_per_s": [100, 200],
                "queue.service": ["exponential", "deterministic"],
            },
            "sample": {
                "points": 5,
                "seed": 1,
                "ranges": {"queue.service_ms": {"low": 0.5, "high": 1}},
            },
        }
    )
    assert len(experiment.combinations()) == 2 * 2 * 5
    plan = plan_sweep(experiment)
    assert len(plan.points) == 20 * 3
    assert sorted({p.seed for p in plan.points}) == [10, 11, 12]


def test_latin_hypercube_puts_one_draw_in_every_stratum_of_every_range() -> None:
    ranges = {"a": Range(low=0, high=1), "b": Range(low=1, high=1000, log=True)}
    points = sample_ranges(ranges, 50, "lhs", seed=5)
    a = np.array([p["a"] for p in points])
    log_b = np.log10([p["b"] for p in points]) / 3  # 1..1000 in log space -> 0..1
    for unit in (a, log_b):
        assert sorted(np.floor(unit * 50).astype(int)) == list(range(50))
    assert sample_ranges(ranges, 50, "lhs", seed=5) == points  # reproducible
    assert sample_ranges(ranges, 50, "lhs", seed=6) != points


def test_random_sampling_and_integer_ranges_stay_inside_their_bounds() -> None:
    ranges = {"n": Range(low=1, high=4, integer=True), "x": Range(low=0.1, high=10, log=True)}
    points = sample_ranges(ranges, 400, "random", seed=9)
    assert {p["n"] for p in points} == {1, 2, 3, 4}
    assert all(isinstance(p["n"], int) for p in points)
    assert all(0.1 <= p["x"] <= 10 for p in points)


def test_the_example_experiments_validate() -> None:
    for path in sorted((REPO / "experiments").glob("*.toml")):
        plan = plan_sweep(path)
        assert plan.points, path


def test_list_values_can_be_swept() -> None:
    plan = plan_sweep("queue_mm1", {"scenario.tags": [["a"], ["b", "c"]]}, seeds=2)
    assert [dict(p.params)["scenario.tags"] for p in plan.points] == [
        ["a"],
        ["a"],
        ["b", "c"],
        ["b", "c"],
    ]
