"""The Dask backend gives the local backend's table, never merges look-alike runs, and refuses
workers that run other software."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sweep_helpers import SMALL, fresh_token

from simulator import load_scenario, sweep, sweep_backends

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """An in-process cluster: one worker with two threads (no process start-up; the
    scheduler's HTTP server on a free port, not 8787, which another test may hold)."""
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_dask_gives_the_same_table_as_local_processes(client: object, tmp_path: Path) -> None:
    spec = load_scenario("queue_mm1", SMALL)
    grid: dict[str, list[Any]] = {
        "workload.rate_per_s": [200, 500],
        "queue.service": ["exponential", "deterministic"],
    }
    local = sweep(spec, grid, seeds=2, workers=2)  # in spawned processes
    remote = sweep(spec, grid, seeds=2, backend="dask", scheduler=client, out=tmp_path)
    pd.testing.assert_frame_equal(local.drop(columns="wall_s"), remote.drop(columns="wall_s"))
    assert len(list((tmp_path / "runs").glob("*.parquet"))) == 8


def test_dask_records_a_failing_run_and_goes_on(
    client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.runner import run

    def flaky(spec, seed=None, **_):
        if seed == 2:
            raise RuntimeError("boom")
        return run(spec, seed=seed)

    monkeypatch.setattr("simulator.runner.run", flaky)  # the in-process workers see it
    table = sweep(load_scenario("queue_mm1", SMALL), seeds=3, backend="dask", scheduler=client)
    errors = dict(zip(table["seed"], table["error"], strict=True))
    assert errors[1] == "" and errors[3] == "" and errors[2].startswith("RuntimeError: boom")


def test_identical_looking_calls_are_never_merged(client: object) -> None:
    tokens: dict[int, str] = {}
    sweep_backends.map_dask(
        fresh_token,
        [("same",)] * 6,
        lambda i, value, error: tokens.__setitem__(i, value),
        scheduler=client,
    )
    assert sorted(tokens) == list(range(6))
    assert len(set(tokens.values())) == 6


def test_workers_with_other_software_are_refused(
    client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = {**sweep_backends.compute_fingerprint(("queue",)), "numpy": "0.0.1"}
    monkeypatch.setattr(sweep_backends, "_worker_fingerprint", lambda kinds: other)
    with pytest.raises(sweep_backends.BackendError, match=r"numpy 0\.0\.1 vs"):
        sweep(load_scenario("queue_mm1", SMALL), backend="dask", scheduler=client)


def test_a_task_on_a_worker_with_other_code_records_an_error_instead_of_a_result() -> None:
    from simulator.sweeps import RunPoint, _task

    base = load_scenario("queue_mm1", SMALL).to_dict()
    expected = {**sweep_backends.compute_fingerprint(("queue",)), "code": "0" * 16}
    row, result = _task(base, RunPoint((("workload.rate_per_s", 100),), 3), "summary", expected)
    assert result is None and row["seed"] == 3
    assert row["error"].startswith("worker software differs: code ")
