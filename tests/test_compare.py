"""Side-by-side runs: same workload, same faults, one verdict table, cross-variant claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.compare import compare
from simulator.scenario import ScenarioError, load_scenario

BASE = {
    "scenario": {"name": "service-shapes", "duration_s": 3, "warmup_s": 0},
    "workload": {"rate_per_s": 700},
    "faults": [{"at_s": 1, "kind": "pause", "target": "primary", "duration_s": 0.2}],
    "compare": {
        "variants": [
            {"label": "exponential", "set": ['queue.service="exponential"']},
            {"label": "deterministic", "set": ['queue.service="deterministic"']},
        ],
        "expect": [
            {
                "check": "exponential.latency_ms.ack.mean > deterministic.latency_ms.ack.mean",
                "why": "service-time variance adds queueing delay (Pollaczek-Khinchine)",
            }
        ],
    },
}


def test_compare_runs_every_variant_with_the_same_workload_and_faults() -> None:
    outcome = compare(BASE, seed=3)
    assert set(outcome.results) == {"exponential", "deterministic"}
    produced = {k: r.summary["messages"]["produced"] for k, r in outcome.results.items()}
    assert len(set(produced.values())) == 1  # identical arrivals: the same named streams
    faults = {
        k: [(f["kind"], f["begin_ms"]) for f in r.summary["faults"]]
        for k, r in outcome.results.items()
    }
    assert faults["exponential"] == faults["deterministic"] == [("pause", 1000.0)]
    table = outcome.table()
    assert list(table["variant"]) == ["exponential", "deterministic"]
    assert {"lost", "duplicates", "ack p99 (ms)", "unavailable (s)", "p99 recovery (ms)"} <= set(
        table.columns
    )
    assert outcome.passed, outcome.expectations


def test_a_variant_with_a_bad_override_is_named_before_anything_runs() -> None:
    bad = {**BASE, "compare": {"variants": [{"label": "x", "set": ['queue.service="weird"']}]}}
    with pytest.raises(ScenarioError) as info:
        compare(bad)
    assert info.value.problems[0].startswith(
        "compare variant 'x': queue.service: 'weird' is not allowed"
    )


def test_comparison_claims_must_name_a_variant() -> None:
    data = {
        **BASE,
        "compare": {**BASE["compare"], "expect": [{"check": "kafka.messages.lost == 0"}]},
    }
    with pytest.raises(ScenarioError) as info:
        load_scenario(data)
    assert (
        "must be `<variant>.<summary key>` with variant in: exponential, deterministic"
        in info.value.problems[0]
    )


def test_expectation_syntax_is_checked_when_loading() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario({"expect": [{"check": "messages.lost is zero"}]})
    assert "is not `<summary key> <op> <number or summary key>`" in info.value.problems[0]
    with pytest.raises(ScenarioError) as info:
        load_scenario({"expect": [{"check": "mesages.lost == 0"}]})
    assert info.value.problems[0].startswith("expect[0].check: unknown summary key 'mesages.lost'")


def test_cli_compare_prints_the_verdict_table(tmp_path: Path) -> None:
    import tomli_w

    path = tmp_path / "cmp.toml"
    path.write_text(tomli_w.dumps(BASE))
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "compare", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exponential" in proc.stdout and "deterministic" in proc.stdout and "held" in proc.stdout
    assert (tmp_path / "o" / "verdict.parquet").exists()
    assert (tmp_path / "o" / "exponential" / "summary.json").exists()


def test_claims_about_variants_not_run_are_left_out() -> None:
    only = [{"label": "exponential", "set": ['queue.service="exponential"']}]
    outcome = compare(BASE, variants=only, seed=3)
    assert list(outcome.results) == ["exponential"]
    assert outcome.expectations == []
