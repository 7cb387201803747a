"""Confidence intervals across seeds and the replications a precision needs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simulator.stats import mean_ci, point_stats, replications_needed, t_quantile, wide

# Student t quantiles from the printed tables (Abramowitz & Stegun 26.10), 4 decimals.
T_TABLE = [
    (0.975, 1, 12.7062),
    (0.975, 2, 4.3027),
    (0.975, 4, 2.7764),
    (0.995, 4, 4.6041),
    (0.975, 9, 2.2622),
    (0.995, 9, 3.2498),
    (0.95, 20, 1.7247),
    (0.975, 29, 2.0452),
    (0.975, 120, 1.9799),
]


@pytest.mark.parametrize(("p", "df", "expected"), T_TABLE)
def test_t_quantile_matches_the_printed_table(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-5)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=5e-5)


def test_t_quantile_tends_to_the_normal_quantile() -> None:
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)


def test_interval_covers_the_true_mean_about_as_often_as_promised() -> None:
    # 4000 intervals of 5 normal samples: coverage has a binomial sd of
    # sqrt(0.95 * 0.05 / 4000) = 0.0034, so +-0.012 is 3.5 sd (and the seed is fixed).
    rng = np.random.default_rng(11)
    samples = rng.normal(10.0, 3.0, size=(4000, 5))
    covered = 0
    for row in samples:
        ci = mean_ci(row, 0.95)
        covered += ci["ci_low"] <= 10.0 <= ci["ci_high"]
    assert abs(covered / 4000 - 0.95) < 0.012


def test_mean_ci_ignores_nan_and_reports_unknown_width_for_one_sample() -> None:
    ci = mean_ci([2.0, float("nan"), 4.0])
    assert ci["n"] == 2 and ci["mean"] == 3.0
    assert ci["half_width"] == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), abs=1e-3)
    one = mean_ci([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["half_width"])


def test_replications_needed_is_the_smallest_n_that_reaches_the_precision() -> None:
    pilot = np.random.default_rng(3).normal(100.0, 10.0, size=10)
    mean, std = pilot.mean(), pilot.std(ddof=1)
    n = replications_needed(pilot, 0.02)

    def half(k: int) -> float:
        return t_quantile(0.975, k - 1) * std / math.sqrt(k)

    assert half(n) <= 0.02 * mean < half(n - 1)
    # for large n the t quantile is close to 1.96: n ~ (1.96 s / (0.02 mean))^2
    assert n == pytest.approx((1.96 * std / (0.02 * mean)) ** 2, rel=0.05)
    assert replications_needed(pilot, 2.0) == 2  # t(0.975, 1) = 12.7: 2 runs, +-156 < 197
    assert replications_needed([3.0, 3.0, 3.0], 0.01) == 2


def test_replications_needed_refuses_what_it_cannot_answer() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        replications_needed([1.0], 0.1)
    with pytest.raises(ValueError, match="mean is 0"):
        replications_needed([-1.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="rel_precision"):
        replications_needed([1.0, 2.0], 0)


def test_point_stats_groups_by_parameters_and_leaves_failed_runs_out() -> None:
    table = pd.DataFrame(
        {
            "param.rate": [1, 1, 1, 2, 2, 2],
            "scenario": "q",
            "system": "queue",
            "seed": [1, 2, 3, 1, 2, 3],
            "latency": [1.0, 2.0, 3.0, 10.0, 12.0, float("nan")],
            "error": ["", "", "", "", "", "RuntimeError: boom"],
            "wall_s": 0.1,
        }
    )
    stats = point_stats(table)
    assert list(stats["metric"]) == ["latency", "latency"]  # not seed, not wall_s
    first, second = stats.iloc[0], stats.iloc[1]
    assert (first["n"], first["failed"], first["mean"]) == (3, 0, 2.0)
    assert first["half_width"] == pytest.approx(4.3027 * 1.0 / math.sqrt(3), abs=1e-3)
    assert (second["n"], second["failed"], second["mean"]) == (2, 1, 11.0)
    text = wide(stats)
    assert list(text["runs"]) == [3, 3]
    assert text.loc[0, "latency"] == "2 ± 2.5"
