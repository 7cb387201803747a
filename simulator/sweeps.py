"""Sweeps: base scenario(s) x parameter points x seeds, run in parallel, one tidy table.

A sweep is planned from a scenario and a grid (`sweep("queue_mm1", {"workload.rate_per_s":
[200, 400]}, seeds=5)`) or from an experiment file (`sweep("experiments/queue_load.toml")`, see
`simulator.experiments`). Runs go to local processes (default: every core) or to a Dask cluster.

Nothing is lost: each finished run is written at once, atomically, as its own small Parquet file
under `OUT/runs/` (together a Parquet dataset), so an interrupted sweep (Ctrl-C, a killed process,
a crashed worker) resumes by running only what is missing; a run that raises is recorded with its
error and the sweep goes on; the final table `OUT/results.parquet` is written atomically.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from simulator import experiments as exps
from simulator.scenario import ScenarioBase, ScenarioError, load_scenario, parse_value
from simulator.sweep_backends import (
    BackendError,
    environment_fingerprint,
    map_dask,
    map_processes,
    map_serial,
    usable_cpus,
)

__all__ = [
    "BackendError",
    "RunPoint",
    "SweepPlan",
    "load_sweep",
    "parse_grid",
    "plan_sweep",
    "run_point",
    "sweep",
]

Keep = Literal["summary", "tables", "all"]
Progress = bool | Callable[[int, int], None]
RUNS_DIR, RESULTS_DIR, TABLE_FILE, META_FILE = "runs", "results", "results.parquet", "sweep.json"


@dataclass(frozen=True)
class RunPoint:
    """One run of a sweep: the overrides on base scenario number `base`, and the seed."""

    params: tuple[tuple[str, Any], ...]
    seed: int
    base: int = 0

    def key(self, base_digest: str) -> str:
        """Stable id of the run (file name under runs/): base scenario, overrides and seed."""
        blob = json.dumps([base_digest, list(self.params), self.seed], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Base:
    """A resolved base scenario of a sweep."""

    label: str
    data: dict[str, Any]
    digest: str
    system: str


@dataclass
class SweepPlan:
    """Every run of a sweep, in table order, and what describes the sweep (sweep.json)."""

    bases: list[Base]
    points: list[RunPoint]
    keep: Keep = "summary"
    meta: dict[str, Any] = field(default_factory=dict)

    def key(self, point: RunPoint) -> str:
        return point.key(self.bases[point.base].digest)


# planning ----------------------------------------------------------------------------------
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
    """Grid product x seeds over one base scenario."""
    keys = list(grid)
    return [
        RunPoint(tuple(zip(keys, combo, strict=True)), seed)
        for combo in itertools.product(*(grid[k] for k in keys))
        for seed in seeds
    ]


def _as_experiment(scenario: Any, grid: dict[str, list[Any]] | None) -> exps.Experiment | None:
    if isinstance(scenario, exps.Experiment):
        experiment = scenario
    elif (isinstance(scenario, dict) and exps.is_experiment(scenario)) or (
        isinstance(scenario, str | Path) and exps.is_experiment_file(scenario)
    ):
        experiment = exps.load_experiment(scenario)
    else:
        return None
    if grid:  # extra --grid keys join (or replace) the file's grid
        merged = {**experiment.grid, **grid}
        data = experiment.model_dump(mode="python")
        data["grid"] = merged
        source_dir = experiment._source_dir
        experiment = exps.validate_experiment(data, source_dir)
    return experiment


def plan_sweep(
    scenario: exps.Experiment | ScenarioBase | str | Path | dict[str, Any],
    grid: dict[str, list[Any]] | None = None,
    seeds: int | list[int] | None = None,
    *,
    overrides: list[str] | None = None,
    ci: bool = False,
    keep: Keep | None = None,
) -> SweepPlan:
    """Resolve bases, points and seeds; validate every point before anything runs."""
    experiment = _as_experiment(scenario, grid)
    if experiment is not None:
        specs = experiment.bases(overrides, ci)
        combos = experiment.combinations()
        meta = {
            "name": experiment.experiment.name,
            "description": experiment.experiment.description,
            "parameters": experiment.parameters(),
            "metrics": experiment.experiment.metrics,
            "experiment": experiment.model_dump(mode="json"),
        }
        keep = keep or experiment.experiment.keep
    else:
        if isinstance(scenario, ScenarioBase):
            spec = scenario.with_overrides(overrides) if overrides else scenario
        else:
            spec = load_scenario(scenario, overrides, ci=ci)  # type: ignore[arg-type]
        specs = [(spec.scenario.name, spec)]
        keys = list(grid or {})
        combos = [
            dict(zip(keys, c, strict=True))
            for c in itertools.product(*((grid or {})[k] for k in keys))
        ]
        meta = {"name": spec.scenario.name, "description": "", "parameters": keys, "metrics": []}
    bases: list[Base] = []
    points: list[RunPoint] = []
    problems: dict[str, str] = {}
    for index, (label, spec) in enumerate(specs):
        data = spec.to_dict()
        bases.append(Base(label, data, spec.digest(), spec.system.kind))
        if isinstance(seeds, list):
            seed_list = list(seeds)
        elif experiment is not None:
            seed_list = experiment.seeds(spec, seeds)
        else:
            seed_list = [spec.scenario.seed + i for i in range(seeds or 1)]
        seen: set[str] = set()
        for combo in combos:
            params = tuple((k, v) for k, v in combo.items() if exps.applies(k, spec))
            identity = json.dumps(params, default=str)  # values may be lists (unhashable)
            if identity in seen:
                continue
            seen.add(identity)
            try:  # a typo or an out-of-range value fails before any run starts
                load_scenario(data, dict(params))
            except ScenarioError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in params)
                for problem in exc.problems:
                    problems.setdefault(problem, f"{label} with {where}: {problem}")
            points.extend(RunPoint(params, s, index) for s in seed_list)
    if problems:
        raise ScenarioError(list(problems.values()))
    return SweepPlan(bases, points, keep or "summary", meta)


# one run -----------------------------------------------------------------------------------
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


def _run(base: dict[str, Any], point: RunPoint, keep: Keep) -> tuple[dict[str, Any], Any]:
    """Run one point; return its table row and (unless keep is summary) its Result."""
    from simulator.runner import run

    row: dict[str, Any] = {f"param.{k}": v for k, v in point.params}
    row["seed"] = point.seed
    row["system"] = base.get("system", {}).get("kind", "queue")
    started = time.perf_counter()
    result = None
    try:
        spec = load_scenario(base, dict(point.params))
        result = run(spec, seed=point.seed)
        row.update(flatten(result.summary))
        row["error"] = ""
    except ScenarioError as exc:
        row["error"] = f"invalid scenario: {exc}"
    except Exception as exc:  # a failed run is recorded, not fatal to the sweep
        row["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
    row["wall_s"] = time.perf_counter() - started
    if result is not None and keep != "summary":
        if keep == "all":
            _ = result.messages  # build the per-message table here, in the worker
        result.messages_loader = None  # a bound method of the checker: do not ship it back
        return row, result
    return row, None


def run_point(base: dict[str, Any], point: RunPoint) -> dict[str, Any]:
    """Run one point in this process and return its table row (never raises)."""
    return _run(base, point, "summary")[0]


def _task(
    base: dict[str, Any], point: RunPoint, keep: Keep, expected: dict[str, str] | None = None
) -> tuple[dict[str, Any], Any]:
    """What a worker executes: check it runs the same software, then run the point."""
    kinds = tuple(expected["systems"].split(",")) if expected and expected["systems"] else ()
    if expected is not None and (mine := environment_fingerprint(kinds)) != expected:
        differ = [
            f"{k} {mine.get(k)} (here) vs {v} (client)"
            for k, v in expected.items()
            if mine.get(k) != v
        ]
        row = {f"param.{k}": v for k, v in point.params}
        row.update(
            seed=point.seed, wall_s=0.0, error=f"worker software differs: {'; '.join(differ)}"
        )
        return row, None
    if keep == "summary":
        return run_point(base, point), None
    return _run(base, point, keep)


# files -------------------------------------------------------------------------------------
def _write_atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _write_atomic_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
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


def _order_columns(table: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in table.columns if c.startswith("param.")]
    first += [c for c in ("scenario", "system", "seed") if c in table.columns]
    last = [c for c in ("run", "wall_s", "error") if c in table.columns]
    middle = [c for c in table.columns if c not in first and c not in last]
    return table[first + middle + last]


def _clean_stale_tmp(directory: Path) -> None:
    """Half-written files of a killed sweep (their final names were never created)."""
    for stale in directory.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def load_sweep(directory: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table and metadata of a sweep directory; a sweep still running (or interrupted)
    gives the runs finished so far."""
    root = Path(directory)
    meta_path, table_path = root / META_FILE, root / TABLE_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    fresh = table_path.exists() and (
        not meta_path.exists() or table_path.stat().st_mtime >= meta_path.stat().st_mtime
    )
    if fresh:
        return pd.read_parquet(table_path), meta
    keys = meta.get("runs") or sorted(p.stem for p in (root / RUNS_DIR).glob("*.parquet"))
    frames = [
        pd.read_parquet(path) for k in keys if (path := root / RUNS_DIR / f"{k}.parquet").exists()
    ]
    if not frames:
        if table_path.exists():
            return pd.read_parquet(table_path), meta
        raise FileNotFoundError(f"{root}: no {TABLE_FILE} and no finished runs in {RUNS_DIR}/")
    return _order_columns(_normalize(pd.concat(frames, ignore_index=True))), meta


