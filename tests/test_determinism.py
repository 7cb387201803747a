"""Same scenario + same seed = the same result, bit for bit; another seed = another result."""

from __future__ import annotations

import json

import pandas as pd

from simulator import load_scenario, run

SPEC = {
    "scenario": {"duration_s": 3, "warmup_s": 0.5},
    "workload": {"rate_per_s": 2000, "key_distribution": "zipf"},
    "faults": [{"at_s": 1, "kind": "crash", "target": "server", "duration_s": 0.5}],
}


def test_same_seed_same_summary_and_tables() -> None:
    a = run(load_scenario(SPEC), seed=11)
    b = run(load_scenario(SPEC), seed=11)
    assert a.summary_json() == b.summary_json()
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    pd.testing.assert_frame_equal(a.messages, b.messages)
    pd.testing.assert_frame_equal(a.events, b.events)


def test_another_seed_gives_another_result() -> None:
    a = run(load_scenario(SPEC), seed=11)
    c = run(load_scenario(SPEC), seed=12)
    assert json.dumps(a.summary) != json.dumps(c.summary)


def test_wall_time_lives_in_the_manifest_not_the_summary() -> None:
    a = run(load_scenario(SPEC), seed=11)
    assert "wall_s" in a.manifest
    assert "wall" not in a.summary_json()


def _summary_in_worker(spec_dict: dict, seed: int) -> str:
    return run(load_scenario(spec_dict), seed=seed).summary_json()


def test_a_run_in_a_worker_process_equals_the_same_run_in_process() -> None:
    import multiprocessing

    spec = load_scenario(SPEC)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        remote = pool.apply(_summary_in_worker, (spec.to_dict(), 5))
    assert remote == run(spec, seed=5).summary_json()
