"""The Redis event loop against queueing theory (issue 10, section 1, the Redis part).

With `per_iteration_overhead = false` every cost is charged to its command, so the single
thread is one FIFO server: Poisson arrivals (rate λ) of SETs whose cost is fixed (M/D/1) or
exponential with the same mean (M/M/1). The model's mean time before a command starts must then
be the Pollaczek-Khinchine mean wait of M/G/1,

    Wq = λ E[S²] / (2 (1 - ρ)),  ρ = λ E[S],  E[S²] = (1 + cs²) E[S]²  (cs² = 1 M/M/1, 0 M/D/1),

replies (which leave only when the whole batch of the iteration has run, in beforeSleep) must
match an independent gated-service reference, utilization must be λ E[S], and Little's law
must hold: the time-average number of requests in the server (the `event_loop_backlog` gauge,
sampled at a fixed period: an unbiased estimate of the time average) is λ x the mean time from
arrival to reply.

Tolerances are confidence intervals, not copied numbers: each configuration runs with several
seeds (independent replications), and the mean of their estimates must lie within the 99%
Student-t interval (t(0.995, n-1) x standard error) of the theoretical value. Sample sizes:
20 s x 6 seeds at ρ <= 0.8 (36k-96k commands per configuration: a few percent), and 60 s x 6
seeds at ρ = 0.95 (340k commands: ~10%; a few percent there needs millions, as the waits are
strongly correlated near saturation). Runs are seeded, so the outcome is the same every time.
"""

from __future__ import annotations

import json
import math
import statistics
from functools import cache
from typing import Any

import numpy as np
import pytest

from simulator import run

SEEDS = (1, 2, 3, 4, 5, 6)
T_995 = {5: 4.032}  # Student t quantile 0.995 for n - 1 = 5 degrees of freedom
SERVICE_MS = 1.0  # mean service time, by scaling cpu_speed


@cache
def cpu_speed_for_one_ms() -> float:
    """The cpu_speed at which one 100-byte SET costs the loop exactly SERVICE_MS."""
    from models.redis.commands import SET, CostModel
    from models.redis.config import RedisConfig

    costs = CostModel(RedisConfig(per_iteration_overhead=False))
    one = np.ones(1, dtype=bool)
    parts = costs.row_costs(np.full(1, SET, dtype=np.int8), np.full(1, 100.0), one, one)
    cost_ms = float(sum(part.sum() for part in parts))
    return cost_ms / SERVICE_MS


def loop_run(rho: float, distribution: str, seed: int, duration_s: float) -> dict[str, Any]:
    return loop_run_config(rho, seed, duration_s=duration_s, command_cost_distribution=distribution)


@cache
def loop_run_config(
    rho: float,
    seed: int,
    *,
    duration_s: float = 20.0,
    command_cost_distribution: str = "exponential",
) -> dict[str, Any]:
    spec = {
        "scenario": {"name": "theory", "duration_s": duration_s, "warmup_s": 0.0, "drain_s": 1.0},
        "system": {"kind": "redis"},
        "workload": {
            "arrival": "poisson",
            "rate_per_s": rho / SERVICE_MS * 1000.0,
            "value_bytes": 100,
            "keys": 1000,
        },
        "redis": {
            "workload": "kv",
            "save": "",
            "per_iteration_overhead": False,
            "command_cost_distribution": command_cost_distribution,
            "cpu_speed": cpu_speed_for_one_ms(),
        },
    }
    result = run(spec, seed=seed)
    series = result.timeseries
    measured = series[series["t_ms"] < duration_s * 1000.0]
    events = result.events
    row = events.loc[events["kind"] == "event_loop_stats"].iloc[0]
    stats = json.loads(row["detail"])
    stats["arrival_rate_per_ms"] = stats["commands"] / (duration_s * 1000.0)
    stats["observed_ms"] = float(row["t_ms"])  # utilization is busy time / time observed
    # requests in the server (arrived, reply not yet written), sampled at a fixed period
    stats["mean_in_server"] = float(measured["event_loop_backlog"].mean())
    stats["samples_in_server"] = len(measured)
    return stats


def estimates(rho: float, distribution: str, duration_s: float, field: str) -> list[float]:
    return [loop_run(rho, distribution, seed, duration_s)[field] for seed in SEEDS]


def within_confidence(values: list[float], expected: float) -> tuple[bool, str]:
    mean = statistics.fmean(values)
    half_width = T_995[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))
    text = f"mean {mean:.4g} ± {half_width:.3g} (99%), expected {expected:.4g}"
    return abs(mean - expected) <= half_width, text