# the sweep ---------------------------------------------------------------------------------
def sweep(
    scenario: exps.Experiment | ScenarioBase | str | Path | dict[str, Any],
    grid: dict[str, list[Any]] | None = None,
    seeds: int | list[int] | None = None,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    progress: Progress = False,
    backend: Literal["local", "dask"] = "local",
    scheduler: Any = None,
    keep: Keep | None = None,
    retry_failed: bool = False,
    overrides: list[str] | None = None,
    ci: bool = False,
) -> pd.DataFrame:
    """Run every point x seed; return one row per run (params, scenario, system, seed, summary
    columns, run id, wall_s, error).

    `scenario` is a scenario (object, file, built-in name, data) swept over `grid`, or an
    experiment (object or file with an [experiment] table). `seeds`: replications per point (or
    the seed list); default 1, or the experiment's `replications`. `out`: the resumable sweep
    directory. `backend="dask"` runs on the cluster at `scheduler` (an address or a
    `distributed.Client`), or on a LocalCluster of `workers` processes when it is None.
    `keep`: also save each run's tables ("tables") or everything ("all") under OUT/results/.
    `retry_failed`: rerun the runs recorded with an error. `progress`: a tqdm bar with ETA, or
    a callback(done, total).
    """
    plan = plan_sweep(scenario, grid, seeds, overrides=overrides, ci=ci, keep=keep)
    if plan.keep != "summary" and out is None:
        raise ScenarioError([f"keep: {plan.keep!r} needs an output directory (out=...)"])
    keys = [plan.key(p) for p in plan.points]
    done: dict[str, pd.DataFrame] = {}
    root = Path(out) if out is not None else None
    if root is not None:
        (root / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        _clean_stale_tmp(root / RUNS_DIR)
        _clean_stale_tmp(root)
        meta = {
            **plan.meta,
            "bases": [
                {"label": b.label, "system": b.system, "digest": b.digest, "scenario": b.data}
                for b in plan.bases
            ],
            "keep": plan.keep,
            "total_runs": len(plan.points),
            "software": environment_fingerprint(tuple(sorted({b.system for b in plan.bases}))),
            "runs": keys,
        }
        _write_atomic_text(json.dumps(meta, indent=1, default=str) + "\n", root / META_FILE)
        for key in dict.fromkeys(keys):
            path = root / RUNS_DIR / f"{key}.parquet"
            if path.exists():
                frame = pd.read_parquet(path)
                if retry_failed and str(frame.get("error", pd.Series([""])).iloc[0] or ""):
                    continue
                done[key] = frame
    first = {key: i for i, key in reversed(list(enumerate(keys)))}  # one run per distinct key
    todo = [i for key, i in sorted(first.items(), key=lambda kv: kv[1]) if key not in done]
    total = len(set(keys))
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=total - len(todo), desc="sweep", unit="run", smoothing=0.05)
    failures = 0

    def finished(i: int, outcome: tuple[dict[str, Any], Any] | None, error: str | None) -> None:
        nonlocal failures
        point = plan.points[i]
        if outcome is None:
            row: dict[str, Any] = {f"param.{k}": v for k, v in point.params}
            row.update(seed=point.seed, wall_s=0.0, error=error or "unknown failure")
            result = None
        else:
            row, result = outcome
        failures += bool(row.get("error"))
        frame = _row_frame(row)
        if root is not None:
            if result is not None:  # the run's own files first, then the row that marks it done
                result.save(root / RESULTS_DIR / keys[i], messages=plan.keep == "all")
            _write_atomic_parquet(frame, root / RUNS_DIR / f"{keys[i]}.parquet")
        done[keys[i]] = frame
        if bar is not None:
            bar.update(1)
            if failures:
                bar.set_postfix(failed=failures)
        elif callable(progress):
            progress(len(done), total)

    args = [(plan.bases[plan.points[i].base].data, plan.points[i], plan.keep) for i in todo]

    def on_done(j: int, outcome: Any, error: str | None) -> None:
        finished(todo[j], outcome, error)

    if backend not in ("local", "dask"):
        raise ScenarioError([f"backend: {backend!r} is not allowed; allowed: local, dask"])
    try:
        if not args:
            pass  # everything was done already: no pool, no cluster
        elif backend == "dask":
            kinds = sorted({b.system for b in plan.bases})
            map_dask(_task, args, on_done, scheduler=scheduler, workers=workers, systems=kinds)
        elif max(1, min(workers or usable_cpus(), len(todo))) == 1:
            map_serial(_task, args, on_done)
        else:
            map_processes(_task, args, on_done, workers=min(workers or usable_cpus(), len(todo)))
    finally:
        if bar is not None:
            bar.close()
    frames = []
    for point, key in zip(plan.points, keys, strict=True):
        frame = done[key].copy()
        frame["scenario"] = plan.bases[point.base].label
        frame["system"] = plan.bases[point.base].system
        frame["run"] = key
        frames.append(frame)
    table = (
        _order_columns(_normalize(pd.concat(frames, ignore_index=True)))
        if frames
        else pd.DataFrame()
    )
    if root is not None:
        _write_atomic_parquet(table, root / TABLE_FILE)
    return table


def failed_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that recorded an error."""
    if "error" not in table.columns:
        return table.iloc[0:0]
    return table[table["error"].fillna("").astype(str) != ""]


def summarize_points(
    table: pd.DataFrame, metrics: Sequence[str] | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Mean and t confidence interval of each metric per point (see `simulator.stats`)."""
    from simulator.stats import point_stats

    return point_stats(table, metrics, confidence)
