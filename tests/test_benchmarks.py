"""The benchmarks themselves run (at their quick size) and report what their docs promise.

Not timed: speed is measured by `python -m benchmarks`, never asserted here.
"""

from __future__ import annotations

from benchmarks import load_all
from benchmarks.__main__ import markdown_table
from benchmarks.harness import Measurement, measure


def test_every_benchmark_module_registers_without_error() -> None:
    registry = load_all()
    assert {
        "dashboard_playground",
        "scenario_library",
        "linearity_redis",
        "redis_kv_aof_everysec",
        "kafka_12m",
        "floor_kafka_12m",
    } <= set(registry)


def test_floor_benchmark_passes_every_message_through_with_fixed_delays_only() -> None:
    # the floor is kafka_12m's workload through a null system: every message produced is
    # delivered, acknowledged 1 ms and delivered 2 ms after its intended send time
    m = measure("floor_kafka_12m", reps=1, quick=True)
    assert m.messages[0] > 100_000
    assert m.extra["ack_p50_ms"] == [1.0]
    assert m.extra["e2e_p50_ms"] == [2.0]


def test_playground_benchmark_splits_the_wait_into_simulate_check_and_figures() -> None:
    # through the harness, in a spawned child as every benchmark runs: the benchmark imports
    # the dashboard's page modules, which must not be imported into the test process (the
    # AppTest tests run those pages as scripts)
    m = measure("dashboard_playground", reps=1, quick=True)
    assert m.messages[0] > 0
    parts = m.extra["simulate_s"][0] + m.check_s[0] + m.extra["figures_s"][0]
    # the three parts are measured from the same clock readings as the total
    assert abs(parts - m.wall_s[0]) < 1e-6 * max(1.0, m.wall_s[0])
    assert m.extra["figure_json_bytes"][0] > 0


def test_a_benchmarks_own_facts_reach_the_summary_and_the_table() -> None:
    m = Measurement("demo", reps=2, quick=True)
    m.messages, m.wall_s, m.ratios = [10, 10], [1.0, 2.0], [0.1, 0.2]
    m.baseline_events_per_s, m.bytes_per_message = [100.0, 100.0], [5.0, 6.0]
    m.extra["figures_s"] = [0.5, 0.7]
    row = m.summary()
    assert row["median_figures_s"] == 0.6
    table = markdown_table(
        [row],
        {
            "time_utc": "t",
            "python": "3",
            "simpy": "4",
            "platform": "p",
            "cpu_count": 2,
            "git_commit": "c",
        },
    )
    assert "demo: figures_s 0.600" in table