def pollaczek_khinchine_wait_ms(rho: float, distribution: str) -> float:
    cs2 = 1.0 if distribution == "exponential" else 0.0
    return rho * (1 + cs2) * SERVICE_MS / (2 * (1 - rho))


def gated_reply_ms(rho: float, distribution: str, commands: int = 400_000, seed: int = 99) -> float:
    """Mean arrival -> reply of a gated single server, simulated independently of the model:
    at each poll it takes every command that has arrived, runs them in order, and all their
    replies leave when the last one is done; the next poll is at that moment (or at the next
    arrival if none is waiting)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(SERVICE_MS / rho, commands)).tolist()
    if distribution == "exponential":
        service = rng.exponential(SERVICE_MS, commands).tolist()
    else:
        service = [SERVICE_MS] * commands
    total, i, free_at = 0.0, 0, 0.0
    while i < commands:
        poll = max(free_at, arrivals[i])
        j = i
        end = poll
        while j < commands and arrivals[j] <= poll:
            end += service[j]
            j += 1
        for k in range(i, j):
            total += end - arrivals[k]
        free_at, i = end, j
    return total / commands


CASES = [
    (rho, distribution) for rho in (0.3, 0.5, 0.8) for distribution in ("exponential", "fixed")
]


@pytest.mark.parametrize(("rho", "distribution"), CASES)
def test_wait_before_a_command_starts_is_pollaczek_khinchine(rho: float, distribution: str) -> None:
    waits = estimates(rho, distribution, 20.0, "mean_wait_before_exec_ms")
    ok, text = within_confidence(waits, pollaczek_khinchine_wait_ms(rho, distribution))
    assert ok, text


@pytest.mark.slow
@pytest.mark.parametrize("distribution", ["exponential", "fixed"])
def test_wait_near_saturation_is_pollaczek_khinchine(distribution: str) -> None:
    waits = estimates(0.95, distribution, 60.0, "mean_wait_before_exec_ms")
    ok, text = within_confidence(waits, pollaczek_khinchine_wait_ms(0.95, distribution))
    assert ok, text


@pytest.mark.parametrize(("rho", "distribution"), [(0.5, "exponential"), (0.8, "fixed")])
def test_reply_latency_matches_a_gated_server(rho: float, distribution: str) -> None:
    replies = estimates(rho, distribution, 20.0, "mean_reply_delay_ms")
    reference = gated_reply_ms(rho, distribution)
    ok, text = within_confidence(replies, reference)
    assert ok, text
    # gating costs something: a reply waits for the rest of its batch
    wait = pollaczek_khinchine_wait_ms(rho, distribution)
    assert statistics.fmean(replies) > wait + SERVICE_MS


@pytest.mark.parametrize(("rho", "distribution"), CASES)
def test_utilization_is_arrival_rate_times_service_time(rho: float, distribution: str) -> None:
    # busy time / (commands x mean service time): 1 up to the sampling error of the services
    # (exactly 1 for fixed costs); utilization is measured over the time the stats observed
    ratios = [
        s["utilization"] * s["observed_ms"] / (s["commands"] * SERVICE_MS)
        for s in (loop_run(rho, distribution, seed, 20.0) for seed in SEEDS)
    ]
    rates = [
        s["arrival_rate_per_ms"]
        for s in (loop_run(rho, distribution, seed, 20.0) for seed in SEEDS)
    ]
    ok, text = within_confidence(ratios, 1.0)
    assert ok or abs(statistics.fmean(ratios) - 1.0) < 1e-9, text
    # ... and the arrival rate is the offered one, so utilization = λ E[S] = ρ
    ok, text = within_confidence(rates, rho / SERVICE_MS)
    assert ok, text


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_littles_law_holds_for_the_event_loop(rho: float) -> None:
    # Without per-iteration costs a request leaves the gauge when its reply leaves. (With them,
    # the gauge counts a request until its batch has executed, before beforeSleep writes the
    # replies, so it would need the arrival -> execution-end time, which the model does not
    # report.)
    ratios = []
    for seed in SEEDS:
        stats = loop_run(rho, "exponential", seed, 20.0)
        assert stats["samples_in_server"] >= 200
        little = stats["arrival_rate_per_ms"] * stats["mean_reply_delay_ms"]
        ratios.append(stats["mean_in_server"] / little)
    ok, text = within_confidence(ratios, 1.0)
    assert ok, text
