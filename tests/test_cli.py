"""The rksim command line: readable output, exit code 2 without traceback for user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from simulator import load_scenario
from simulator import sweeps as sweep_module
from simulator.results import Result

RKSIM = [sys.executable, "-m", "simulator.cli"]
SMALL = ["--set", "scenario.duration_s=1", "--set", "scenario.warmup_s=0"]


def rksim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="120")
    return subprocess.run(
        [*RKSIM, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def test_run_prints_fates_latency_and_writes_a_loadable_result(tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = rksim("run", "queue_mm1", *SMALL, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "delivered" in proc.stdout and "p99" in proc.stdout
    loaded = Result.load(out)
    assert loaded.summary["messages"]["produced"] > 0
    assert load_scenario(str(out / "scenario.toml")).scenario.duration_s == 1


def test_run_json_is_the_summary() -> None:
    proc = rksim("run", "queue_mm1", *SMALL, "--json")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) >= {"messages", "latency_ms", "throughput", "faults"}


def test_bad_override_exits_2_naming_field_value_and_rule() -> None:
    proc = rksim("run", "queue_mm1", "--set", "workload.rate_per_s=-5")
    assert proc.returncode == 2
    assert "workload.rate_per_s: -5 is not allowed: Input should be greater than 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_scenario_exits_2_and_lists_builtins() -> None:
    proc = rksim("validate", "no_such_scenario")
    assert proc.returncode == 2
    assert "no file or built-in scenario named 'no_such_scenario'" in proc.stderr
    assert "queue_mm1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[workload]\nrate_per_s = 10\nfoo = 1\n[[faults]]\nat_s = 99\nkind = "crash"\ntarget = "server"\n'
    )
    proc = rksim("validate", str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert any(line.strip().startswith("workload.foo: unknown key") for line in lines)
    assert "Traceback" not in proc.stderr


def test_usage_error_exits_2() -> None:
    proc = rksim("run")
    assert proc.returncode == 2
    assert "Missing argument" in proc.stderr


def test_scenarios_lists_builtins_with_descriptions() -> None:
    proc = rksim("scenarios")
    assert proc.returncode == 0
    assert "queue_mm1" in proc.stdout and "M/M/1" in proc.stdout


def test_schema_is_json_schema() -> None:
    proc = rksim("schema")
    schema = json.loads(proc.stdout)
    assert "workload" in schema["properties"]


def test_show_of_a_non_result_exits_2(tmp_path: Path) -> None:
    proc = rksim("show", str(tmp_path))
    assert proc.returncode == 2
    assert "not a result directory" in proc.stderr


def test_sweep_writes_tidy_table_and_resumes_without_rerunning(tmp_path: Path, monkeypatch) -> None:
    spec = load_scenario("queue_mm1", ["scenario.duration_s=1", "scenario.warmup_s=0"])
    grid = {"queue.service_ms": [0.5, 1.0]}
    table = sweep_module.sweep(spec, grid, seeds=2, out=tmp_path, workers=1)
    assert len(table) == 4
    assert list(table["param.queue.service_ms"]) == [0.5, 0.5, 1.0, 1.0]
    assert (table["error"] == "").all()
    assert pd.read_parquet(tmp_path / "results.parquet").shape == table.shape
    # remove one finished run: the next call runs exactly that one
    victim = sorted((tmp_path / "runs").glob("*.parquet"))[0]
    victim.unlink()
    calls = []
    original = sweep_module.run_point
    monkeypatch.setattr(sweep_module, "run_point", lambda b, p: calls.append(p) or original(b, p))
    again = sweep_module.sweep(spec, grid, seeds=2, out=tmp_path, workers=1)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(
        again.drop(columns="wall_s"), table.drop(columns="wall_s"), check_like=True
    )


def test_sweep_records_a_failing_run_and_goes_on(tmp_path: Path, monkeypatch) -> None:
    spec = load_scenario("queue_mm1", ["scenario.duration_s=1", "scenario.warmup_s=0"])

    from simulator.runner import run

    def flaky_run(spec, seed=None, **_):
        if seed == 2:
            raise RuntimeError("boom")
        return run(spec, seed=seed)

    monkeypatch.setattr("simulator.runner.run", flaky_run)
    table = sweep_module.sweep(spec, {}, seeds=2, out=tmp_path, workers=1)
    errors = dict(zip(table["seed"], table["error"], strict=True))
    assert errors[1] == "" and errors[2].startswith("RuntimeError: boom")


def test_sweep_with_a_bad_grid_key_fails_before_running(tmp_path: Path) -> None:
    proc = rksim("sweep", "queue_mm1", "--grid", "queue.nope=1,2", "--out", str(tmp_path / "s"))
    assert proc.returncode == 2
    assert "queue.nope: unknown key" in proc.stderr
    assert not (tmp_path / "s" / "runs").exists()
