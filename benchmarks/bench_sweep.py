"""Sweep scaling: speed-up with 1, 2, ... workers next to the machine's real ceiling, and the
scheduling overhead per run of each backend.

Method (one repetition; medians over repetitions):

* **Ceiling(W)**: W bare CPU-bound Python loops (the same fixed work each, about one run long)
  in W already-started spawned processes; ceiling = W x (time of one loop alone) / (wall time of
  the W loops together). A shared or throttled machine gives less than W; this is what a perfect
  sweep could get, measured minutes apart from the sweep itself.
* **Speed-up(W)**: the same sweep of R runs of a few seconds each (`queue_mm1`, sized to about
  `--run-s`), with `workers=1` (in this process) and with W workers; speed-up = T(1) / T(W),
  including pool start-up, result transfer and per-run Parquet writes. Efficiency = speed-up /
  ceiling; the target is >= 0.9.
* **Overhead per run**: sweeps of many tiny runs (~5 ms) with N1 and N2 runs; the worker time not
  spent inside runs, W x wall - sum(run wall_s), grows by the per-run overhead for each extra
  run: overhead = slope between N1 and N2, start-up = intercept / W.
* **Busy**: sum(run wall_s) / (W x wall) of the speed-up sweep: the share of worker time spent
  inside runs. Unlike the speed-up it does not depend on how much CPU the machine gives (a run
  slowed by a neighbour is slower inside and outside alike), so it isolates the sweep's losses.

Run it standalone (`python -m benchmarks.bench_sweep --reps 3`, writes
benchmarks/results/sweep-latest.{json,md}) or through the harness (`python -m benchmarks sweep`),
which prints the same table for each repetition.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.harness import benchmark, environment

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TINY = ["scenario.duration_s=0.05", "scenario.warmup_s=0", "scenario.drain_s=0.1"]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# the ceiling -------------------------------------------------------------------------------
def bare_loop(iterations: int) -> float:
    """Pure-Python CPU work; returns its own wall time."""
    start = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return time.perf_counter() - start


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def calibrate_loop(target_s: float) -> int:
    n = 200_000
    while (elapsed := bare_loop(n)) < 0.2:
        n *= 2
    return max(1, int(n * target_s / elapsed))


def ceiling(workers: int, iterations: int) -> dict[str, float]:
    """Speed-up a perfect parallel run of `workers` equal CPU-bound jobs gets on this machine."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(_sleep, [0.3] * workers))  # every process up before timing
        alone = pool.submit(bare_loop, iterations).result()
        start = time.perf_counter()
        list(pool.map(bare_loop, [iterations] * workers))
        together = time.perf_counter() - start
    return {"alone_s": alone, "together_s": together, "ceiling": workers * alone / together}


# the sweep ---------------------------------------------------------------------------------
def run_spec(run_s: float) -> Any:
    """queue_mm1 sized so that one run takes about `run_s` seconds here."""
    from simulator import load_scenario, run

    def spec(duration: float) -> Any:
        return load_scenario(
            "queue_mm1", [f"scenario.duration_s={duration:g}", "scenario.warmup_s=0"]
        )

    duration = 20.0
    run(spec(1.0), seed=1)  # first run imports the checker and friends: not part of a run
    start = time.perf_counter()
    run(spec(duration), seed=1)
    elapsed = time.perf_counter() - start
    while elapsed < 0.3:
        duration *= 4
        start = time.perf_counter()
        run(spec(duration), seed=1)
        elapsed = time.perf_counter() - start
    return spec(round(duration * run_s / elapsed, 1))


def timed_sweep(spec: Any, runs: int, workers: int, backend: str) -> dict[str, float]:
    from simulator import sweep
    from simulator.sweeps import BackendError

    for attempt in (1, 2, 3):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            try:
                table = sweep(spec, seeds=runs, out=out, workers=workers, backend=backend)  # type: ignore[arg-type]
            except BackendError as exc:  # someone edited the code while Dask workers started
                if attempt == 3:
                    raise
                print(f"  retrying: {exc}", flush=True)
                continue
            wall = time.perf_counter() - start
            break
    if (table["error"] != "").any():
        raise RuntimeError(f"benchmark sweep had failed runs: {table['error'].iloc[0]}")
    messages = int(table["messages.produced"].sum())
    return {"wall_s": wall, "run_s": float(table["wall_s"].sum()), "messages": messages}


def overhead(backend: str, workers: int, small: int, large: int) -> dict[str, float]:
    """Per-run overhead (slope) and fixed start-up (intercept) of a backend."""
    from simulator import load_scenario

    spec = load_scenario("queue_mm1", TINY)
    a = timed_sweep(spec, small, workers, backend)
    b = timed_sweep(spec, large, workers, backend)
    lost_a = workers * a["wall_s"] - a["run_s"]
    lost_b = workers * b["wall_s"] - b["run_s"]
    per_run = (lost_b - lost_a) / (large - small)
    return {
        "per_run_ms": 1000.0 * per_run,
        "startup_s": (lost_a - per_run * small) / workers,
        "mean_run_ms": 1000.0 * b["run_s"] / large,
    }


