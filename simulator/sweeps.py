"""Sweeps: a grid of parameter values x seeds, run in parallel processes, one tidy table.

Each finished run is written at once as its own small Parquet file under `OUT/runs/` (atomically),
so an interrupted sweep resumes by running only what is missing; a run that raises is recorded
with its error and the sweep goes on; the final table `OUT/results.parquet` is written atomically.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.scenario import ScenarioBase, ScenarioError, load_scenario, parse_value


@dataclass(frozen=True)
class RunPoint:
    """One run of a sweep: the overrides on the base scenario and the seed."""

    params: tuple[tuple[str, Any], ...]
    seed: int

    def key(self, base_digest: str) -> str:
        blob = json.dumps([base_digest, list(self.params), self.seed], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """`key=v1,v2,v3` strings -> {key: [v1, v2, v3]} with TOML-typed values."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ScenarioError(
                [f"--grid {item!r}: expected KEY=V1,V2,... e.g. kafka.producer.acks=0,1,all"]
            )
        key, _, values = item.partition("=")
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not parsed:
            raise ScenarioError([f"--grid {key}: no values given"])
        grid[key.strip()] = parsed
    return grid


def expand(grid: dict[str, list[Any]], seeds: list[int]) -> list[RunPoint]:
    keys = list(grid)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = tuple(zip(keys, combo, strict=True))
        for seed in seeds:
            points.append(RunPoint(params, seed))
    return points


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary -> flat `a.b.c` columns; lists become JSON strings."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = value
    return flat


def run_point(base: dict[str, Any], point: RunPoint) -> dict[str, Any]:
    """Run one point in this process and return its table row (never raises)."""
    from simulator.runner import run

    row: dict[str, Any] = {f"param.{k}": v for k, v in point.params}
    row["seed"] = point.seed
    started = time.perf_counter()
    try:
        spec = load_scenario(base, dict(point.params))
        result = run(spec, seed=point.seed)
        row.update(flatten(result.summary))
        row["system"] = spec.system.kind
        row["error"] = ""
    except ScenarioError as exc:
        row["error"] = f"invalid scenario: {exc}"
    except Exception as exc:  # a failed run is recorded, not fatal to the sweep
        row["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
    row["wall_s"] = time.perf_counter() - started
    return row


def _write_atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _row_frame(row: dict[str, Any]) -> pd.DataFrame:
    clean = {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in row.items()}
    return pd.DataFrame([clean])


def _normalize(table: pd.DataFrame) -> pd.DataFrame:
    """Columns whose values mix types across runs (acks = 0, 1, "all") become text."""
    for column in table.columns:
        values = table[column].dropna()
        kinds = {type(v) for v in values}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            table[column] = table[column].map(lambda v: v if v is None or v != v else str(v))
    return table


def sweep(
    scenario: ScenarioBase | str | Path | dict[str, Any],
    grid: dict[str, list[Any]] | None = None,
    seeds: int | list[int] = 1,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> pd.DataFrame:
    """Run every grid point x seed; return one row per run (params, summary columns, seed, error)."""
    spec = scenario if isinstance(scenario, ScenarioBase) else load_scenario(scenario)
    base = spec.to_dict()
    grid = grid or {}
    seed_list = (
        [spec.scenario.seed + i for i in range(seeds)] if isinstance(seeds, int) else list(seeds)
    )
    points = expand(grid, seed_list)
    # validate every combination up front: a typo in a grid key fails before any run starts
    for combo in {p.params for p in points}:
        load_scenario(base, dict(combo))
    digest = spec.digest()
    runs_dir: Path | None = None
    done: dict[str, pd.DataFrame] = {}
    if out is not None:
        runs_dir = Path(out) / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        (Path(out) / "sweep.json").write_text(
            json.dumps({"base": base, "grid": grid, "seeds": seed_list}, indent=2, default=str)
        )
        for point in points:
            path = runs_dir / f"{point.key(digest)}.parquet"
            if path.exists():
                done[point.key(digest)] = pd.read_parquet(path)
    todo = [p for p in points if p.key(digest) not in done]
    total = len(points)
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=total - len(todo), desc="sweep", unit="run")

    def finished(point: RunPoint, row: dict[str, Any]) -> None:
        frame = _row_frame(row)
        done[point.key(digest)] = frame
        if runs_dir is not None:
            _write_atomic_parquet(frame, runs_dir / f"{point.key(digest)}.parquet")
        if bar is not None:
            bar.update(1)
        elif callable(progress):
            progress(len(done), total)

    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if n_workers == 1:
        for point in todo:
            finished(point, run_point(base, point))
    else:
        mp = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp) as pool:
            pending: dict[Future[dict[str, Any]], RunPoint] = {
                pool.submit(run_point, base, p): p for p in todo
            }
            while pending:
                complete, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in complete:
                    point = pending.pop(fut)
                    try:
                        row = fut.result()
                    except Exception as exc:  # the worker process died
                        row = {f"param.{k}": v for k, v in point.params}
                        row.update(seed=point.seed, error=f"worker failed: {exc!r}", wall_s=0.0)
                    finished(point, row)
    if bar is not None:
        bar.close()
    order = [done[p.key(digest)] for p in points]
    table = _normalize(pd.concat(order, ignore_index=True)) if order else pd.DataFrame()
    if out is not None:
        _write_atomic_parquet(table, Path(out) / "results.parquet")
    return table
