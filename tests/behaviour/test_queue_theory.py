"""The reference FIFO station against queueing theory (M/M/1 and M/D/1).

Each case runs 5 independent seeds and forms a 99% confidence interval of the mean time in
system from the spread across seeds (t quantile with 4 degrees of freedom: 4.604). The test
asserts both that theory lies inside the interval and that the interval is narrow (half-width
under 3% of the theory), so it can neither pass on noise nor fail on bad luck more than ~1% of
the time. ~30k customers per seed at utilization 0.5 give about +-1.5% per seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator import load_scenario, run

T99_DF4 = 4.604


def mean_time_in_system(service: str, rho: float, seeds: range, duration_s: float) -> np.ndarray:
    service_ms = 1.0
    rate = rho / service_ms * 1000.0
    spec = load_scenario(
        {
            "scenario": {"duration_s": duration_s, "warmup_s": 0},
            "workload": {"rate_per_s": rate},
            "queue": {"service": service, "service_ms": service_ms},
        }
    )
    return np.array([run(spec, seed=s).summary["latency_ms"]["ack"]["mean"] for s in seeds])


@pytest.mark.parametrize(
    ("service", "rho", "theory_ms"),
    [
        ("exponential", 0.5, 1.0 / (1.0 - 0.5)),  # M/M/1: W = S / (1 - rho)
        ("deterministic", 0.5, 1.0 + 0.5 * 1.0 / (2 * (1 - 0.5))),  # M/D/1 (Pollaczek-Khinchine)
        ("deterministic", 0.7, 1.0 + 0.7 * 1.0 / (2 * (1 - 0.7))),
    ],
)
def test_mean_time_in_system_matches_theory(service: str, rho: float, theory_ms: float) -> None:
    duration = 60.0 if rho < 0.6 else 120.0
    means = mean_time_in_system(service, rho, range(1, 6), duration)
    half_width = T99_DF4 * means.std(ddof=1) / np.sqrt(means.size)
    assert half_width < 0.03 * theory_ms, f"interval too wide: {half_width:.4f} ms"
    assert abs(means.mean() - theory_ms) <= half_width, (means, theory_ms)


def test_latency_grows_with_utilization() -> None:
    low = mean_time_in_system("exponential", 0.3, range(1, 2), 20.0)[0]
    high = mean_time_in_system("exponential", 0.8, range(1, 2), 20.0)[0]
    # theory: 1.43 ms vs 5 ms; even a noisy single run keeps the order by far
    assert high > 2 * low


def test_a_crashed_station_answers_nothing_until_restart() -> None:
    spec = load_scenario(
        {
            "scenario": {"duration_s": 4, "warmup_s": 0},
            "workload": {"rate_per_s": 500},
            "faults": [{"at_s": 1, "kind": "crash", "target": "server", "duration_s": 1}],
        }
    )
    result = run(spec)
    m = result.summary["messages"]
    assert m["indeterminate"] > 0  # requests queued at the crash never got an answer
    fault = result.summary["faults"][0]
    # the first write after the crash is answered only after the restart, ~1 s later
    assert fault["first_write_ms"] >= 1000.0
    assert (
        sum(
            m[k]
            for k in (
                "delivered",
                "lost",
                "skipped",
                "superseded",
                "failed",
                "indeterminate",
                "in_flight",
            )
        )
        == m["produced"]
    )


def test_closed_loop_clients_obey_the_interactive_response_time_law() -> None:
    # N clients, think time Z, response time R: throughput X = N / (R + Z) (Little's law applied
    # to the whole loop). Both X and R are measured, so the law must hold to within the noise
    # of the end effects (~1% with ~20k requests).
    spec = load_scenario(
        {
            "scenario": {"duration_s": 20, "warmup_s": 0},
            "workload": {"mode": "closed", "clients": 4, "think_time_ms": 5.0},
            "queue": {"service_ms": 1.0},
        }
    )
    result = run(spec)
    x_per_ms = result.summary["throughput"]["acked_per_s"] / 1000.0
    r_ms = result.summary["latency_ms"]["ack"]["mean"]
    assert x_per_ms * (r_ms + 5.0) == pytest.approx(4, rel=0.03)
    assert result.summary["messages"]["in_flight"] == 0
