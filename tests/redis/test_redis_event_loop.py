"""The single-threaded event loop against queueing theory, and its visible consequences."""

from __future__ import annotations

import numpy as np
import pytest
from redis_support import loop_stats, run_redis, spec

from models.redis.commands import SET, CostModel
from models.redis.config import RedisConfig

VALUE_BYTES = 100


def service_ms(config: dict) -> float:
    """The model's own cost of one SET when every cost is charged to the command."""
    costs = CostModel(RedisConfig(**config))
    exec_ms, read_ms, write_ms = costs.row_costs(
        np.array([SET]), np.array([VALUE_BYTES]), np.array([True]), np.array([True])
    )
    return float(exec_ms[0] + read_ms[0] + write_ms[0])


THEORY = {"per_iteration_overhead": False, "save": "", "appendonly": False}


def gated_reply_delay_ms(rate_per_ms: float, service: float, n: int, seed: int) -> float:
    """Reference: a gated single server (serve everything that arrived, reply at batch end)."""
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate_per_ms, n)).tolist()
    total, i, free = 0.0, 0, 0.0
    while i < n:
        poll = max(free, arrival[i])
        j = i
        while j < n and arrival[j] <= poll:
            j += 1
        end = poll + (j - i) * service
        total += sum(end - a for a in arrival[i:j])
        free, i = end, j
    return total / n


@pytest.mark.parametrize("distribution", ["fixed", "exponential"])
def test_wait_before_execution_matches_pollaczek_khinchine(distribution: str) -> None:
    config = {**THEORY, "command_cost_distribution": distribution}
    service = service_ms(config)
    rho = 0.5
    rate_per_s = rho / service * 1000.0
    data = spec(config, {"rate_per_s": rate_per_s, "producers": 50}, duration_s=2.5)
    stats = loop_stats(run_redis(data))
    # Pollaczek-Khinchine: Wq = rho * S * (1 + cs^2) / (2 (1 - rho)); cs = 0 (M/D/1), 1 (M/M/1)
    cs2 = 0.0 if distribution == "fixed" else 1.0
    expected = rho * service * (1.0 + cs2) / (2.0 * (1.0 - rho))
    # Whitt (1989): the sample mean of M/M/1 waiting times at rho = 0.5 has an asymptotic
    # variance of ~29 S^2 / N; with N ~ 230k commands that is a relative standard error of
    # ~1.1% (M/D/1 is less variable). 5% is more than 4 standard errors.
    assert stats["commands"] > 200_000
    assert stats["mean_wait_before_exec_ms"] == pytest.approx(expected, rel=0.05)
    assert stats["utilization"] == pytest.approx(rho, rel=0.03)


def test_replies_leave_at_the_end_of_the_iteration_like_a_gated_server() -> None:
    service = service_ms(THEORY)
    rho = 0.5
    rate_per_ms = rho / service
    data = spec(THEORY, {"rate_per_s": rate_per_ms * 1000.0, "producers": 50}, duration_s=2.5)
    stats = loop_stats(run_redis(data))
    reference = gated_reply_delay_ms(rate_per_ms, service, 200_000, seed=7)
    # Both means come from ~200k samples with a relative standard error of ~1-2% each.
    assert stats["mean_reply_delay_ms"] == pytest.approx(reference, rel=0.06)
    # the batch effect: a reply waits for the commands executed after it in the same iteration
    wait_plus_service = stats["mean_wait_before_exec_ms"] + service
    assert stats["mean_reply_delay_ms"] > 1.1 * wait_plus_service


def test_latency_grows_with_utilization() -> None:
    service = service_ms({})  # realistic costs: about 7 µs per request at low load
    p99, waits = [], []
    for rho in (0.2, 0.6, 0.9):
        rate = rho / service * 1000.0
        result = run_redis(
            spec({"save": ""}, {"rate_per_s": rate, "producers": 50}, duration_s=1.0)
        )
        p99.append(result.summary["latency_ms"]["ack"]["p99"])
        waits.append(loop_stats(result)["mean_wait_before_exec_ms"])
    assert waits[0] < waits[1] < waits[2]
    assert p99[0] < p99[1] < p99[2]
    # near saturation queueing dominates: several times the low-load wait (M/D/1 would give
    # 36x; bigger iterations share epoll/beforeSleep costs, so the real utilization grows less)
    assert waits[2] > 5 * waits[0]


def test_one_thread_serves_about_100k_simple_commands_per_second_at_sub_ms_latency() -> None:
    result = run_redis(spec({"save": ""}, {"rate_per_s": 100_000, "producers": 50}, duration_s=0.5))
    ack = result.summary["latency_ms"]["ack"]
    assert result.summary["throughput"]["acked_per_s"] == pytest.approx(100_000, rel=0.02)
    assert ack["p99"] < 1.0  # network RTT 0.2 ms + a short queue


def test_pipelining_raises_throughput_several_times() -> None:
    rates = {}
    for depth in (1, 16):
        data = spec(
            {"save": ""},
            {"mode": "closed", "clients": 50, "pipeline": depth},
            duration_s=0.2,
        )
        rates[depth] = run_redis(data).summary["throughput"]["acked_per_s"]
    # one read() and one write() per 16 commands instead of per command (Redis docs: up to 10x)
    assert rates[16] > 3.0 * rates[1]


def test_io_threads_help_when_many_clients_are_served_per_iteration() -> None:
    rates = {}
    for threads in (1, 4):
        data = spec(
            {"save": "", "io_threads": threads}, {"mode": "closed", "clients": 100}, duration_s=0.2
        )
        rates[threads] = run_redis(data).summary["throughput"]["acked_per_s"]
    assert rates[4] > 1.2 * rates[1]


def test_a_500_ms_keys_blocks_every_client_for_up_to_500_ms() -> None:
    ops = {"slow_command": "KEYS", "slow_command_ms": 500.0, "slow_command_every_ms": 1000.0}
    result = run_redis(spec({"save": "", "ops": ops}, {"rate_per_s": 2000}, duration_s=3.0))
    ack = result.summary["latency_ms"]["ack"]
    # a request arriving just as KEYS starts waits the whole 500 ms, then the iteration that
    # serves the ~1000 requests queued meanwhile (~7 ms at ~7 µs each), then the network
    assert 480.0 < ack["max"] < 515.0
    # KEYS runs at 1 s and 2 s: the loop is blocked 1/3 of the 3 s, and so is every request
    # that arrives meanwhile (6000 requests: the binomial standard error is 0.6%)
    frame = result.messages
    delayed = ((frame["ack_ms"] - frame["intended_ms"]) > 5.0).mean()
    assert delayed == pytest.approx(1.0 / 3.0, abs=0.03)
