"""Result: expectations, manifest, atomic save and load, text summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator import checker, recovery, systems
from simulator import scenario as sc
from simulator.context import Event, FaultRecord, RunContext
from simulator.results import Result, evaluate_expectations, summary_value

EXPECT = [
    {"check": "messages.lost == 1", "why": "the power loss drops one acked write"},
    {"check": "messages.produced >= messages.acked", "why": "compares two keys"},
    {"check": "faults.0.p99_recovery_ms < 1000", "why": "never recovers"},
]


def make_ctx(expect: list[dict[str, str]] | None = None) -> RunContext:
    """A run context of a model-less system whose history the test fills by hand."""
    systems.register(
        systems.System(kind="dummy", config=systems.SystemConfig, factory=lambda ctx: None)  # type: ignore[arg-type, return-value]
    )
    data = {
        "scenario": {"name": "hand_made", "duration_s": 10, "seed": 42},
        "system": {"kind": "dummy"},
        "checker": {"bucket_ms": 100},
        "expect": expect or [],
    }
    return RunContext(sc.load_scenario(data))


def make_result(expect: list[dict[str, str]] | None = None) -> Result:
    ctx = make_ctx(EXPECT if expect is None else expect)
    h = ctx.history
    intended = np.arange(0, 10_000, 2, dtype=float)
    h.produce(intended, np.arange(intended.size) % 5)
    h.ack(range(intended.size), intended + np.where(intended >= 4000, 300.0, 1.0))
    h.deliver(range(intended.size - 1), intended[:-1] + 400.0)
    h.lose(intended.size - 1, "not_fsynced_at_power_loss")
    h.deliver(np.array([0, 1]), 500.0, dup_cause="producer_retry")
    ctx.events.append(Event(4100.0, "failover", "sentinel", {"new_primary": "r2"}))
    ctx.faults.append(FaultRecord(0, "power_loss", "primary", ["r1"], 4000.0, None))
    ctx.gauge("consumer_lag", 3.0, t_ms=10.0)
    checked = checker.check(ctx)
    return Result.from_run(ctx, checked, wall_s=0.5, started_at="2024-01-01T00:00:00+00:00")


# expectations ----------------------------------------------------------------------------------
SUMMARY: dict[str, Any] = {
    "messages": {"lost": 3, "acked": 10, "lost_by_cause": {"no_persistence": 3}},
    "faults": [{"detect_ms": None, "p99_recovery_ms": "not_recovered", "first_write_ms": 12.5}],
}


@pytest.mark.parametrize(
    ("check", "held", "actual"),
    [
        ("messages.lost == 3", True, 3),
        ("messages.lost != 3", False, 3),
        ("messages.lost < messages.acked", True, 3),
        ("messages.lost>=4", False, 3),
        ("messages.lost_by_cause.no_persistence <= 3", True, 3),
        ("messages.lost_by_cause.discarded_on_failover == 0", True, 0),
        ("faults.0.first_write_ms > 1e1", True, 12.5),
        ("faults.0.detect_ms < 100", False, None),
        ("faults.0.p99_recovery_ms < 100", False, "not_recovered"),
    ],
)
def test_expectations_compare_summary_values(check: str, held: bool, actual: Any):
    [outcome] = evaluate_expectations(SUMMARY, [{"check": check, "why": "because"}])
    assert outcome == {"check": check, "why": "because", "held": held, "actual": actual}


@pytest.mark.parametrize(
    "check",
    [
        "messages.lost",
        "messages.lost = 3",
        "messages.lost == three",
        "messages.missing == 0",
        "faults.3.detect_ms == 0",
        "messages.lost_by_cause == 0",
        "== 3",
    ],
)
def test_a_bad_expectation_raises_naming_it(check: str):
    with pytest.raises(ValueError, match="expectation"):
        evaluate_expectations(SUMMARY, [check])


def test_summary_values_follow_dotted_paths():
    assert summary_value(SUMMARY, "faults.0.first_write_ms") == 12.5
    with pytest.raises(KeyError):
        summary_value(SUMMARY, "messages.lost.more")


def test_a_result_evaluates_the_scenarios_expectations():
    result = make_result()
    assert [e["held"] for e in result.expectations] == [True, True, False]
    assert result.expectations[2]["actual"] == recovery.NOT_RECOVERED
    assert not result.passed


def test_the_manifest_says_what_ran_and_keeps_wall_time_out_of_the_summary():
    result = make_result()
    manifest = result.manifest
    assert manifest["scenario"] == "hand_made" and manifest["system"] == "dummy"
    assert manifest["seed"] == 42 and manifest["sim_events"] == 1
    assert manifest["wall_s"] == 0.5 and manifest["started_at"].startswith("2024")
    assert set(manifest["versions"]) >= {"rksim", "python", "simpy", "numpy"}
    assert "wall_s" not in result.summary_json() and "2024" not in result.summary_json()
    assert make_result().summary_json() == result.summary_json()


# save and load ---------------------------------------------------------------------------------
def assert_same(a: Result, b: Result, messages: bool = True) -> None:
    assert a.summary == b.summary and a.manifest == b.manifest
    assert a.scenario_toml == b.scenario_toml and a.expectations == b.expectations
    for name in ("timeseries", "events", "faults"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    if messages:
        pd.testing.assert_frame_equal(a.messages, b.messages)


def test_save_and_load_round_trip(tmp_path: Path):
    result = make_result()
    result.save(tmp_path / "run")
    loaded = Result.load(tmp_path / "run")
    assert loaded.messages_loader is not None  # not read until asked for
    assert_same(result, loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == result.summary


def test_a_result_saved_without_messages_loads_without_them(tmp_path: Path):
    result = make_result()
    result.save(tmp_path / "run", messages=False)
    loaded = Result.load(tmp_path / "run")
    assert loaded.messages is None
    assert_same(result, loaded, messages=False)


def test_saving_over_a_result_replaces_it_whole(tmp_path: Path):
    make_result(expect=[]).save(tmp_path / "run")
    (tmp_path / "run" / "stale.txt").write_text("from the old run")
    newer = make_result()
    newer.save(tmp_path / "run")
    assert not (tmp_path / "run" / "stale.txt").exists()
    assert_same(newer, Result.load(tmp_path / "run"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_crash_while_saving_leaves_the_old_result_intact(tmp_path: Path, monkeypatch):
    old = make_result(expect=[])
    old.save(tmp_path / "run")
    real_to_parquet = pd.DataFrame.to_parquet

    def failing_to_parquet(self: pd.DataFrame, path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("events.parquet"):
            raise OSError("No space left on device")
        return real_to_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_to_parquet)
    with pytest.raises(OSError, match="No space"):
        make_result().save(tmp_path / "run")
    monkeypatch.undo()
    assert_same(old, Result.load(tmp_path / "run"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_loading_a_directory_that_is_not_a_result_fails_clearly(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"summary\.json"):
        Result.load(tmp_path)


# text ------------------------------------------------------------------------------------------
def test_the_text_summary_shows_fates_latency_faults_and_expectations():
    text = make_result().to_text()
    for needle in (
        "hand_made on dummy",
        "delivered",
        "lost",
        "not_fsynced_at_power_loss",
        "producer_retry",
        "p99",
        "end_to_end",
        "power_loss",
        "not recovered",
        "NOT HELD",
        "held",
    ):
        assert needle in text
