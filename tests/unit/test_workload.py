"""Arrivals, keys and sizes: rates, profiles and determinism."""

from __future__ import annotations

import numpy as np

from simulator.context import RunContext
from simulator.scenario import load_scenario
from simulator.workload import make_workload


def generate(overrides: dict, duration_s: float = 10.0, chunk_ms: float = 100.0, seed: int = 1):
    spec = load_scenario(
        {"scenario": {"duration_s": duration_s, "seed": seed}, "workload": overrides}
    )
    ctx = RunContext(spec)
    wl = make_workload(ctx.rng, spec.workload, ctx.duration_ms)
    times, keys, sizes = [], [], []
    t = 0.0
    while not wl.exhausted:
        t += chunk_ms
        b = wl.next_batch(t)
        times.append(b.intended_ms)
        keys.append(b.keys)
        sizes.append(b.sizes)
    return np.concatenate(times), np.concatenate(keys), np.concatenate(sizes)


def test_poisson_count_matches_rate() -> None:
    # 10 s at 5000/s: expected 50000, Poisson sd = sqrt(50000) ~ 224; 5 sd = 1118
    times, _, _ = generate({"rate_per_s": 5000})
    assert abs(times.size - 50_000) < 1118
    assert np.all(np.diff(times) >= 0)
    assert times.min() >= 0 and times.max() < 10_000


def test_poisson_gaps_are_exponential() -> None:
    # coefficient of variation of exponential gaps is 1; with 50k gaps its sd is ~0.006
    times, _, _ = generate({"rate_per_s": 5000})
    gaps = np.diff(times)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.03


def test_constant_arrivals_are_evenly_spaced() -> None:
    times, _, _ = generate({"rate_per_s": 1000, "arrival": "constant"}, duration_s=2)
    assert times.size == 2000
    assert np.allclose(np.diff(times), 1.0)


def test_chunking_does_not_change_constant_arrivals() -> None:
    a, _, _ = generate({"rate_per_s": 1000, "arrival": "constant"}, duration_s=2, chunk_ms=7)
    b, _, _ = generate({"rate_per_s": 1000, "arrival": "constant"}, duration_s=2, chunk_ms=100)
    assert np.allclose(a, b)


def test_ramp_phase_rises_linearly() -> None:
    phases = [{"duration_s": 10, "shape": "ramp", "rate_per_s": 1000, "to_rate_per_s": 9000}]
    times, _, _ = generate({"phases": phases})
    first, last = (times < 1000).sum(), (times >= 9000).sum()
    # expected ~1400 in the first second and ~8600 in the last (trapezoids)
    assert abs(first - 1400) < 5 * np.sqrt(1400)
    assert abs(last - 8600) < 5 * np.sqrt(8600)


def test_burst_phase_multiplies_rate() -> None:
    phases = [
        {"duration_s": 4, "rate_per_s": 1000},
        {"duration_s": 2, "shape": "burst", "rate_per_s": 1000, "burst_factor": 10},
        {"duration_s": 4, "rate_per_s": 1000},
    ]
    times, _, _ = generate({"phases": phases})
    burst = ((times >= 4000) & (times < 6000)).sum()
    before = (times < 4000).sum()
    assert abs(burst - 20_000) < 5 * np.sqrt(20_000)
    assert abs(before - 4000) < 5 * np.sqrt(4000)


def test_zipf_keys_make_key_zero_hottest() -> None:
    _, keys, _ = generate(
        {"rate_per_s": 5000, "keys": 1000, "key_distribution": "zipf", "zipf_s": 1.1}
    )
    counts = np.bincount(keys, minlength=1000)
    assert counts.argmax() == 0
    assert counts[0] > 10 * counts[100:].mean()


def test_uniform_keys_cover_the_key_space() -> None:
    _, keys, _ = generate({"rate_per_s": 5000, "keys": 100})
    counts = np.bincount(keys, minlength=100)
    # 50k draws over 100 keys: 500 each, sd ~22
    assert counts.min() > 500 - 5 * 22 and counts.max() < 500 + 5 * 22


def test_size_distribution_keeps_the_mean() -> None:
    _, _, sizes = generate(
        {"rate_per_s": 5000, "value_bytes": 1000, "value_bytes_distribution": "lognormal"}
    )
    # lognormal sigma 1: sd/mean ~1.31; se of the mean over 50k ~0.6%
    assert abs(sizes.mean() / 1000 - 1) < 0.05


def test_max_messages_caps_production() -> None:
    times, _, _ = generate({"rate_per_s": 5000, "max_messages": 1234})
    assert times.size == 1234


def test_same_seed_same_arrivals_other_seed_different() -> None:
    a, ka, _ = generate({"rate_per_s": 2000}, seed=3)
    b, kb, _ = generate({"rate_per_s": 2000}, seed=3)
    c, _, _ = generate({"rate_per_s": 2000}, seed=4)
    assert np.array_equal(a, b) and np.array_equal(ka, kb)
    assert a.size != c.size or not np.array_equal(a, c)
