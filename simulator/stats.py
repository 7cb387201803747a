"""Replication statistics: mean and Student-t confidence interval across seeds, per sweep point.

Each seed of a point is one independent replication, so its metric values are i.i.d. samples and
the interval is `mean +- t(1 - alpha/2, n - 1) * s / sqrt(n)` (Law & Kelton, "Simulation Modeling
and Analysis", section 9.4.1). The t quantile is computed here from the regularized incomplete
beta function (Numerical Recipes' continued fraction), so the core needs no SciPy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

ID_COLUMNS = ("scenario", "system")
NOT_METRICS = ("seed", "wall_s", "run")
STAT_COLUMNS = ("metric", "n", "failed", "mean", "std", "ci_low", "ci_high", "half_width")


# Student t ---------------------------------------------------------------------------------
def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # the fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (e.g. t_quantile(0.975, 9) = 2.262)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: {p} is not allowed; allowed: 0 < p < 1")
    if df <= 0:
        raise ValueError(f"df: {df} is not allowed; allowed: df > 0")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    high = 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    low = 0.0
    for _ in range(200):  # bisection: the CDF is monotone, 200 halvings reach float precision
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * high:
            break
    return 0.5 * (low + high)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: {confidence} is not allowed; allowed: 0 < confidence < 1")


# one sample --------------------------------------------------------------------------------
def mean_ci(samples: Iterable[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, standard deviation and two-sided t interval of i.i.d. replications (NaNs ignored).

    With one finite sample the interval is NaN (unknown), with none everything is NaN.
    """
    _check_confidence(confidence)
    values = np.asarray(list(samples), dtype=float)
    values = values[np.isfinite(values)]
    n = int(values.size)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "half_width": half,
    }


def replications_needed(
    samples: Iterable[float], rel_precision: float, confidence: float = 0.95
) -> int:
    """Total replications whose t interval half-width is within `rel_precision` x |mean|.

    `samples` are pilot replications (at least 2); their mean and variance stand in for the true
    ones (Law & Kelton's sequential estimate, section 9.4.1), so the answer is an estimate: run
    that many, then check the interval again. Zero variance needs no more than 2.
    """
    _check_confidence(confidence)
    if not rel_precision > 0:
        raise ValueError(f"rel_precision: {rel_precision} is not allowed; allowed: > 0")
    values = np.asarray(list(samples), dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError(f"samples: {values.size} finite pilot values; allowed: at least 2")
    mean, std = float(values.mean()), float(values.std(ddof=1))
    if std == 0.0:
        return 2
    if mean == 0.0:
        raise ValueError(
            "samples: their mean is 0, so a relative precision is undefined; allowed: a metric "
            "whose mean is not 0 (use an absolute half-width instead)"
        )
    target = rel_precision * abs(mean)
    z = t_quantile(0.5 + confidence / 2.0, 1e9)
    # the normal approximation is a lower bound; walk up until the t interval is narrow enough
    n = max(2, math.floor((z * std / target) ** 2))
    while t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n) > target:
        n += 1 if n < 1000 else max(1, n // 1000)
    return n


# a sweep table -----------------------------------------------------------------------------
def parameter_columns(table: pd.DataFrame) -> list[str]:
    """The `param.*` columns of a sweep table."""
    return [c for c in table.columns if c.startswith("param.")]


def point_columns(table: pd.DataFrame) -> list[str]:
    """Columns that identify a point (everything but the seed): parameters, scenario, system."""
    return parameter_columns(table) + [c for c in ID_COLUMNS if c in table.columns]


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric result columns of a sweep table (not parameters, seed, wall time)."""
    skip = set(point_columns(table)) | set(NOT_METRICS)
    return [
        c
        for c in table.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]


def point_stats(
    table: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    by: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per point and metric: n, failed runs, mean, std and t confidence interval.

    A point is a combination of the `by` columns (default: parameters, scenario, system). Runs
    that failed (non-empty `error`) are left out of the statistics and counted in `failed`.
    """
    _check_confidence(confidence)
    by = list(point_columns(table) if by is None else by)
    metrics = list(metric_columns(table) if metrics is None else metrics)
    missing = [m for m in metrics if m not in table.columns]
    if missing:
        raise KeyError(f"no such metric column(s): {', '.join(missing)}")
    if table.empty or not metrics:
        return pd.DataFrame(columns=[*by, *STAT_COLUMNS])
    work = table.assign(_all=0)
    keys = by or ["_all"]
    errors = work["error"].fillna("").astype(str) if "error" in work else pd.Series("", work.index)
    failed = (errors != "").groupby([work[k] for k in keys], dropna=False, sort=False).sum()
    ok = work.loc[errors == ""]
    values = ok[metrics].apply(pd.to_numeric, errors="coerce")
    grouped = values.groupby([ok[k] for k in keys], dropna=False, sort=False)
    counts, means, stds = grouped.count(), grouped.mean(), grouped.std(ddof=1)
    index = failed.index  # every point, also those whose runs all failed
    frames = []
    for metric in metrics:
        n = counts[metric].reindex(index).fillna(0).astype(int)
        part = pd.DataFrame({"metric": metric, "n": n, "failed": failed.astype(int)}, index=index)
        part["mean"] = means[metric].reindex(index)
        part["std"] = stds[metric].reindex(index)
        t = [t_quantile(0.5 + confidence / 2.0, k - 1) if k > 1 else math.nan for k in n]
        part["half_width"] = np.asarray(t, dtype=float) * part["std"] / np.sqrt(n.where(n > 0))
        part["ci_low"] = part["mean"] - part["half_width"]
        part["ci_high"] = part["mean"] + part["half_width"]
        frames.append(part.reset_index())
    out = pd.concat(frames, ignore_index=True)
    return out[[*by, *STAT_COLUMNS]]


def wide(stats: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Point stats as one row per point, one `mean ± half-width` text column per metric."""
    by = [c for c in stats.columns if c not in STAT_COLUMNS]
    rows: dict[tuple[object, ...], dict[str, object]] = {}
    for record in stats.to_dict("records"):
        # NaN != NaN: a parameter absent from a point (another system's key) groups as None
        point = tuple(None if _is_nan(record[c]) else record[c] for c in by)
        row = rows.setdefault(point, {**dict(zip(by, point, strict=True)), "runs": 0})
        runs = int(record["n"]) + int(record["failed"])
        row["runs"] = max(runs, int(str(row["runs"])))
        mean, half = record["mean"], record["half_width"]
        if pd.isna(mean):
            row[record["metric"]] = "–"
        elif pd.isna(half):
            row[record["metric"]] = f"{mean:.{digits}g}"
        else:
            row[record["metric"]] = f"{mean:.{digits}g} ± {half:.2g}"
    return pd.DataFrame(list(rows.values()))
