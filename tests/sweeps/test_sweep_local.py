"""Sweeps on the local backend: tidy table, theory inside the intervals, resume, keep, failures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import SMALL

from simulator import load_scenario, sweep
from simulator import sweeps as sweep_module
from simulator.results import Result
from simulator.stats import point_stats


def test_table_has_one_row_per_run_with_parameters_ids_summary_and_timing() -> None:
    spec = load_scenario("queue_mm1", SMALL)
    table = sweep(spec, {"workload.rate_per_s": [200, 400]}, seeds=[7, 8], workers=1)
    assert list(table.columns[:4]) == ["param.workload.rate_per_s", "scenario", "system", "seed"]
    assert list(table.columns[-3:]) == ["run", "wall_s", "error"]
    assert list(table["param.workload.rate_per_s"]) == [200, 200, 400, 400]
    assert list(table["seed"]) == [7, 8, 7, 8]
    assert set(table["scenario"]) == {"queue_mm1"} and set(table["system"]) == {"queue"}
    assert (table["error"] == "").all() and (table["wall_s"] > 0).all()
    assert table["run"].is_unique
    assert {"messages.produced", "latency_ms.ack.p99", "messages.lost"} <= set(table.columns)


def test_mm1_mean_time_in_system_lies_inside_the_interval_across_seeds() -> None:
    # W = S / (1 - rho) with S = 1 ms. 6 seeds x 20 s give a 99% half-width of about 6% of W at
    # rho = 0.6 (12k customers per seed; the waits are autocorrelated, so the variance of their
    # mean is ~90 S^2 / n); asserting that the interval is under 10% keeps the test from passing
    # on noise, and the seeds are fixed.
    spec = load_scenario("queue_mm1", ["scenario.duration_s=20", "scenario.warmup_s=0"])
    table = sweep(spec, {"workload.rate_per_s": [300, 600]}, seeds=6, workers=1)
    stats = point_stats(table, ["latency_ms.ack.mean"], confidence=0.99)
    for _, row in stats.iterrows():
        rho = row["param.workload.rate_per_s"] / 1000.0
        theory = 1.0 / (1.0 - rho)
        assert row["n"] == 6
        assert row["half_width"] < 0.10 * theory
        assert row["ci_low"] <= theory <= row["ci_high"], (row.to_dict(), theory)


def test_resume_reruns_only_missing_and_optionally_failed_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.runner import run

    spec = load_scenario("queue_mm1", SMALL)
    calls: list[int] = []

    def flaky(spec, seed=None, **_):
        calls.append(seed)
        if seed == 2 and broken:
            raise RuntimeError("boom")
        return run(spec, seed=seed)

    monkeypatch.setattr("simulator.runner.run", flaky)
    broken = True
    first = sweep(spec, {}, seeds=3, out=tmp_path, workers=1)
    assert list(first["error"].str.split(":").str[0]) == ["", "RuntimeError", ""]
    assert calls == [1, 2, 3]

    calls.clear()
    broken = False
    again = sweep(spec, {}, seeds=3, out=tmp_path, workers=1)
    assert calls == [] and again["error"].iloc[1].startswith("RuntimeError: boom")

    retried = sweep(spec, {}, seeds=3, out=tmp_path, workers=1, retry_failed=True)
    assert calls == [2] and (retried["error"] == "").all()
    # the failed row made the first table's counts float (NaN); the values are the same
    pd.testing.assert_frame_equal(
        retried.drop(columns="wall_s").iloc[[0, 2]],
        first.drop(columns="wall_s").iloc[[0, 2]],
        check_dtype=False,
    )


def test_keep_all_saves_each_run_as_a_loadable_result(tmp_path: Path) -> None:
    spec = load_scenario("queue_mm1", SMALL)
    table = sweep(spec, {"workload.rate_per_s": [200, 400]}, out=tmp_path, workers=2, keep="all")
    for run_id, produced in zip(table["run"], table["messages.produced"], strict=True):
        result = Result.load(tmp_path / "results" / run_id)
        assert result.summary["messages"]["produced"] == produced
        assert result.messages is not None and len(result.messages) == produced
        assert len(result.timeseries) > 0


def test_keep_without_an_output_directory_is_refused() -> None:
    from simulator.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="needs an output directory"):
        sweep(load_scenario("queue_mm1", SMALL), keep="tables")


def test_a_second_system_sweeps_its_own_keys_only(second_system: str, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(
        f'[scenario]\nname = "other"\nduration_s = 2\nwarmup_s = 0\ndrain_s = 1\n'
        f'[system]\nkind = "{second_system}"\n'
    )
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        '[experiment]\nscenarios = ["queue_mm1", "other.toml"]\nset = ["scenario.duration_s=2"]\n'
        "replications = 2\n"
        '[grid]\n"workload.rate_per_s" = [200, 400]\n"queue.servers" = [1, 2]\n'
    )
    table = sweep(experiment, workers=1, out=tmp_path / "out")
    per_system = table.groupby("system").size().to_dict()
    # the queue base runs rate x servers x seeds, the other only rate x seeds
    assert per_system == {"queue": 8, second_system: 4}
    other_rows = table[table["system"] == second_system]
    assert other_rows["param.queue.servers"].isna().all()
    assert (table["error"] == "").all()


def test_the_old_signature_still_works(tmp_path: Path) -> None:
    table = sweep_module.sweep(
        load_scenario("queue_mm1", SMALL), {"queue.service_ms": [0.5]}, 2, out=tmp_path, workers=1
    )
    assert len(table) == 2 and pd.read_parquet(tmp_path / "results.parquet").shape == table.shape