def one_repetition(
    *, run_s: float, runs_per_worker: int, workers: list[int], backends: list[str], quick: bool
) -> dict[str, Any]:
    """Ceiling, speed-ups and overheads, measured once.

    The load of a shared machine drifts, so each ceiling is measured just before and just after
    the sweeps it is compared with, and the serial sweep just before them.
    """
    spec = run_spec(run_s)
    iterations = calibrate_loop(run_s)
    runs = runs_per_worker * max(workers)
    rows: list[dict[str, Any]] = []
    serial: dict[str, float] = {}
    for w in workers:
        serial = timed_sweep(spec, runs, 1, "local")
        if w == 1:
            rows.append(_row("local", 1, runs, serial, serial, 1.0))
            continue
        before = ceiling(w, iterations)["ceiling"]
        # Dask at full width only: its LocalCluster start-up shows in the overhead table
        timings = {
            b: timed_sweep(spec, runs, w, b) for b in backends if b == "local" or w == max(workers)
        }
        roof = (before + ceiling(w, iterations)["ceiling"]) / 2
        rows.extend(_row(b, w, runs, t, serial, roof) for b, t in timings.items())
    small, large = (10, 40) if quick else (40, 200)
    costs = {b: overhead(b, max(workers), small, large) for b in backends}
    costs["serial"] = overhead("local", 1, small, large)
    return {"run_s": serial["run_s"] / runs, "runs": runs, "scaling": rows, "overhead": costs}


def _row(
    backend: str,
    workers: int,
    runs: int,
    timing: dict[str, float],
    serial: dict[str, float],
    roof: float,
) -> dict[str, Any]:
    speedup = serial["wall_s"] / timing["wall_s"]
    return {
        "backend": backend,
        "workers": workers,
        "runs": runs,
        "wall_s": timing["wall_s"],
        "serial_wall_s": serial["wall_s"],
        "messages": timing["messages"],
        "speedup": speedup,
        "ceiling": roof,
        "efficiency": speedup / roof,
        # time inside runs / worker time: the sweep's own losses, whatever the machine gives
        "busy": timing["run_s"] / (workers * timing["wall_s"]),
    }


def markdown(reps: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """Medians over repetitions as Markdown (efficiency: median and range of the per-repetition
    ratios, each taken against the ceiling measured around that repetition's sweep)."""
    run_s = statistics.median(r["run_s"] for r in reps)
    lines = [
        f"# Sweep scaling {env['time_utc']}",
        "",
        f"{env['cpu_count']} CPUs, Python {env['python']}, commit {env['git_commit'] or '–'}; "
        f"{len(reps)} repetition(s), medians; one run ~{run_s:.2f} s alone.",
        "busy = time inside runs / (workers x wall): the sweep's own losses (start-up, "
        "scheduling, writing results), whatever capacity the machine gave.",
        "",
        "| backend | workers | runs | wall s | serial wall s | speed-up | ceiling "
        "| speed-up / ceiling | range | busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for i, row in enumerate(reps[0]["scaling"]):
        column = [r["scaling"][i] for r in reps]

        def med(key: str, column: list[dict[str, Any]] = column) -> float:
            return statistics.median(c[key] for c in column)

        low = min(c["efficiency"] for c in column)
        high = max(c["efficiency"] for c in column)
        lines.append(
            f"| {row['backend']} | {row['workers']} | {row['runs']} | {med('wall_s'):.2f} "
            f"| {med('serial_wall_s'):.2f} | {med('speedup'):.3f} | {med('ceiling'):.3f} | {med('efficiency'):.3f} "
            f"| {low:.3f}–{high:.3f} | {med('busy'):.3f} |"
        )
    lines += [
        "",
        "| backend | overhead per run (ms) | start-up (s) | tiny run (ms) |",
        "|---|---:|---:|---:|",
    ]
    for name in reps[0]["overhead"]:
        values = [r["overhead"][name] for r in reps]
        lines.append(
            f"| {name} | {statistics.median(v['per_run_ms'] for v in values):.2f} "
            f"| {statistics.median(v['startup_s'] for v in values):.2f} "
            f"| {statistics.median(v['mean_run_ms'] for v in values):.1f} |"
        )
    return "\n".join(lines) + "\n"


def _backends() -> list[str]:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return ["local"]
    return ["local", "dask"]


@benchmark("sweep", description="sweep speed-up vs the machine's ceiling; overhead per run")
def sweep_scaling(*, quick: bool = False) -> dict[str, Any]:
    """One repetition through the harness: prints the table, returns the largest sweep's rate."""
    rep = one_repetition(
        run_s=0.5 if quick else 2.0,
        runs_per_worker=4 if quick else 8,
        workers=list(range(1, _cpus() + 1)),
        backends=_backends(),
        quick=quick,
    )
    print(markdown([rep], environment()), flush=True)
    widest = [r for r in rep["scaling"] if r["backend"] == "local"][-1]
    # the harness's ratio: messages simulated per wall second by the widest local sweep
    return {"messages": widest["messages"], "wall_s": widest["wall_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sweep", description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--run-s", type=float, default=2.0, help="seconds per run (few seconds)")
    parser.add_argument(
        "--runs-per-worker", type=int, default=8, help="runs per worker at full width"
    )
    parser.add_argument("--workers", default="", help="e.g. 1,2 (default 1..CPUs)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w] or list(range(1, _cpus() + 1))
    reps = []
    for rep in range(1, args.reps + 1):
        result = one_repetition(
            run_s=0.5 if args.quick else args.run_s,
            runs_per_worker=args.runs_per_worker,
            workers=workers,
            backends=_backends(),
            quick=args.quick,
        )
        reps.append(result)
        print(f"== repetition {rep}/{args.reps}")
        print(markdown([result], environment()), flush=True)
    env = environment()
    table = markdown(reps, env)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "sweep-latest.json").write_text(
        json.dumps({"environment": env, "repetitions": reps}, indent=2) + "\n", encoding="utf-8"
    )
    (RESULTS_DIR / "sweep-latest.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"written: {RESULTS_DIR / 'sweep-latest.md'} (and .json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
