"""A sweep killed mid-way (SIGKILL to the whole process group) resumes with what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from simulator.experiments import load_experiment
from simulator.runner import run

EXPERIMENT = """
[experiment]
name = "kill_me"
scenarios = ["queue_mm1"]
set = ["scenario.duration_s=3", "scenario.warmup_s=0", "scenario.drain_s=1",
       "queue.service_ms=0.2"]
replications = 2

[grid]
"workload.rate_per_s" = [1000, 1500, 2000, 2500, 3000, 3500]
"""
TOTAL = 12


def rksim(*args: str) -> list[str]:
    return [sys.executable, "-m", "simulator.cli", *args]


def test_killed_sweep_resumes_running_only_what_is_missing(tmp_path: Path) -> None:
    experiment = tmp_path / "kill_me.toml"
    experiment.write_text(EXPERIMENT)
    out = tmp_path / "out"
    runs = out / "runs"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(
        rksim("sweep", str(experiment), "--out", str(out), "-j", "2", "--no-progress"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes its workers too
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(runs.glob("*.parquet"))) >= 3:
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finished = {p: p.stat().st_mtime_ns for p in runs.glob("*.parquet")}
    assert 3 <= len(finished) < TOTAL, (tmp_path / "first.log").read_text()
    assert not (out / "results.parquet").exists()

    again = subprocess.run(  # resumed with another worker count: the run ids do not change
        rksim("sweep", str(experiment), "--out", str(out), "-j", "1", "--no-progress"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(finished)} of {TOTAL} runs already done" in again.stderr
    # the runs finished before the kill were not run again
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    assert not list(runs.glob(".*.tmp"))
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == TOTAL and (table["error"] == "").all()
    assert not table.duplicated(["param.workload.rate_per_s", "seed"]).any()
    # and a resumed run equals a fresh one (first and last row)
    base = load_experiment(experiment).bases()[0][1]
    for i in (0, TOTAL - 1):
        rate, seed = table.loc[i, "param.workload.rate_per_s"], table.loc[i, "seed"]
        fresh = run(base.with_overrides({"workload.rate_per_s": rate}), seed=int(seed))
        assert fresh.summary["latency_ms"]["ack"]["mean"] == table.loc[i, "latency_ms.ack.mean"]
